"""DatalakeClient: the one object users need to upload, process and inspect a lake."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import config
from .errors import DatalakeError
from .ingest import UploadRequest, stage_upload
from .jobs import JobStore
from .lake import RAW_TASK, Lake
from .processor import DatalakeProcessor, upload_counts
from .remote import ServerConnection
from .schema import Schema, init_lake, load_schema


class DatalakeClient:
    """Upload data, process it and read the lake's state.

    Unset arguments come from env vars (DATALAKE_HOME, DATALAKE_USER, DATALAKE_SERVER_URL,
    DATALAKE_NUM_PROC), then a config.yaml (current folder, then ~/.config/datalake/).
    With `server_url=None` all work runs in this process; with a server, processing runs there
    (the token comes from `token` or DATALAKE_TOKEN) and requests time out after `timeout` s.
    """

    def __init__(self, user_id: str | None = None, base_path: str | Path | None = None,
                 server_url: str | None = None, num_proc: int | None = None, create_dirs: bool = False,
                 token: str | None = None, timeout: float = 10.0):
        settings = config.resolve(user_id=user_id, base_path=base_path, server_url=server_url,
                                  num_proc=num_proc, token=token)
        self.user_id = settings.user_id
        self.server_url = settings.server_url
        self.num_proc = settings.num_proc
        self.lake = init_lake(settings.base_path) if create_dirs else Lake(settings.base_path).require()
        self.jobs = JobStore(self.lake)
        self.server = ServerConnection(self.server_url, settings.token, timeout) if self.server_url else None

    @property
    def base_path(self) -> Path:
        return self.lake.root

    @property
    def schema(self) -> Schema:
        """The lake's current rules (config/schema.yaml)."""
        return load_schema(self.lake)

    # -- upload --------------------------------------------------------------------------------

    def upload_raw(self, data_source: Any, provider: str, dataset: str, variant: str | None = None,
                   description: str = "", overwrite: bool = False) -> str:
        """Stage raw data (task `raw`; variant image/files/mixed/text detected unless given); its upload id."""
        request = UploadRequest(provider, dataset, RAW_TASK, variant, {}, self.user_id, description, overwrite)
        return stage_upload(self.lake, data_source, request, self.num_proc)["upload_id"]

    def upload_task(self, data_source: Any, provider: str, dataset: str, task: str, variant: str,
                    meta: dict[str, Any], description: str = "", overwrite: bool = False) -> str:
        """Stage task labels with their meta (checked against the task's rules); its upload id."""
        request = UploadRequest(provider, dataset, task, variant, dict(meta or {}), self.user_id,
                                description, overwrite)
        return stage_upload(self.lake, data_source, request, self.num_proc)["upload_id"]

    # -- processing ----------------------------------------------------------------------------

    @property
    def processor(self) -> DatalakeProcessor:
        return DatalakeProcessor(self.lake.root, self.num_proc)

    def trigger_processing(self) -> str:
        """Process every pending upload (on the server if one is set); the job id to follow."""
        if self.server:
            return self.server.request("POST", "/process")["job_id"]
        job = self.jobs.create("process")
        return self.jobs.run(job, self.processor.process_all_pending)["job_id"]

    def get_job_status(self, job_id: str) -> dict[str, Any]:
        """The job record: job_id, kind, status (running | completed | failed), times, result, error."""
        if self.server:
            return self.server.request("GET", f"/jobs/{quote(job_id, safe='')}")
        return self.jobs.get(job_id)

    def list_server_jobs(self) -> list[dict[str, Any]]:
        """Job records, oldest first (the server's, or this lake's when embedded)."""
        if self.server:
            return self.server.request("GET", "/jobs")["jobs"]
        return self.jobs.list()

    def get_server_status(self) -> dict[str, Any]:
        """Uploads per stage and running jobs; `state` is `embedded` without a server."""
        if self.server:
            return self.server.request("GET", "/status")
        running = [j for j in self.jobs.list() if j["status"] == "running"]
        return {"state": "embedded", "uploads": upload_counts(self.lake), "running_jobs": running}

    def wait_for_job_completion(self, job_id: str, polling_interval: float = 1.0,
                                timeout: float | None = 3600) -> dict[str, Any]:
        """Wait until the job ends; its result, or DatalakeError if it failed or `timeout` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job_status(job_id)
            if job["status"] == "completed":
                return job["result"]
            if job["status"] == "failed":
                raise DatalakeError(f"job {job_id} failed: {job['error']}")
            if deadline is not None and time.monotonic() >= deadline:
                raise DatalakeError(f"job {job_id} is still running after {timeout} s")
            time.sleep(polling_interval)

    def list_uploads(self) -> list[dict[str, Any]]:
        """Uploads still in staging (pending, processing, failed with the reason)."""
        return self.processor.list_uploads()

    def retry_upload(self, upload_id: str) -> None:
        """Send a failed upload back to pending."""
        self.processor.retry(upload_id)

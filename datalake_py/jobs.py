"""Job records kept in the lake (`jobs/<job_id>.json`), so they outlive the process that ran them."""

from __future__ import annotations

import secrets
from typing import Any

from .errors import NotFoundError
from .fs import read_json, write_json_atomic
from .lake import Lake, check_name, utc_now


class JobStore:
    """Creates, finishes and reads job records: {job_id, kind, status, started_at, completed_at, result, error}."""

    def __init__(self, lake: Lake):
        self.folder = lake.jobs

    def _path(self, job_id: str):
        return self.folder / f"{check_name(job_id, 'job')}.json"

    def create(self, kind: str) -> dict[str, Any]:
        job = {"job_id": f"{kind}-{utc_now().replace(':', '').replace('-', '')}-{secrets.token_hex(3)}",
               "kind": kind, "status": "running", "started_at": utc_now(), "completed_at": None,
               "result": None, "error": None}
        write_json_atomic(self._path(job["job_id"]), job)
        return job

    def finish(self, job: dict[str, Any], result: Any = None, error: str | None = None) -> dict[str, Any]:
        job = {**job, "status": "failed" if error else "completed", "completed_at": utc_now(),
               "result": result, "error": error}
        write_json_atomic(self._path(job["job_id"]), job)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        try:
            return read_json(self._path(job_id))
        except FileNotFoundError:
            raise NotFoundError(f"job {job_id!r} is not known in this lake") from None

    def list(self) -> list[dict[str, Any]]:
        jobs = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                jobs.append(read_json(path))
            except (FileNotFoundError, ValueError):
                continue
        return sorted(jobs, key=lambda j: j.get("started_at") or "")

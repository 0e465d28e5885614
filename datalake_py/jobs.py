"""Job records kept in the lake (`jobs/<job_id>.json`), so they outlive the process that ran them.

The process that creates a job holds the job's lock until the job ends (the kernel drops it if
that process dies). A record still marked running whose lock is free belongs to a process that
died: whoever reads it (get, list, recover) marks it failed with the reason.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from .errors import DatalakeError, NotFoundError, StorageError, storage_errors, storage_problem
from .fs import file_lock, read_json, write_json_atomic
from .lake import Lake, utc_now

KEEP_FINISHED = 200
KEEP_DAYS = 30
INTERRUPTED = ("interrupted: the process running this job stopped before it finished (killed or crashed); "
               "its uploads are processed again by the next run")


class JobStore:
    """Creates, runs, finishes and reads job records:
    {job_id, kind, status, started_at, completed_at, result, error, error_type}."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.folder = lake.jobs
        self._held: dict[str, contextlib.ExitStack] = {}  # the locks of the jobs this store created

    def _path(self, job_id: str) -> Path:
        return self.lake.job_path(job_id)

    def _lock(self, job_id: str) -> Path:
        return self.lake.lock_path("job", job_id)

    def create(self, kind: str) -> dict[str, Any]:
        """A new running job, whose lock this store holds until `finish` (from any thread); jobs
        left running by processes that died are marked failed first."""
        self.recover()
        now = utc_now()
        job = {"job_id": f"{kind}-{now.replace(':', '').replace('-', '')}-{secrets.token_hex(3)}",
               "kind": kind, "status": "running", "started_at": now, "completed_at": None,
               "result": None, "error": None, "error_type": None}
        held = contextlib.ExitStack()
        with storage_errors(f"starting the {kind} job"):
            try:
                held.enter_context(file_lock(self._lock(job["job_id"])))
                write_json_atomic(self._path(job["job_id"]), job)
            except BaseException:
                held.close()
                raise
        self._held[job["job_id"]] = held
        return job

    def finish(self, job: dict[str, Any], result: Any = None, error: str | None = None,
               error_type: str | None = None) -> dict[str, Any]:
        """Record the job's end (failed when `error` is given) and let go of its lock."""
        job = {**job, "status": "failed" if error else "completed", "completed_at": utc_now(),
               "result": result, "error": error, "error_type": (error_type or DatalakeError.__name__) if error else None}
        try:
            with storage_errors(f"recording the end of job {job['job_id']}"):
                write_json_atomic(self._path(job["job_id"]), job)
                self._lock(job["job_id"]).unlink(missing_ok=True)
        finally:
            held = self._held.pop(job["job_id"], None)
            if held is not None:
                held.close()
        return job

    def run(self, job: dict[str, Any], work: Callable[[], Any]) -> dict[str, Any]:
        """Run `work` for a job this store created; the finished record (StorageError if the disk
        refuses even that record: it then reads as interrupted)."""
        try:
            with storage_errors(f"the {job['kind']} job"):
                result = work()
        except Exception as exc:
            message = str(exc) if isinstance(exc, DatalakeError) else f"{type(exc).__name__}: {exc}"
            return self.finish(job, error=message, error_type=type(exc).__name__)
        error = result.get("error") if isinstance(result, dict) else None
        error_type = result.get("error_type") if isinstance(result, dict) else None
        return self.finish(job, result=result, error=error, error_type=error_type)

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's record; a running one whose process died is marked failed first."""
        try:
            job = read_json(self._path(job_id))
        except FileNotFoundError:
            raise NotFoundError(f"job {job_id!r} is not known in this lake") from None
        return self._recovered(job)

    def delete(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)

    def list(self) -> list[dict[str, Any]]:
        """Every job record, oldest first; running ones whose process died are marked failed first."""
        return [self._recovered(job) for job in self._records()]

    def _records(self) -> list[dict[str, Any]]:
        jobs = []
        for path in self.folder.glob("*.json"):
            try:
                jobs.append(read_json(path))
            except (FileNotFoundError, ValueError):
                continue
        return sorted(jobs, key=lambda j: j.get("started_at") or "")

    def recover(self) -> list[str]:
        """Mark failed every job left running by a process that died; their ids."""
        return [job["job_id"] for job in self._records()
                if job["status"] == "running" and self._recovered(job)["status"] != "running"]

    def _recovered(self, job: dict[str, Any]) -> dict[str, Any]:
        """`job`, or its failed record if it is marked running but its process is gone.

        The record is read again under the lock: the job may have ended meanwhile. Where the disk
        refuses the lock or the record (read-only, full), the record is shown as it is.
        """
        if job.get("status") != "running":
            return job
        try:
            with file_lock(self._lock(job["job_id"]), blocking=False) as free:
                if free is None:
                    return job  # its process is alive
                current = read_json(self._path(job["job_id"]))
                if current["status"] != "running":
                    return current
                return self.finish(current, error=INTERRUPTED, error_type=DatalakeError.__name__)
        except (StorageError, FileNotFoundError):
            return job
        except OSError as exc:
            if storage_problem(exc) is None:
                raise
            return job

    def prune(self, keep: int = KEEP_FINISHED, days: int = KEEP_DAYS) -> int:
        """Delete finished records beyond the newest `keep` or older than `days`; how many went."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
        finished = [j for j in self.list() if j["status"] != "running"]
        doomed = finished[:-keep] if keep else finished
        doomed += [j for j in finished[-keep:] if (j.get("completed_at") or "") < cutoff]
        for job in doomed:
            self.delete(job["job_id"])
        return len(doomed)

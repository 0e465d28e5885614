"""Job records kept in the lake (`jobs/<job_id>.json`), so they outlive the process that ran them.

A running job's process holds the job's lock; a record still marked running whose lock is free
belongs to a process that died, and `recover` marks it failed.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from .errors import NotFoundError
from .fs import file_lock, read_json, write_json_atomic
from .lake import Lake, check_name, utc_now

KEEP_FINISHED = 200
KEEP_DAYS = 30


class JobStore:
    """Creates, runs, finishes and reads job records: {job_id, kind, status, started_at, completed_at, result, error}."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self.folder = lake.jobs

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{check_name(job_id, 'job')}.json"

    def create(self, kind: str) -> dict[str, Any]:
        now = utc_now()
        job = {"job_id": f"{kind}-{now.replace(':', '').replace('-', '')}-{secrets.token_hex(3)}",
               "kind": kind, "status": "running", "started_at": now, "completed_at": None,
               "result": None, "error": None}
        write_json_atomic(self._path(job["job_id"]), job)
        return job

    def finish(self, job: dict[str, Any], result: Any = None, error: str | None = None) -> dict[str, Any]:
        job = {**job, "status": "failed" if error else "completed", "completed_at": utc_now(),
               "result": result, "error": error}
        write_json_atomic(self._path(job["job_id"]), job)
        return job

    def run(self, job: dict[str, Any], work: Callable[[], Any]) -> dict[str, Any]:
        """Run `work` for a created job while holding its lock; the finished record."""
        with file_lock(self.lake.lock_path("job", job["job_id"])):
            try:
                result = work()
            except Exception as exc:
                return self.finish(job, error=f"{type(exc).__name__}: {exc}")
            error = result.get("error") if isinstance(result, dict) else None
            return self.finish(job, result=result, error=error)

    def get(self, job_id: str) -> dict[str, Any]:
        try:
            return read_json(self._path(job_id))
        except FileNotFoundError:
            raise NotFoundError(f"job {job_id!r} is not known in this lake") from None

    def delete(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)

    def list(self) -> list[dict[str, Any]]:
        jobs = []
        for path in self.folder.glob("*.json"):
            try:
                jobs.append(read_json(path))
            except (FileNotFoundError, ValueError):
                continue
        return sorted(jobs, key=lambda j: j.get("started_at") or "")

    def recover(self) -> list[str]:
        """Mark failed every job left running by a process that died; their ids."""
        recovered = []
        for job in self.list():
            if job["status"] != "running":
                continue
            with file_lock(self.lake.lock_path("job", job["job_id"]), blocking=False) as held:
                if held is not None:
                    self.finish(job, error="interrupted: the process running this job stopped before it "
                                           "finished; its uploads are processed again by the next run")
                    self.lake.lock_path("job", job["job_id"]).unlink(missing_ok=True)
                    recovered.append(job["job_id"])
        return recovered

    def prune(self, keep: int = KEEP_FINISHED, days: int = KEEP_DAYS) -> int:
        """Delete finished records beyond the newest `keep` or older than `days`; how many went."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
        finished = [j for j in self.list() if j["status"] != "running"]
        doomed = finished[:-keep] if keep else finished
        doomed += [j for j in finished[-keep:] if (j.get("completed_at") or "") < cutoff]
        for job in doomed:
            self.delete(job["job_id"])
        return len(doomed)

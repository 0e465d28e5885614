"""Runs the server's jobs in worker threads: one job of each kind at a time, records in the lake."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

from ..jobs import JobStore


class JobRunner:
    """Single-flight per kind (but jobs given arguments, see `start`): asking for a kind that runs
    returns that job; a follow-up can be queued.
    `then` names the kind of job to request whenever a job of a kind ends (watch mode indexes
    fingerprints after each processing job)."""

    def __init__(self, store: JobStore, work: dict[str, Callable[[threading.Event], Any]],
                 then: dict[str, str] | None = None):
        self.store = store
        self.work = work
        self.then = then or {}
        self.stop = threading.Event()
        self.running: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Future] = {}
        self._again: set[str] = set()

    def start(self, kind: str, work: Callable[[threading.Event], Any] | None = None) -> tuple[dict[str, Any], bool]:
        """(the job, True) if a new job started, or (the running job of that kind, False). A job
        given its own `work` (one with arguments: a retraction) always starts, kept in `running`
        by its id: jobs of such a kind wait for each other on the lake's locks."""
        if work is None and kind in self.running:
            return self.running[kind], False
        job = self.store.create(kind)
        key = kind if work is None else job["job_id"]
        work = work or self.work[kind]
        self.running[key] = job
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(None, self.store.run, job, lambda: work(self.stop))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._done(key))
        return job, True

    def request(self, kind: str) -> None:
        """Start a job of `kind` now, or once the running one ends (so nothing new is missed)."""
        if kind in self.running:
            self._again.add(kind)
        else:
            self.start(kind)

    def _done(self, key: str) -> None:
        """The job kept under `key` (its kind, or its id: `start`) ended: start what waits on it."""
        self.running.pop(key, None)
        self._tasks.pop(key, None)
        self.store.prune()
        if self.stop.is_set():
            return
        if key in self._again:
            self._again.discard(key)
            self.start(key)
        if key in self.then:
            self.request(self.then[key])

    async def shutdown(self) -> None:
        """Ask running jobs to stop after their current step, and wait for them."""
        self.stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

"""Where an upload's assets are staged: in this process for a small upload, else in child processes
(or, for assets named by hash, looked up in the store).

Staging an asset is a handful of short system calls (read, mkdir, create, write) and a little
Python. Threads of one process hand the interpreter lock to each other around every one of those
calls, which on two cores made two threads slower than one; child processes each have their own,
so their file-system work truly overlaps (`bench/ingest.py` shows the figures).

Every kind of staging takes requests with `submit(base, cells)` and answers each with a future of
the cells' outcomes, as columns (`StagedCells`). Requests to a child (see `staging_child`) queue
up in its pipe, so it never waits for the parent between them; one thread per child reads its
answers, which come in order.
A child inherits the upload's lock, so a processor cleaning up after a killed uploader waits for
its children too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from .assets import IMAGE_EXTS, AssetStore, StagedCells
from .errors import DatalakeError, ValidationError
from .lake import Lake, check_hash
from .staging_child import Setup, receive_message, send_message

PROCESS_MIN_ROWS = 1024  # smaller uploads stage in this process: starting children costs ~0.05 s


class ExistingAssets:
    """Looks up assets a task upload names by hash; nothing is stored."""

    stores = False  # whether the assets found are the upload's own (with their facts)

    def __init__(self, lake: Lake):
        self.store = AssetStore(lake.assets)

    def submit(self, base: str, cells: list[Any]) -> Future:
        return _done(lambda: self._existing(cells))

    def _existing(self, cells: list[Any]) -> StagedCells:
        found = StagedCells([], [], {}, [])
        for index, digest in enumerate(cells):
            try:
                relpath = None if digest is None else self._find(digest)
            except ValidationError as exc:
                found.problems[index] = str(exc)
                relpath = None
            found.digests.append(digest if relpath else None)
            found.paths.append(relpath)
            if relpath:
                ext = relpath.rsplit(".", 1)[1]
                found.first.append((digest, ext, "image" if ext in IMAGE_EXTS else "file", 0))
        return found

    def _find(self, digest: Any) -> str:
        relpath = self.store.find(check_hash(digest))
        if relpath is None:
            raise ValidationError(f"hash {digest} is not in the lake's asset store; upload the data that carries "
                                  "it first, or give the asset bytes instead of a hash")
        return relpath

    def close(self, failed: bool = False) -> None:
        pass


def _done(work: Callable[[], Any]) -> Future:
    """A future of `work`, done in the calling thread."""
    future: Future = Future()
    try:
        future.set_result(work())
    except Exception as exc:
        future.set_exception(exc)
    return future


class LocalStaging:
    """Stages in one thread of this process, beside the thread that converts the other columns.
    More threads would only hand the interpreter lock to each other between system calls: one
    staged an upload of 1,000 images about a fifth faster than two."""

    stores = True

    def __init__(self, setup: Setup):
        self.stager = setup.stager()
        self.mode = setup.mode
        self.pool = ThreadPoolExecutor(1)

    def submit(self, base: str, cells: list[Any]) -> Future:
        return self.pool.submit(self.stager.stage, cells, base, self.mode)

    def close(self, failed: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.stager.close()


class _Child:
    """A staging child process: requests go down one pipe, answers come back up another, in order."""

    def __init__(self, setup: Setup, lock_fd: int | None):
        requests_read, self.requests = os.pipe()
        self.answers, answers_write = os.pipe()
        its = [requests_read, answers_write]
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "datalake.staging_child", *map(str, its)],
                pass_fds=its + ([] if lock_fd is None else [lock_fd]), stdin=subprocess.DEVNULL,
                start_new_session=True)  # Ctrl-C is the parent's to handle
        except BaseException:
            os.close(self.requests)
            os.close(self.answers)
            raise
        finally:
            for fd in its:
                os.close(fd)
        self.pending: deque[Future] = deque()
        self.failure: DatalakeError | None = None
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_answers, name="staging-answers", daemon=True)
        self._reader.start()
        try:
            send_message(self.requests, setup)
        except OSError:
            pass  # the child is gone already: the answer reader reports it

    def submit(self, base: str, cells: list[Any]) -> Future:
        future: Future = Future()
        with self._lock:
            if self.failure is not None:
                future.set_exception(self.failure)
                return future
            self.pending.append(future)
            try:
                send_message(self.requests, (base, cells))
            except OSError:
                pass  # the child is gone: the answer reader fails what is pending
        return future

    def _read_answers(self) -> None:
        try:
            while True:
                answer = receive_message(self.answers)
                future = self.pending.popleft()
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        except (EOFError, OSError):
            with self._lock:
                self.failure = DatalakeError(
                    f"an asset staging process stopped unexpectedly ({_exit_text(self.process)}); "
                    "nothing of this upload was kept, upload it again")
                while self.pending:
                    self.pending.popleft().set_exception(self.failure)

    def end(self) -> None:
        """Wait until the child has exited and its answers are read; then release the pipes."""
        self.process.wait()
        self._reader.join()
        os.close(self.answers)


def _exit_text(process: subprocess.Popen) -> str:
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "it still runs"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


class ChildStaging:
    """Stages in `count` child processes, each request going to the child with the fewest waiting."""

    stores = True

    def __init__(self, count: int, setup: Setup, lock_fd: int | None):
        self._children: list[_Child] = []
        try:
            for _ in range(count):
                self._children.append(_Child(setup, lock_fd))
        except BaseException:
            self.close(failed=True)
            raise

    def submit(self, base: str, cells: list[Any]) -> Future:
        return min(self._children, key=lambda child: len(child.pending)).submit(base, cells)

    def close(self, failed: bool = False) -> None:
        """End the children: at once when the upload failed, else once they have answered."""
        for child in self._children:
            if failed:
                child.process.kill()
            os.close(child.requests)
        for child in self._children:  # they end side by side
            child.end()


def open_staging(lake: Lake, upload_id: str, folder: Path, mode: str, rows: int, workers: int,
                 lock_fd: int | None) -> ExistingAssets | LocalStaging | ChildStaging:
    """Staging for an upload of `rows` rows whose asset cells are of `mode` ("file", "image" or
    "hash"), in `workers` child processes when it is large; they inherit `lock_fd`, the upload's
    lock, when given."""
    if mode == "hash":
        return ExistingAssets(lake)
    setup = Setup(str(lake.assets), lake.settled_folders(), upload_id, str(folder), mode)
    if rows < PROCESS_MIN_ROWS:
        return LocalStaging(setup)
    return ChildStaging(workers, setup, lock_fd)

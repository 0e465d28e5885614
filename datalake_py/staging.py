"""Where an upload's assets are staged: in this process for a small upload, else in child processes.

Staging an asset is a handful of short system calls (read, mkdir, create, write) and a little
Python. Threads of one process hand the interpreter lock to each other around every one of those
calls, which on two cores made two threads slower than one; child processes each have their own,
so their file-system work truly overlaps (`bench/ingest.py` shows the figures).

A child is `python -m datalake.staging REQUESTS RESULTS LAKE UPLOAD_ID FOLDER MODE`. It reads
pickled requests (a base folder and a list of asset cells) from the pipe REQUESTS and answers each
with the cells' outcomes on RESULTS. It inherits the upload's lock, so a processor cleaning up
after a killed uploader waits for its children too, and it ends when the requests pipe closes.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .assets import AssetInfo, AssetStager, AssetStore
from .errors import DatalakeError
from .lake import Lake

PROCESS_MIN_ROWS = 1024  # smaller uploads stage in this process: starting children costs ~0.1 s
Outcome = AssetInfo | str | None  # an asset's facts, its problem as text, or None for an empty cell


class LocalStaging:
    """Stages in the calling threads, through one stager."""

    def __init__(self, lake: Lake, upload_id: str, folder: Path, mode: str):
        self.stager = AssetStager(AssetStore(lake), upload_id, folder)
        self.mode = mode

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        return [self.stager.stage(cell, base, self.mode) for cell in cells]

    def close(self, failed: bool = False) -> None:
        self.stager.close()


class _Child:
    def __init__(self, args: list[str], lock_fd: int | None):
        requests_read, requests_write = os.pipe()
        results_read, results_write = os.pipe()
        inherited = (requests_read, results_write) + (() if lock_fd is None else (lock_fd,))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "datalake.staging", str(requests_read), str(results_write), *args],
                pass_fds=inherited, stdin=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C is the parent's
        except BaseException:
            os.close(requests_write)
            os.close(results_read)
            raise
        finally:
            os.close(requests_read)
            os.close(results_write)
        self.requests = Connection(requests_write, readable=False)
        self.results = Connection(results_read, writable=False)

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        try:
            self.requests.send((base, cells))
            return self.results.recv()
        except (EOFError, OSError):
            raise DatalakeError(f"an asset staging process stopped unexpectedly (exit code "
                                f"{self.process.poll()}); nothing of this upload was kept, upload it again") from None

    def close(self, failed: bool) -> None:
        if failed:
            self.process.kill()
        self.requests.close()
        self.process.wait()
        self.results.close()


class ChildStaging:
    """Stages in child processes, one request at a time each; `stage` may be called from threads."""

    def __init__(self, count: int, lake: Lake, upload_id: str, folder: Path, mode: str, lock_fd: int | None):
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._children: list[_Child] = []
        args = [str(lake.root), upload_id, str(folder), mode]
        try:
            for _ in range(count):
                self._children.append(_Child(args, lock_fd))
                self._idle.put(self._children[-1])
        except BaseException:
            self.close(failed=True)
            raise

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        child = self._idle.get()
        try:
            return child.stage(base, cells)
        finally:
            self._idle.put(child)

    def close(self, failed: bool = False) -> None:
        """End the children: at once when the upload failed, else once they have answered."""
        for child in self._children:
            child.close(failed)


def open_staging(lake: Lake, upload_id: str, folder: Path, mode: str, rows: int, workers: int,
                 lock_fd: int | None) -> LocalStaging | ChildStaging:
    """Staging for an upload of `rows` rows whose asset cells are of `mode` ("file" or "image");
    child processes inherit `lock_fd`, the upload's lock, when given."""
    if rows < PROCESS_MIN_ROWS:
        return LocalStaging(lake, upload_id, folder, mode)
    return ChildStaging(workers, lake, upload_id, folder, mode, lock_fd)


def serve(requests_fd: int, results_fd: int, base_path: str, upload_id: str, folder: str, mode: str) -> None:
    """A child's loop: stage the cells of each request until the requests pipe closes (or the
    parent is gone)."""
    stager = AssetStager(AssetStore(Lake(base_path)), upload_id, Path(folder))
    requests = Connection(requests_fd, writable=False)
    results = Connection(results_fd, readable=False)
    try:
        while True:
            base, cells = requests.recv()
            results.send([stager.stage(cell, base, mode) for cell in cells])
    except (EOFError, BrokenPipeError):
        return
    finally:
        stager.close()


if __name__ == "__main__":
    requests_arg, results_arg, *rest = sys.argv[1:]
    serve(int(requests_arg), int(results_arg), *rest)

"""Where an upload's assets are staged: in this process for a small upload, else in child processes
(or, for assets named by hash, looked up in the store).

Staging an asset is a handful of short system calls (read, mkdir, create, write) and a little
Python. Threads of one process hand the interpreter lock to each other around every one of those
calls, which on two cores made two threads slower than one; child processes each have their own,
so their file-system work truly overlaps (`bench/ingest.py` shows the figures).

A child (see `staging_child`) has LANES lanes, so that its next request waits in one while it
answers another. A child inherits the upload's lock, so a processor cleaning up after a killed
uploader waits for its children too.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

from .assets import IMAGE_EXTS, AssetInfo, AssetStager, AssetStore, Outcome
from .errors import DatalakeError, ValidationError
from .lake import Lake, check_hash
from .staging_child import Setup, receive_message, send_message

PROCESS_MIN_ROWS = 1024  # smaller uploads stage in this process: starting children costs ~0.1 s
LANES = 2  # requests in flight per child


class ExistingAssets:
    """Looks up assets a task upload names by hash; nothing is stored."""

    lanes = 1  # calls at once worth making per worker
    stores = False  # whether outcomes are assets of the upload (with their facts)

    def __init__(self, lake: Lake):
        self.store = AssetStore(lake.assets)

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        return [self._existing(cell) for cell in cells]

    def _existing(self, digest: Any) -> Outcome:
        if digest is None:
            return None
        try:
            relpath = self.store.find(check_hash(digest))
        except ValidationError as exc:
            return str(exc)
        if relpath is None:
            return (f"hash {digest} is not in the lake's asset store; upload the data that carries it first, "
                    "or give the asset bytes instead of a hash")
        ext = relpath.rsplit(".", 1)[1]
        return AssetInfo(digest, ext, "image" if ext in IMAGE_EXTS else "file", 0)

    def close(self, failed: bool = False) -> None:
        pass


class LocalStaging:
    """Stages in the calling threads, through one stager."""

    lanes = 1
    stores = True

    def __init__(self, lake: Lake, upload_id: str, folder: Path, mode: str):
        self.stager = AssetStager(AssetStore(lake.assets, lake.settled_folders()), upload_id, folder)
        self.mode = mode

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        return self.stager.stage(cells, base, self.mode)

    def close(self, failed: bool = False) -> None:
        self.stager.close()


class _Lane:
    """A child's pair of pipes: one request at a time goes in, its answer comes out."""

    def __init__(self, child: subprocess.Popen, requests: int, answers: int):
        self.child = child
        self.requests = requests
        self.answers = answers

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        try:
            send_message(self.requests, (base, cells))
            answer = receive_message(self.answers)
        except (EOFError, OSError):
            raise DatalakeError(f"an asset staging process stopped unexpectedly ({_exit_text(self.child)}); "
                                "nothing of this upload was kept, upload it again") from None
        if isinstance(answer, Exception):
            raise answer
        return answer


def _exit_text(child: subprocess.Popen) -> str:
    try:
        code = child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "it still runs"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def _start_child(setup: Setup, lock_fd: int | None) -> tuple[subprocess.Popen, list[_Lane]]:
    """A staging child with LANES lanes, sent its setup; it inherits `lock_fd` when given."""
    ours, its = [], []
    try:
        for _ in range(LANES):
            requests_read, requests_write = os.pipe()
            answers_read, answers_write = os.pipe()
            ours += [requests_write, answers_read]
            its += [requests_read, answers_write]
        child = subprocess.Popen(
            [sys.executable, "-m", "datalake.staging_child", *map(str, its)],
            pass_fds=its + ([] if lock_fd is None else [lock_fd]), stdin=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C is the parent's to handle
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in its:
            os.close(fd)
    lanes = [_Lane(child, ours[i], ours[i + 1]) for i in range(0, len(ours), 2)]
    send_message(lanes[0].requests, setup)
    return child, lanes


class ChildStaging:
    """Stages in child processes; `stage` may be called from LANES threads per child at once."""

    lanes = LANES
    stores = True

    def __init__(self, count: int, lake: Lake, upload_id: str, folder: Path, mode: str, lock_fd: int | None):
        self._idle: queue.SimpleQueue[_Lane] = queue.SimpleQueue()
        self._children: list[tuple[subprocess.Popen, list[_Lane]]] = []
        setup = Setup(str(lake.assets), lake.settled_folders(), upload_id, str(folder), mode)
        try:
            for _ in range(count):
                self._children.append(_start_child(setup, lock_fd))
                for lane in self._children[-1][1]:
                    self._idle.put(lane)
        except BaseException:
            self.close(failed=True)
            raise

    def stage(self, base: str, cells: list[Any]) -> list[Outcome]:
        lane = self._idle.get()
        try:
            return lane.stage(base, cells)
        finally:
            self._idle.put(lane)

    def close(self, failed: bool = False) -> None:
        """End the children: at once when the upload failed, else once they have answered."""
        for child, lanes in self._children:
            if failed:
                child.kill()
            for lane in lanes:
                os.close(lane.requests)
        for child, lanes in self._children:  # they end side by side
            child.wait()
            for lane in lanes:
                os.close(lane.answers)


def open_staging(lake: Lake, upload_id: str, folder: Path, mode: str, rows: int, workers: int,
                 lock_fd: int | None) -> ExistingAssets | LocalStaging | ChildStaging:
    """Staging for an upload of `rows` rows whose asset cells are of `mode` ("file", "image" or
    "hash"); child processes inherit `lock_fd`, the upload's lock, when given."""
    if mode == "hash":
        return ExistingAssets(lake)
    if rows < PROCESS_MIN_ROWS:
        return LocalStaging(lake, upload_id, folder, mode)
    return ChildStaging(workers, lake, upload_id, folder, mode, lock_fd)


"""File-system primitives the lake is built on: atomic writes, reads that follow no link, and
inter-process locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, Iterator


READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # NONBLOCK: a FIFO never hangs


class LinkRefused(OSError):
    """The path ends in a symbolic link, which datalake never follows."""


class NotRegularFile(OSError):
    """The path is a folder, a device or a FIFO, not a regular file."""


def open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """A read descriptor of `path` and its status, if it is a regular file reached without a link
    at its end; LinkRefused or NotRegularFile otherwise (the usual OSErrors when it is missing or
    cannot be opened)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(exc.errno, "a symbolic link", str(path)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
    return fd, info


def temp_path_for(path: Path) -> Path:
    """The hidden temporary name beside `path`: same folder (so rename is atomic), never globbed as data.

    It is fixed per target, so a writer that died is cleaned up by the next write of the same
    file; writers of one path hold that path's lock.
    """
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it onto `path`, on failure remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


_thread_locks: dict[str, threading.Lock] = {}
_registry_lock = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _registry_lock:
        return _thread_locks.setdefault(str(path), threading.Lock())


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True, shared: bool = False) -> Iterator[int | None]:
    """Hold a lock on `path` (created if needed) against other processes and threads: exclusive,
    or `shared` with other shared holders (then threads of one process hold it together).

    Yields the locked file descriptor (a child process that inherits it holds the lock too);
    with blocking=False yields None at once if someone else holds it. The kernel releases the
    lock when its holders die, so a killed process never leaves one behind.
    """
    guard = contextlib.nullcontext(True) if shared else _held_guard(path, blocking)
    with guard as ours:
        if not ours:
            yield None
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
                fcntl.flock(fd, mode if blocking else mode | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            yield fd
        finally:
            os.close(fd)


@contextlib.contextmanager
def _held_guard(path: Path, blocking: bool) -> Iterator[bool]:
    """This process's own lock of `path` for one thread at a time; whether it was acquired."""
    guard = _thread_lock(path)
    acquired = guard.acquire(blocking)
    try:
        yield acquired
    finally:
        if acquired:
            guard.release()

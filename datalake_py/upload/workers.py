"""Workers with an executor's interface: `submit(*args)` gives a future of `worker(*args)`.

Each worker is an object made once by a picklable `make()`, in one thread of this process or in
each of a number of child processes. Child processes, because an upload's per-asset work is short
system calls and a little Python, which threads of one process can only take turns at, holding the
interpreter lock. They start as `python -m datalake.upload.workers`, not through multiprocessing,
whose spawn and forkserver run the user's main script again (breaking a script without a main
guard) and whose fork copies a process that runs DuckDB and Arrow threads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Callable

from ..errors import DatalakeError


class ThreadWorker(Executor):
    """One worker, run by one thread of this process."""

    def __init__(self, make: Callable[[], Callable[..., Any]]):
        self._worker = make()
        self._pool = ThreadPoolExecutor(1)

    def submit(self, *args: Any) -> Future:  # type: ignore[override]
        return self._pool.submit(self._worker, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait, cancel_futures=cancel_futures)


class _Child:
    """A child process with its worker: calls go down a socket, answers come back in order, read
    by a thread that completes their futures."""

    def __init__(self, make: Callable[[], Callable[..., Any]], inherit: tuple[int, ...]):
        ours, its = socket.socketpair()
        with its:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "datalake.upload.workers", str(its.fileno())], pass_fds=(its.fileno(), *inherit),
                stdin=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C is the parent's to handle
        self.socket = ours  # its write side is shut to tell the child that no more calls come
        self.connection = Connection(os.dup(ours.fileno()))
        self.pending: deque[Future] = deque()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read_answers, daemon=True)
        self.reader.start()
        self.call(make)

    def call(self, message: Any) -> Future:
        future: Future = Future()
        with self.lock:
            self.pending.append(future)
            try:
                self.connection.send(message)
            except OSError:
                pass  # the child is gone: the reader fails what is pending
        return future

    def _read_answers(self) -> None:
        try:
            while True:
                answer = self.connection.recv()
                future = self.pending.popleft()
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        except (EOFError, OSError):
            code = self.process.wait()
            with self.lock:
                while self.pending:
                    self.pending.popleft().set_exception(DatalakeError(
                        f"a worker process stopped unexpectedly ({_exit_text(code)}); nothing of this upload "
                        "was kept, upload it again"))
        finally:
            self.connection.close()


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


class ChildWorkers(Executor):
    """`count` child processes with a worker each; a call goes to the one with the fewest waiting.
    The children inherit the file descriptors `inherit` (e.g. a lock, held while any of them runs)."""

    def __init__(self, make: Callable[[], Callable[..., Any]], count: int, inherit: tuple[int, ...] = ()):
        self._children: list[_Child] = []
        try:
            for _ in range(count):
                self._children.append(_Child(make, inherit))
        except BaseException:
            self.shutdown(cancel_futures=True)
            raise

    def submit(self, *args: Any) -> Future:  # type: ignore[override]
        return min(self._children, key=lambda child: len(child.pending)).call(args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the children: at once with `cancel_futures`, else once they have answered."""
        for child in self._children:
            if cancel_futures:
                child.process.kill()
            with contextlib.suppress(OSError):
                child.socket.shutdown(socket.SHUT_WR)  # the child ends once it has answered every call
            child.socket.close()
        if wait or cancel_futures:
            for child in self._children:
                child.reader.join()


def start_workers(make: Callable[[], Callable[..., Any]], processes: int, inherit: tuple[int, ...] = ()) -> Executor:
    """Workers made by `make`: in `processes` child processes, or in a thread of this process when 0."""
    return ChildWorkers(make, processes, inherit) if processes else ThreadWorker(make)


def _serve(fd: int) -> None:
    """In a child: make the worker, then answer calls until the parent closes its end."""
    connection = Connection(fd)
    try:
        worker = connection.recv()()
        connection.send(None)
        while True:
            args = connection.recv()
            try:
                answer = worker(*args)
            except Exception as exc:  # e.g. a full disk: raised in the parent, as in a thread
                answer = exc
            connection.send(answer)
    except (EOFError, OSError):
        return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))

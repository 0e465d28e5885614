"""A staging child process, and the messages it exchanges with its parent over pipes.

A child is `python -m datalake.staging_child FD...`. The file descriptors come in pairs, one pair
per lane: the child reads requests (a base folder and a list of asset cells) from a lane's first
pipe and answers each with the cells' outcomes on its second. The first message on the first lane
is its `Setup`. It ends when all its request pipes have closed.

A child starts for every large upload, so this module imports only what staging needs: a message
is a length header and a pickle, read and written with plain system calls.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import sys
from typing import Any, NamedTuple

from .assets import AssetStager, AssetStore, write_all

HEADER = struct.Struct("!Q")


class Setup(NamedTuple):
    """What a child stages for: the store, the settled upload folders, the upload and its asset mode."""

    assets_root: str
    settled: list[str]
    upload_id: str
    folder: str
    mode: str


def send_message(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    write_all(fd, HEADER.pack(len(data)) + data)


def receive_message(fd: int) -> Any:
    """The next message on `fd`; EOFError once the writer has closed it."""
    header = _read_exactly(fd, HEADER.size)
    return pickle.loads(_read_exactly(fd, HEADER.unpack(header)[0]))


def _read_exactly(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def serve(lanes: list[tuple[int, int]]) -> None:
    """Read the setup, then answer the requests of every lane until all have closed (or the parent is gone)."""
    try:
        setup = receive_message(lanes[0][0])
    except EOFError:
        return
    stager = AssetStager(AssetStore(setup.assets_root, setup.settled), setup.upload_id, setup.folder)
    answers_for = dict(lanes)
    try:
        while answers_for:
            readable, _, _ = select.select(list(answers_for), [], [])
            for requests in readable:
                try:
                    base, cells = receive_message(requests)
                except EOFError:
                    del answers_for[requests]
                    continue
                try:
                    answer = stager.stage(cells, base, setup.mode)
                except Exception as exc:  # e.g. a full disk: raised in the parent, as when staging there
                    answer = exc
                send_message(answers_for[requests], answer)
    except BrokenPipeError:
        return
    finally:
        stager.close()


if __name__ == "__main__":
    pipes = [int(fd) for fd in sys.argv[1:]]
    serve(list(zip(pipes[::2], pipes[1::2])))

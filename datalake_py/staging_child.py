"""A staging child process, and the messages it exchanges with its parent over pipes.

A child is `python -m datalake.staging_child REQUESTS_FD ANSWERS_FD`. It reads its `Setup`, then
requests (a base folder and a list of asset cells) from the first pipe, and answers each, in
order, with the cells' outcomes on the second. It ends when the request pipe closes.

A child starts for every large upload, so this module imports only what staging needs: a message
is a length header and a pickle, read and written with plain system calls.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, NamedTuple

from .assets import AssetStager, AssetStore, write_all

HEADER = struct.Struct("!Q")


class Setup(NamedTuple):
    """What an upload is staged for: the store, the settled upload folders, the upload and its asset mode."""

    assets_root: str
    settled: list[str]
    upload_id: str
    folder: str
    mode: str

    def stager(self) -> AssetStager:
        return AssetStager(AssetStore(self.assets_root, self.settled), self.upload_id, self.folder)


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


def serve(requests: int, answers: int) -> None:
    """Read the setup, then answer requests until the request pipe closes (or the parent is gone)."""
    try:
        setup = receive_message(requests)
    except EOFError:
        return
    stager = setup.stager()
    try:
        while True:
            try:
                base, cells = receive_message(requests)
            except EOFError:
                return
            try:
                answer = stager.stage(cells, base, setup.mode)
            except Exception as exc:  # e.g. a full disk: raised in the parent, as when staging there
                answer = exc
            send_message(answers, answer)
    except BrokenPipeError:
        return
    finally:
        stager.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
    os._exit(0)  # all is written with plain system calls: the interpreter's teardown would only delay the upload

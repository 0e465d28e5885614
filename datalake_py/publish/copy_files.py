"""The files of one publish, as a read-only file system DuckDB reads the published copy through.

DuckDB cannot load its httpfs extension offline, so the copy is read through fsspec: `CopyFiles`
answers `s3://` paths (the copy's own URLs, which the database keeps in `_file`) with the objects
the publish's manifest names, and only those. A build that reads through it sees one whole
publish: objects a later publish is sending, or one that was killed left, are not listed. The
bytes come from the object store (s3fs); an object whose size is not the manifest's (replaced in
place by a later publish) is refused rather than read, and so is a file read whole (`content`)
whose hash is not.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import xxhash
from fsspec import AbstractFileSystem

from ..errors import ConflictError, NotFoundError
from .manifest import LATEST, Entry, manifest_key
from .target import PublishError, Target

CHANGED = "changed since the publish the build reads ({}): a publish ran meanwhile; run the build again"


class CopyFiles(AbstractFileSystem):
    """The objects one manifest names under `target`, listed from the manifest, read from `store`."""

    protocol = ("s3", "s3a")
    cachable = False  # one instance per build: fsspec must not hand it to another

    def __init__(self, store: Any, target: Target, publish_id: str, completed_at: str, entries: list[Entry]):
        super().__init__()
        self.store, self.target, self.publish_id = store, target, publish_id
        self.completed_at = datetime.fromisoformat(completed_at.replace("Z", "+00:00"))
        self.files = {target.path(e.key): e for e in entries}
        self.folders: dict[str, set[str]] = {}  # folder: its names, for listing
        for path in self.files:
            parent, _, name = path.rpartition("/")
            while parent and name not in self.folders.setdefault(parent, set()):
                self.folders[parent].add(name)
                parent, _, name = parent.rpartition("/")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path).rstrip("/")
        if path in self.files:
            return {"name": path, "size": self.files[path].size, "type": "file"}
        if path in self.folders or path == self.target.bucket:
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path).rstrip("/")
        if path in self.files:
            found = [self.info(path)]
        elif path in self.folders:
            found = [self.info(f"{path}/{name}") for name in sorted(self.folders[path])]
        else:
            raise FileNotFoundError(path)
        return found if detail else [f["name"] for f in found]

    def modified(self, path: str) -> datetime:
        self.info(path)
        return self.completed_at

    def content(self, path: str) -> bytes:
        """The whole object at `path`, checked against the manifest's size and hash."""
        path = self._strip_protocol(path)
        entry, data = self.files[path], self.store.cat_file(path)
        if len(data) != entry.size or xxhash.xxh3_128_hexdigest(data) != entry.hash:
            raise ConflictError(f"s3://{path} {CHANGED.format(self.publish_id)}")
        return data

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"the published copy {self.target.url} is read-only here")
        path = self._strip_protocol(path)
        entry = self.files.get(path)
        if entry is None:
            raise FileNotFoundError(path)
        handle = self.store.open(path, "rb", **{k: v for k, v in kwargs.items() if k in ("block_size", "cache_type")})
        if handle.size != entry.size:
            handle.close()
            raise OSError(f"s3://{path} {CHANGED.format(self.publish_id)}")
        return handle


def newest_publish(store: Any, target: Target) -> str:
    """The publish id `_manifests/latest` names; NotFoundError when the prefix holds no publish."""
    try:
        return store.cat_file(target.path(LATEST)).decode("utf-8").strip()
    except FileNotFoundError:
        raise NotFoundError(f"no published copy at {target.url} (no {LATEST}): publish one there with "
                            f"`datalake publish {target.url}`") from None


def open_copy(store: Any, target: Target, publish_id: str) -> CopyFiles:
    """The files of the publish `publish_id` under `target`."""
    try:
        record = json.loads(store.cat_file(target.path(manifest_key(publish_id))))
    except FileNotFoundError:
        raise PublishError(f"the publish {publish_id} at {target.url} is gone (a newer publish replaced it): "
                           "run the build again") from None
    entries = [Entry(o["key"], o["size"], o["hash"]) for o in record["objects"]]
    return CopyFiles(store, target, publish_id, record["completed_at"], entries)

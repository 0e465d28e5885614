"""What a publish copies: the lake's files that readers of the published copy need, each with
its object key (its path in the lake: the copy keeps the lake's layout) and its content hash."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import xxhash

from ..fs import open_regular
from ..lake import HASH_PATTERN, LAYOUT_FILE, Lake

FOLDERS = ("catalog", "ledger", "collections", "assets")  # published whole, hidden names aside
ROOT_FILES = ("config/schema.yaml", LAYOUT_FILE)
CHUNK = 8 * 2**20  # bytes read at a time, and the part size of a large object's upload


@dataclass(frozen=True)
class LakeFile:
    key: str  # `/`-separated, relative to the lake's root and to the target's prefix
    path: Path
    size: int
    asset_hash: str | None = None  # a store file's hash, its name: its content is known unread

    @property
    def partition(self) -> tuple[str, ...] | None:
        """A catalog part's partition values (provider, dataset, task, variant); None for others."""
        parts = self.key.split("/")
        if parts[0] != "catalog" or len(parts) != 6:
            return None
        return tuple(p.partition("=")[2] for p in parts[1:5])


def lake_files(lake: Lake) -> list[LakeFile]:
    """Every file a publish copies, sorted by key: regular files only (no link is followed), no
    hidden (temporary) name, nothing of staging, the database, jobs, locks, logs or the cache."""
    found = [f for key in ROOT_FILES if (f := _regular(lake.root, key))]
    for folder in FOLDERS:
        found += _walk(lake.root, folder)
    return sorted(found, key=lambda f: f.key)


def _regular(root: Path, key: str) -> LakeFile | None:
    path = root / key
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return LakeFile(key, path, info.st_size) if path.is_file() and not path.is_symlink() else None


def _walk(root: Path, top: str) -> Iterator[LakeFile]:
    pending = [top]
    while pending:
        here = pending.pop()
        try:
            entries = list(os.scandir(root / here))
        except FileNotFoundError:  # a folder an older lake lacks, or one removed meanwhile
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            key = f"{here}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                pending.append(key)
            elif entry.is_file(follow_symlinks=False):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # removed since listed (a part an overwrite replaced): not published
                    continue
                yield LakeFile(key, Path(entry.path), size, _asset_hash(key))


def _asset_hash(key: str) -> str | None:
    if not key.startswith("assets/"):
        return None
    stem = key.rsplit("/", 1)[1].split(".", 1)[0]
    return stem if HASH_PATTERN.fullmatch(stem) else None


def open_file(file: LakeFile) -> BinaryIO:
    """The file opened for reading without following a link (fs.open_regular)."""
    fd, _ = open_regular(file.path)
    return os.fdopen(fd, "rb")


def content_hash(source: BinaryIO) -> str:
    """xxh3-128 hex of what is left to read of `source`, the hash the lake names assets by."""
    digest = xxhash.xxh3_128()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()

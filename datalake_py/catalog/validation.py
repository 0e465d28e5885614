"""Check that the assets rows point at are in the store and, with `deep`, still hash to their name.

A row's `path` is only ever resolved inside `<lake>/assets`, and only when it is the store path
of its own `hash` (`ab/<hash>.<ext>`); any other path counts as missing and is never touched.
Symlinks in the store are never followed: a store file that is one, or that sits in a shard
folder (`ab`) that is one, is unsafe, and its bytes are never read. In a folder reading a published
copy (publish/reader.py), the store is the copy's `assets/`, read through s3fs (CopyStoreFiles).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import pandas as pd
import xxhash

from ..errors import DatalakeError, ValidationError
from ..fs import LinkRefused, NotRegularFile, open_regular
from ..lake import Lake, asset_relpath
from ..progress import progress
from ..publish.target import check_endpoint, open_store, parse_target
from ..upload.assets import CHUNK
from . import db

ASSET_PATH = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}\.[a-z0-9]{1,10}")
MAX_LISTED = 100
BATCH = 1000
READERS = 8  # files checked at once: stat and read latency dominate, above all on a NAS


class MissingAsset(Exception):
    """The row's asset is not a regular file at its store path."""


class UnsafeAsset(Exception):
    """The row's store file, or a shard folder it sits in, is a symlink: it is never followed."""


def asset_file(lake: Lake, digest: Any, relpath: Any) -> str | None:
    """The store file of a row's asset, or None unless `relpath` is `ab/<digest>.<ext>` for its `digest`."""
    return os.path.join(lake.assets, relpath) if is_store_path(digest, relpath) else None


def is_store_path(digest: Any, relpath: Any) -> bool:
    """Whether `relpath` is `ab/<digest>.<ext>`, the store path of the asset `digest`."""
    return isinstance(digest, str) and isinstance(relpath, str) and bool(ASSET_PATH.fullmatch(relpath)) \
        and relpath == asset_relpath(digest, relpath.rsplit(".", 1)[1])


def open_nofollow(path: str | Path) -> BinaryIO:
    """`path` opened for reading, unbuffered; UnsafeAsset if it is a symlink, MissingAsset unless a regular file."""
    try:
        fd, _ = open_regular(path)
    except LinkRefused:
        raise UnsafeAsset(path) from None
    except (FileNotFoundError, NotADirectoryError, NotRegularFile):
        raise MissingAsset(path) from None
    return open(fd, "rb", buffering=0)


def stream_digest(f: BinaryIO) -> str:
    """The xxh3-128 hex digest of what is left to read of `f`, read in chunks."""
    hasher = xxhash.xxh3_128()
    while chunk := f.read(CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


class StoreFiles:
    """The store files of rows' assets, reached without following any symlink.

    Each shard folder is checked once per instance (one export or validation): exports reach
    thousands of files in a few hundred folders.
    """

    local = True  # its files are paths of this machine: an export may hard-link them

    def __init__(self, lake: Lake):
        self.lake = lake
        self._folders: dict[str, type[Exception] | None] = {}  # shard folder -> what is wrong with it

    def path(self, digest: Any, relpath: Any) -> str:
        """The store file of a row's asset, its shard folders checked; MissingAsset or UnsafeAsset."""
        path = asset_file(self.lake, digest, relpath)
        if path is None:
            raise MissingAsset(relpath)
        problem = self._folder_problem(relpath[:2])
        if problem is not None:
            raise problem(relpath)
        return path

    def _folder_problem(self, folder: str) -> type[Exception] | None:
        if folder not in self._folders:
            try:
                mode = os.lstat(os.path.join(self.lake.assets, folder)).st_mode
                self._folders[folder] = UnsafeAsset if stat.S_ISLNK(mode) else \
                    None if stat.S_ISDIR(mode) else MissingAsset
            except (FileNotFoundError, NotADirectoryError):
                self._folders[folder] = MissingAsset
        return self._folders[folder]

    def size(self, digest: Any, relpath: Any) -> tuple[str, int]:
        """(store file, size) of a row's asset, without reading it."""
        path = self.path(digest, relpath)
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise MissingAsset(path) from None
        if stat.S_ISLNK(info.st_mode):
            raise UnsafeAsset(path)
        if not stat.S_ISREG(info.st_mode):
            raise MissingAsset(path)
        return path, info.st_size

    def open(self, digest: Any, relpath: Any) -> tuple[str, BinaryIO]:
        """(store file, the file opened for reading) of a row's asset."""
        path = self.path(digest, relpath)
        return path, open_nofollow(path)

    def unreadable(self, relpath: str, exc: OSError) -> DatalakeError:
        """The error for a store file that is there but cannot be read (permissions, I/O, a socket)."""
        return DatalakeError(f"cannot read asset {os.path.join(self.lake.assets, relpath)}: {exc.strerror}")


class CopyStoreFiles:
    """The store files of rows' assets in the published copy a folder reads: `s3://…/assets/ab/<hash>.<ext>`
    objects, read through s3fs; a row's path is checked as StoreFiles checks it (the object store
    has no symlinks). The same methods as StoreFiles; the store's failures are OSErrors, as there."""

    local = False  # its files are no paths of this machine's: an export copies their bytes

    def __init__(self, lake: Lake):
        source = lake.copy_source()
        self.target = parse_target(source["url"])
        self.fs = open_store(check_endpoint(source["endpoint_url"]))

    def path(self, digest: Any, relpath: Any) -> str:
        if not is_store_path(digest, relpath):
            raise MissingAsset(relpath)
        return f"s3://{self.target.path('assets/' + relpath)}"

    def size(self, digest: Any, relpath: Any) -> tuple[str, int]:
        path = self.path(digest, relpath)
        with _missing_when_absent(path):
            return path, int(self.fs.size(path))

    def open(self, digest: Any, relpath: Any) -> tuple[str, BinaryIO]:
        path = self.path(digest, relpath)
        with _missing_when_absent(path):
            return path, self.fs.open(path, "rb")

    def unreadable(self, relpath: str, exc: OSError) -> DatalakeError:
        return DatalakeError(f"cannot read asset {self.target.url}/assets/{relpath}: {exc}")


@contextlib.contextmanager
def _missing_when_absent(path: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise MissingAsset(path) from None


Store = StoreFiles | CopyStoreFiles


def store_files(lake: Lake) -> Store:
    """The store files of the lake, or of the published copy the folder reads."""
    return CopyStoreFiles(lake) if lake.reads_copy() else StoreFiles(lake)


def _distinct_assets(lake: Lake, rows: pd.DataFrame | None) -> list[tuple[Any, Any]]:
    """(hash, path) of each distinct asset, sorted so that a seed always picks the same sample."""
    if rows is None:
        with db.connect(lake) as con:
            return con.execute("select hash, path from assets order by hash, path").fetchall()
    columns = [rows[c] if c in rows.columns else [None] * len(rows) for c in ("hash", "path")]
    pairs = {(_text(h), _text(p)) for h, p in zip(*columns)} - {(None, None)}
    return sorted(pairs, key=lambda pair: (str(pair[0]), str(pair[1])))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check(store: Store, digest: Any, relpath: Any, deep: bool) -> str:
    """`ok`, `missing`, `mismatched` or `symlinks` (never followed) for one asset."""
    try:
        if not deep:
            store.size(digest, relpath)
            return "ok"
        _, f = store.open(digest, relpath)
        with f:
            return "ok" if stream_digest(f) == digest else "mismatched"
    except MissingAsset:
        return "missing"
    except UnsafeAsset:
        return "symlinks"
    except OSError as exc:
        raise store.unreadable(relpath, exc) from None


def validate_assets(lake: Lake, rows: pd.DataFrame | None = None, sample_percent: float = 100,
                    deep: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Check the distinct assets of `rows` (default: every asset in the database) exist; `deep` re-hashes them.

    `sample_percent` checks a random sample (at least one asset) of the distinct assets, the
    same one for the same `seed`. `integrity_rate` is the fraction of checked assets that are
    present (and, with `deep`, hash right); 1.0 when nothing was checked. Missing, mismatched and
    symlinked assets (a store file or shard folder that is a symlink: never followed, never read)
    are listed by their row path (their hash when the path is empty), the first 100 of each.
    """
    if not 0 < sample_percent <= 100:
        raise ValidationError(f"sample_percent must be more than 0 and at most 100 (got {sample_percent})")
    assets = _distinct_assets(lake, rows)
    size = min(len(assets), math.ceil(len(assets) * sample_percent / 100))
    chosen = assets if size == len(assets) else random.Random(seed).sample(assets, size)
    found: dict[str, list[str]] = {"missing": [], "mismatched": [], "symlinks": []}
    counts = dict.fromkeys(found, 0)
    store = store_files(lake)
    with ThreadPoolExecutor(READERS) as pool, \
            progress(total=size, desc="validate", unit="asset") as bar:
        for start in range(0, size, BATCH):
            batch = chosen[start:start + BATCH]
            for (digest, relpath), outcome in zip(batch, pool.map(lambda a: _check(store, *a, deep), batch)):
                if outcome != "ok":
                    counts[outcome] += 1
                    if len(found[outcome]) < MAX_LISTED:
                        found[outcome].append(relpath if isinstance(relpath, str) else str(digest))
            bar.update(len(batch))
    bad = sum(counts.values())
    return {"total": len(assets), "checked": size, "missing": found["missing"], "missing_count": counts["missing"],
            "integrity_rate": (size - bad) / size if size else 1.0,
            "mismatched": found["mismatched"], "mismatch_count": counts["mismatched"],
            "symlinks": found["symlinks"], "symlink_count": counts["symlinks"]}

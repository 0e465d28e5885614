"""Publishing the lake to S3-compatible storage (docs/design.md, "The published copy").

Incremental (an object already there with the same content is not sent again: an asset by its
key, which is its hash; any other file by its size and the content hash kept in the object's
metadata), parallel, resumable (a run killed anywhere is finished by running it again) and never
half-visible: new objects first, objects replaced in place next, the manifest naming all of them
last, then what the manifest no longer names goes.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..fs import file_lock
from ..lake import Lake, new_upload_id, utc_now
from ..progress import progress
from .files import CHUNK, FOLDERS, ROOT_FILES, LakeFile, content_hash, lake_files, open_file
from .manifest import HASH_METADATA, Entry, manifest_keys, manifest_record, newest_manifest, write_manifest
from .table import (DEFAULT_DATABASE, catalog_columns, catalog_location, check_glue_database, register_glue_table,
                    table_ddl)
from .target import PublishError, Target, check_endpoint, open_store, parse_target, store_errors

WORKERS = 8  # objects sent at once: uploads wait on the network, not on this machine


@dataclass(frozen=True)
class PublishReport:
    """What one publish did: the objects its manifest names, those it sent (PUTs) and their bytes,
    those already there, and the objects no manifest names any more that it removed."""

    target: str
    publish_id: str
    manifest: str
    objects: int
    uploaded: int
    uploaded_bytes: int
    skipped: int
    removed: int
    glue_table: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        text = (f"Published {self.objects:,} objects to {self.target} ({self.manifest}): {self.uploaded:,} sent "
                f"({self.uploaded_bytes:,} bytes), {self.skipped:,} already there, {self.removed:,} removed")
        return text + (f"; Glue table {self.glue_table} registered" if self.glue_table else "")


def publish(lake: Lake, target_url: str, endpoint_url: str | None = None,
            glue_database: str | None = None) -> PublishReport:
    """Copy the lake's catalog, ledger, collections, assets, rules and layout under `target_url`
    (`s3://bucket/prefix`), then write the manifest naming them; with `glue_database`, register
    the catalog as a partitioned table there (`<glue_database>.catalog`)."""
    lake.require()
    target, endpoint_url = parse_target(target_url), check_endpoint(endpoint_url)
    if glue_database is not None:
        check_glue_database(glue_database)
    with store_errors(target):
        fs = open_store(endpoint_url)
        with file_lock(lake.lake_lock("store"), shared=True):  # no retraction or gc removes files under us
            files = lake_files(lake)
            columns = catalog_columns(files) if glue_database is not None else []
            report = _Run(fs, target, files).publish()
        if glue_database is not None:
            partitions = sorted({f.partition for f in files if f.partition})
            table = register_glue_table(target, glue_database, columns, partitions)
            report = dataclasses.replace(report, glue_table=table)
    return report


class _Run:
    """One publish: the lake's files, what the target holds, and the counts."""

    def __init__(self, fs: Any, target: Target, files: list[LakeFile]):
        self.fs, self.target, self.files = fs, target, files
        self.remote = _listing(fs, target)
        self.previous = newest_manifest(fs, target, self.remote)
        self.uploaded = self.uploaded_bytes = self.skipped = 0
        self.lock = threading.Lock()
        self.bar: Any = None

    def publish(self) -> PublishReport:
        publish_id, started_at = new_upload_id(), utc_now()
        with progress(desc="publish", total=len(self.files), unit="file") as self.bar, \
                ThreadPoolExecutor(WORKERS) as pool:
            first = list(pool.map(self.settle, self.files))
            replaced = [f for f, entry in zip(self.files, first) if entry is None]
            later = list(pool.map(self.send, replaced))  # objects replaced in place: just before the manifest
        entries = sorted([e for e in first if e is not None] + later, key=lambda e: e.key)
        manifest = write_manifest(self.fs, self.target, manifest_record(publish_id, started_at, utc_now(), entries))
        removed = self.remove_unnamed({e.key for e in entries}, manifest)
        return PublishReport(self.target.url, publish_id, manifest, len(entries), self.uploaded,
                             self.uploaded_bytes, self.skipped, removed)

    def settle(self, file: LakeFile) -> Entry | None:
        """The file's entry, sent first if the target lacks it; None for an object to replace."""
        there = self.remote.get(file.key)
        if file.asset_hash:
            return self.skip(Entry(file.key, file.size, file.asset_hash)) if there == file.size else self.send(file)
        if there is None:
            return self.send(file)
        with _opened(file) as source:
            digest = content_hash(source)
        if there == file.size and self.holds(file.key, digest):
            return self.skip(Entry(file.key, file.size, digest))
        return None

    def holds(self, key: str, digest: str) -> bool:
        """Whether the object at `key` has this content: by the newest manifest, else its metadata
        (a run killed before its manifest sent it)."""
        known = self.previous.get(key)
        if known is not None and known.hash == digest:
            return True
        return self.fs.metadata(self.target.path(key)).get(HASH_METADATA) == digest

    def skip(self, entry: Entry) -> Entry:
        with self.lock:
            self.skipped += 1
        self.bar.update()
        return entry

    def send(self, file: LakeFile) -> Entry:
        """Upload the file (read once, from one open descriptor, so it is hashed as sent)."""
        with _opened(file) as source:
            digest = content_hash(source)
            if file.asset_hash and digest != file.asset_hash:
                raise PublishError(f"{file.key} does not hash to its name: the store file is damaged; "
                                   "`datalake db validate --deep` lists such files")
            size = source.tell()
            source.seek(0)
            with self.fs.open(self.target.path(file.key), "wb", block_size=CHUNK,
                              Metadata={HASH_METADATA: digest}) as out:
                shutil.copyfileobj(source, out, CHUNK)
        with self.lock:
            self.uploaded += 1
            self.uploaded_bytes += size
        self.bar.update()
        return Entry(file.key, size, digest)

    def remove_unnamed(self, named: set[str], manifest: str) -> int:
        """Remove the older manifests, then the objects the new one does not name (parts an
        overwrite or a retraction removed, deleted collection versions, collected assets); the
        prefix's other objects are not datalake's and stay."""
        older = [k for k in manifest_keys(self.remote) if k != manifest]
        gone = [k for k in self.remote if k not in named and _published(k)]
        for keys in (older, gone):
            if keys:
                self.fs.rm([self.target.path(k) for k in keys])
        return len(gone)


def _published(key: str) -> bool:
    return key in ROOT_FILES or key.split("/", 1)[0] in FOLDERS


def _listing(fs: Any, target: Target) -> dict[str, int]:
    """Every object under the prefix: its key and size."""
    if not fs.exists(target.bucket):
        raise PublishError(f"the bucket {target.bucket!r} does not exist or cannot be seen with these "
                           "credentials: create it, or check the AWS settings")
    found = fs.find(target.root, detail=True)
    return {target.key_of(path): int(info["size"]) for path, info in found.items() if info.get("type") != "directory"}


def _opened(file: LakeFile) -> Any:
    try:
        return open_file(file)
    except FileNotFoundError:
        raise PublishError(f"{file.key} went while it was being published (an overwrite or a collection deletion "
                           "landed meanwhile): run the publish again; what was sent is kept") from None


def publish_ddl(lake: Lake, target_url: str, dialect: str, database: str | None = None) -> str:
    """The statement that makes the catalog published at `target_url` a table in `dialect`
    (athena or trino), its columns those of the lake's part files now; nothing is sent."""
    target = parse_target(target_url)
    with file_lock(lake.lake_lock("store"), shared=True):
        columns = catalog_columns(lake_files(lake))
    return table_ddl(columns, catalog_location(target), dialect, database or DEFAULT_DATABASE)

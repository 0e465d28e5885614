"""Upload: validate a source against the rules and stage it in `staging/pending/<upload_id>/`.

The upload streams the source batch by batch into a private folder under `staging/incoming/`:
rows as `data.parquet` (assets replaced by `hash` and `path`), asset facts in `assets.parquet`,
and `manifest.json`. The bytes of assets the lake lacks go straight to the store under hidden
names private to the upload (see `AssetStager`), for processing to give them their names. Only
when everything is valid does one rename move the folder to `pending/`; on any failure the
folder and the hidden asset files are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .assets import asset_relpath, discard_staged_assets
from .collector import collector_paused
from .column_plan import plan_columns
from .errors import ValidationError, storage_errors
from .fs import file_lock, write_json_atomic
from .lake import ASSET_COLUMNS, RAW_TASK, Lake, Partition, check_name, new_upload_id, utc_now
from .progress import progress
from .schema import load_schema
from .sources import Source, json_column, open_source
from .staging import open_staging

MAX_REPORTED = 10
LOOKAHEAD = 2  # batches whose assets are staged while an earlier one is finished and written
CHUNKS_PER_WORKER = 4  # asset tasks per worker and batch: workers stay busy to the end of a batch
NARROW_TYPES = {pa.large_string(): pa.string(), pa.string_view(): pa.string(), pa.large_binary(): pa.binary()}
DATA_FILE, ASSETS_FILE, MANIFEST_FILE = "data.parquet", "assets.parquet", "manifest.json"
ASSET_FACTS = pa.schema([("hash", pa.string()), ("path", pa.string()), ("kind", pa.string()),
                         ("ext", pa.string()), ("bytes", pa.int64()), ("width", pa.int32()),
                         ("height", pa.int32())])


@dataclass
class UploadRequest:
    """What an upload is and where it goes; checked against the rules by `validate`."""

    provider: str
    dataset: str
    task: str = RAW_TASK
    variant: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    user: str = "unknown"
    description: str = ""
    overwrite: bool = False

    def validate(self, lake: Lake) -> None:
        schema = load_schema(lake)
        schema.require_provider(self.provider)
        check_name(self.dataset, "dataset")
        check_name(self.user, "user")
        if self.variant is not None:
            check_name(self.variant, "variant")
        if self.task == RAW_TASK:
            if self.meta:
                raise ValidationError("raw uploads take no meta; meta belongs to task uploads (give --task)")
            return
        rule = schema.require_task(self.task)
        if self.variant is None:
            raise ValidationError(f"a task upload needs a variant: give variant= (--variant) for task {self.task!r}")
        self.meta = rule.check_meta(dict(self.meta or {}))


def _file_folders(cells: list[Any], base: str) -> set[str]:
    """The folders of the files that path cells (or Image structs without bytes) name."""
    paths = (c if isinstance(c, str) else c.get("path") if isinstance(c, dict) and c.get("bytes") is None else None
             for c in cells)
    return {os.path.dirname(os.path.join(base, os.path.expanduser(p))) for p in paths if p}


class Problems:
    """Rows that cannot be uploaded, collected over the whole source and reported together."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def add(self, row: int, message: str) -> None:
        self.count += 1
        if len(self.first) < MAX_REPORTED:
            self.first.append(f"row {row}: {message}")

    def raise_if_any(self, source: str) -> None:
        if self.count:
            more = f"\n  ... and {self.count - len(self.first)} more" if self.count > len(self.first) else ""
            lines = "\n  ".join(self.first)
            raise ValidationError(f"{self.count} row(s) of {source} cannot be uploaded "
                                  f"(rows counted from 0):\n  {lines}{more}")


@dataclass
class PendingBatch:
    """A batch whose assets the workers are staging, its other columns converted already."""

    first_row: int
    num_rows: int
    names: list[str]
    arrays: list[pa.Array]
    futures: list[Future]


class BatchConverter:
    """Turns source batches into stored rows: assets staged and replaced by hash/path, JSON, meta, lineage."""

    def __init__(self, lake: Lake, request: UploadRequest, upload_id: str, source: Source,
                 folder: Path, num_proc: int, lock_fd: int | None):
        self.request = request
        self.plan = plan_columns(source.schema, request.meta)
        self.column = self.plan.asset
        self.workers = max(1, num_proc)
        self.staging = None
        if self.column.mode != "none":
            self.staging = open_staging(lake, upload_id, folder, self.column.mode, source.num_rows, self.workers,
                                        lock_fd)
        self.problems = Problems()
        self.seen: set[str] = set()  # the hashes of every asset the upload carries
        self.new_facts: list[tuple] = []  # facts of the assets first met since `facts_batch`
        self.kinds: set[str] = set()
        self.read_from: set[str] = set()  # the folders files were read from
        self.rows = 0
        self.lineage = {"_upload_id": upload_id, "_uploaded_by": request.user, "_uploaded_at": utc_now()}

    def close(self, failed: bool) -> None:
        if self.staging is not None:
            self.staging.close(failed)

    def start(self, batch: pa.RecordBatch, base: str) -> PendingBatch:
        """Hand the batch's assets to the workers, then convert its other columns meanwhile."""
        start, n = self.rows, batch.num_rows
        self.rows += n
        futures = []
        if self.column.mode != "none":
            values = batch.column(self.column.name).to_pylist()
            if self.column.mode != "hash":
                self.read_from.update(_file_folders(values, base))
            size = -(-n // (CHUNKS_PER_WORKER * self.workers))
            futures = [self.staging.submit(base, values[i:i + size]) for i in range(0, n, size)]
        for name, value in self.plan.meta_checked.items():
            self._check_meta_column(batch.column(name), name, value, start)
        names, arrays = [], []
        for name in self.plan.keep:
            col = batch.column(name)
            if pa.types.is_nested(col.type):
                col = json_column(col)
            elif col.type in NARROW_TYPES:
                col = col.cast(NARROW_TYPES[col.type])
            names.append(name)
            arrays.append(col)
        return PendingBatch(start, n, names, arrays, futures)

    def _check_meta_column(self, column: pa.Array, name: str, value: str, start: int) -> None:
        """Report the rows whose own value of a meta field contradicts the upload's meta (nulls take it)."""
        try:
            text = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = json_column(column)
        differs = pc.fill_null(pc.not_equal(text, value), False)
        for index in pc.indices_nonzero(differs).to_pylist():
            self.problems.add(start + index, f"column {name!r} holds {text[index].as_py()!r} but the upload's meta "
                                             f"is {name}={value!r}; upload those rows with their own meta, or drop "
                                             "the column")

    def finish(self, pending: PendingBatch) -> pa.RecordBatch:
        """The stored rows of a started batch, once its assets are staged."""
        names, arrays = pending.names, pending.arrays
        if self.column.mode != "none":
            hashes, paths = self._gather(pending)
            names += list(ASSET_COLUMNS)
            arrays += [pa.array(hashes, pa.string()), pa.array(paths, pa.string())]
        for key, value in [*self.request.meta.items(), *self.lineage.items()]:
            names.append(key)
            arrays.append(pa.array([value] * pending.num_rows, pa.string()))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _gather(self, pending: PendingBatch) -> tuple[list, list]:
        hashes: list[str | None] = []
        paths: list[str | None] = []
        for future in pending.futures:
            staged = future.result()
            for index, problem in staged.problems.items():
                self.problems.add(pending.first_row + len(hashes) + index, problem)
            hashes += staged.digests
            paths += staged.paths
            for facts in staged.first:  # in the order of AssetInfo: digest, ext, kind, ...
                self.kinds.add(facts[2])
                if self.staging.stores and facts[0] not in self.seen:
                    self.seen.add(facts[0])
                    self.new_facts.append(facts)
        return hashes, paths

    def raw_variant(self) -> str:
        if self.column.mode == "none":
            return "text"
        if self.kinds == {"image"}:
            return "image"
        if self.kinds == {"file"}:
            return "files"
        return "mixed" if self.kinds else "text"

    def facts_batch(self) -> pa.RecordBatch:
        """The facts of the assets first met since the last call (ASSET_FACTS); there must be some."""
        digests, exts, kinds, sizes, widths, heights = zip(*self.new_facts)
        self.new_facts = []
        paths = [asset_relpath(digest, ext) for digest, ext in zip(digests, exts)]
        columns = [digests, paths, kinds, exts, sizes, widths, heights]
        return pa.RecordBatch.from_arrays([pa.array(c, f.type) for c, f in zip(columns, ASSET_FACTS)],
                                          schema=ASSET_FACTS)


@collector_paused()  # thousands of short-lived objects per batch
def stage_upload(lake: Lake, data_source: Any, request: UploadRequest, num_proc: int = 1) -> dict[str, Any]:
    """Validate and stage one upload; returns its manifest. On any error nothing is left in the lake."""
    request.validate(lake)
    source = open_source(data_source)
    upload_id = new_upload_id()
    folder = lake.upload_dir("incoming", upload_id)
    lock = lake.lock_path("upload", upload_id)
    # held while staging: a processor removes an incoming folder only once its uploader is gone
    with storage_errors("the upload"), file_lock(lock) as lock_fd:
        folder.mkdir(parents=True)
        try:
            manifest = _write_upload(lake, source, request, upload_id, folder, num_proc, lock_fd)
            folder.rename(lake.upload_dir("pending", upload_id))
        except BaseException:
            discard_upload(lake, folder, upload_id)
            with contextlib.suppress(OSError):
                lock.unlink()
            raise
    return manifest


def discard_upload(lake: Lake, folder: Path, upload_id: str) -> None:
    """Remove an upload that will not land (or has landed): its hidden asset files, then its folder."""
    discard_staged_assets(lake.assets, folder, upload_id)
    shutil.rmtree(folder, ignore_errors=True)


def convert_source(lake: Lake, source: Source, request: UploadRequest, upload_id: str, folder: Path,
                   num_proc: int, lock_fd: int | None = None) -> BatchConverter:
    """Stream a source into `folder`: rows to data.parquet, new asset bytes to the store (hidden,
    journalled in `folder`), their facts to assets.parquet. Raises ValidationError for problem rows
    or no rows. Staging child processes inherit `lock_fd` (the upload's lock) when given."""
    converter = BatchConverter(lake, request, upload_id, source, folder, num_proc, lock_fd)
    writer = facts = None
    failed = True
    try:
        facts = pq.ParquetWriter(folder / ASSETS_FILE, ASSET_FACTS)
        with progress(desc=f"read {source.description[:40]}", unit="row") as bar:
            for pending in _started_batches(converter, source):
                out = converter.finish(pending)
                if converter.problems.count == 0:
                    if writer is None:
                        writer = pq.ParquetWriter(folder / DATA_FILE, out.schema)
                    writer.write_batch(out.cast(writer.schema) if out.schema != writer.schema else out)
                    if converter.new_facts:
                        facts.write_batch(converter.facts_batch())
                bar.update(pending.num_rows)
        failed = False
    finally:
        converter.close(failed)
        for open_writer in (facts, writer):
            if open_writer is not None:
                open_writer.close()
    converter.problems.raise_if_any(source.description)
    if converter.rows == 0:
        raise ValidationError(f"{source.description} holds no rows; there is nothing to upload")
    return converter


def _started_batches(converter: BatchConverter, source: Source) -> Iterator[PendingBatch]:
    """The source's batches, started; each one yielded once the assets of the LOOKAHEAD batches
    after it are under way, so the workers keep staging while a batch is finished and written."""
    started: deque[PendingBatch] = deque()
    for batch, base in source.batches():
        started.append(converter.start(batch, str(base)))
        if len(started) > LOOKAHEAD:
            yield started.popleft()
    yield from started


def _write_upload(lake: Lake, source: Source, request: UploadRequest, upload_id: str,
                  folder: Path, num_proc: int, lock_fd: int | None) -> dict[str, Any]:
    if plan_columns(source.schema, request.meta).asset.mode == "hash" and request.task == RAW_TASK:
        raise ValidationError("a raw upload must carry its data; only task uploads may reference assets by hash")
    converter = convert_source(lake, source, request, upload_id, folder, num_proc, lock_fd)
    variant = request.variant or converter.raw_variant()
    partition = Partition(request.provider, request.dataset, request.task, variant)
    manifest = {
        "upload_id": upload_id,
        "provider": partition.provider, "dataset": partition.dataset,
        "task": partition.task, "variant": partition.variant,
        "meta": request.meta,
        "uploaded_by": request.user,
        "uploaded_at": converter.lineage["_uploaded_at"],
        "source": source.description,
        "description": request.description,
        "num_rows": converter.rows,
        "asset_column": converter.column.name,
        "asset_mode": converter.column.mode,
        "num_assets": len(converter.seen),
        "replaced_lake_columns": converter.plan.replaced,
        "read_from": sorted({os.path.normpath(f) for f in converter.read_from}),
        "overwrite": bool(request.overwrite),
    }
    write_json_atomic(folder / MANIFEST_FILE, manifest)
    return manifest

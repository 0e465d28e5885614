"""Upload: validate a source against the rules and stage it in `staging/pending/<upload_id>/`.

The upload streams the source batch by batch into a private folder under `staging/incoming/`:
rows as `data.parquet` (assets replaced by `hash` and `path`), asset facts in `assets.parquet`,
the bytes of assets the lake lacks in `new-assets/` (processing moves them into the store), and
`manifest.json`. Only when everything is valid does one rename move the folder to `pending/`;
on any failure the folder is removed, and with it everything the upload wrote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ValidationError, storage_errors
from ..fs import file_lock, write_json_atomic
from ..lake import (ASSET_COLUMNS, ASSETS_FILE, DATA_FILE, MANIFEST_FILE, NEW_ASSETS, RAW_TASK, SOURCE_NAME, Lake,
                   Partition, check_name, new_upload_id, utc_now)
from ..progress import progress
from ..licenses import check_license
from ..schema import load_schema
from .assets import AssetInfo, AssetWriter, StoreLookup
from .column_plan import AssetColumn, plan_columns
from .sources import EXPORT_ASSETS, Source, json_column, open_source
from .workers import start_workers

MAX_REPORTED = 10
LOOKAHEAD = 2  # batches whose assets are read while an earlier one is finished and written
CHUNKS_PER_WORKER = 4  # calls per worker process and batch, so none waits for the slowest to the batch's end
PROCESS_MIN_ROWS = 1024  # smaller uploads read their assets in this process: a child takes ~0.1 s to start
NARROW_TYPES = {pa.large_string(): pa.string(), pa.string_view(): pa.string(), pa.large_binary(): pa.binary()}
# a path cell whose folders say nothing once the file has left them: absolute, home, URL, `..`, Windows
OUTSIDE_PATH = r"^(/|~)|://|(^|/)\.\.(/|$)|\\"
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
    license: str | None = None  # the dataset's license (licenses.check_license): an SPDX id, or `other`
    license_name: str | None = None
    license_url: str | None = None

    def validate(self, lake: Lake) -> None:
        schema = load_schema(lake)
        check_license(self.license, self.license_name, self.license_url)
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
    return {os.path.join(base, os.path.expanduser(folder)) for folder in {os.path.dirname(p) for p in paths if p}}


def _original_names(cells: pa.Array) -> pa.Array:
    """The original file names of path cells, as `_source_name` keeps them: a relative path as
    written (without a leading `./`), the file name alone of any other path; null for none."""
    text = cells.cast(pa.string())
    outside = pc.fill_null(pc.match_substring_regex(text, OUTSIDE_PATH), False)
    names = pc.if_else(outside, pc.replace_substring_regex(text, r"^.*[/\\]", ""),
                       pc.replace_substring_regex(text, r"^(\./)+", ""))
    return pc.if_else(pc.equal(names, ""), pa.scalar(None, pa.string()), names)


def _source_names(batch: pa.RecordBatch, asset: AssetColumn, carried: str | None) -> pa.Array:
    """`_source_name` of a batch's rows: the names rows out of the lake carry, else those of their
    path cells or `Image` paths; nulls for bytes, hashes and rows without an asset."""
    if carried is not None:
        return batch.column(carried).cast(pa.string())
    column = batch.column(asset.name) if asset.mode in ("image", "file") else None
    if column is not None and pa.types.is_struct(column.type):
        column = pc.struct_field(column, "path")
    if column is None or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return pa.nulls(batch.num_rows, pa.string())
    return _original_names(column)


def _with_other_files(images: list[Any], paths: list[Any]) -> list[Any]:
    """The image cells of rows out of the lake, those without one taking the file their `path`
    names: an export's `assets/<name>` or an absolute path (to_pandas, to_dataset), where
    assets other than images ride. A store path (`ab/<hash>.<ext>`, search results) is no file."""
    return [p if v is None and isinstance(p, str) and (p.startswith(f"{EXPORT_ASSETS}/") or os.path.isabs(p))
            else v for v, p in zip(images, paths)]


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
    """A batch whose assets the workers are reading, its other columns converted already."""

    first_row: int
    num_rows: int
    names: list[str]
    arrays: list[pa.Array]
    futures: list[Future]
    source_names: pa.Array


class BatchConverter:
    """Turns source batches into stored rows: assets replaced by hash/path, JSON, meta, lineage."""

    def __init__(self, lake: Lake, request: UploadRequest, upload_id: str, source: Source,
                 folder: Path, num_proc: int, lock_fd: int | None):
        self.request = request
        self.plan = plan_columns(source.schema, request.meta)
        self.column = self.plan.asset
        self.processes = max(1, num_proc) if source.num_rows >= PROCESS_MIN_ROWS else 0
        self.workers = None
        if self.column.mode == "hash":
            self.workers = start_workers(partial(StoreLookup, str(lake.assets)), 0)
        elif self.column.mode != "none":
            (folder / NEW_ASSETS).mkdir()
            writer = partial(AssetWriter, str(lake.assets), str(folder / NEW_ASSETS), self.column.mode)
            self.workers = start_workers(writer, self.processes, () if lock_fd is None else (lock_fd,))
        self.problems = Problems()
        self.carried: set[str] = set()  # the hashes of every asset the upload carries
        self.facts_due: list[AssetInfo] = []  # those first met since `facts_batch`
        self.kinds: set[str] = set()
        self.read_from: set[str] = set()  # the folders files were read from
        self.rows = 0
        self.lineage = {"_upload_id": upload_id, "_uploaded_by": request.user, "_uploaded_at": utc_now()}

    def close(self, failed: bool) -> None:
        if self.workers is not None:
            self.workers.shutdown(cancel_futures=failed)

    def start(self, batch: pa.RecordBatch, base: str) -> PendingBatch:
        """Hand the batch's assets to the workers, then convert its other columns meanwhile."""
        start, n = self.rows, batch.num_rows
        self.rows += n
        futures = []
        if self.column.mode != "none":
            values = batch.column(self.column.name).to_pylist()
            if self.plan.files_in_path:
                values = _with_other_files(values, batch.column("path").to_pylist())
            if self.column.mode != "hash":
                self.read_from.update(_file_folders(values, base))
            size = -(-n // (CHUNKS_PER_WORKER * max(1, self.processes)))
            futures = [self.workers.submit(values[i:i + size], base) for i in range(0, n, size)]
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
        return PendingBatch(start, n, names, arrays, futures,
                            _source_names(batch, self.column, self.plan.source_name))

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
        """The stored rows of a started batch, once its assets are read."""
        names, arrays = pending.names, pending.arrays
        if self.column.mode != "none":
            hashes, paths = self._gather(pending)
            names += list(ASSET_COLUMNS)
            arrays += [pa.array(hashes, pa.string()), pa.array(paths, pa.string())]
        for key, value in [*self.request.meta.items(), *self.lineage.items()]:
            names.append(key)
            arrays.append(pa.array([value] * pending.num_rows, pa.string()))
        names.append(SOURCE_NAME)
        arrays.append(pending.source_names)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _gather(self, pending: PendingBatch) -> tuple[list, list]:
        hashes: list[str | None] = []
        paths: list[str | None] = []
        for future in pending.futures:
            for asset in future.result():
                if isinstance(asset, str):
                    self.problems.add(pending.first_row + len(hashes), asset)
                    asset = None
                hashes.append(asset.digest if asset else None)
                paths.append(asset.relpath if asset else None)
                if asset:
                    self.kinds.add(asset.kind)
                    if self.column.mode != "hash" and asset.digest not in self.carried:
                        self.carried.add(asset.digest)
                        self.facts_due.append(asset)
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
        assets, self.facts_due = self.facts_due, []
        columns = {"hash": [a.digest for a in assets], "path": [a.relpath for a in assets],
                   "kind": [a.kind for a in assets], "ext": [a.ext for a in assets],
                   "bytes": [a.size for a in assets], "width": [a.width for a in assets],
                   "height": [a.height for a in assets]}
        return pa.RecordBatch.from_pydict(columns, schema=ASSET_FACTS)


def stage_upload(lake: Lake, data_source: Any, request: UploadRequest, num_proc: int = 1) -> dict[str, Any]:
    """Validate and stage one upload; returns its manifest. On any error nothing is left in the lake."""
    lake.require()
    request.validate(lake)
    source = open_source(data_source)
    upload_id = new_upload_id()
    folder = lake.upload_dir("incoming", upload_id)
    lock = lake.lock_path("upload", upload_id)
    # held while writing: a processor removes an incoming folder only once its uploader (and its
    # worker processes) are gone
    # the store lock, shared: no retraction or garbage collection runs while the upload is written
    # and it may name stored assets by hash, or leave out bytes the store already has
    with storage_errors("the upload"), file_lock(lock) as lock_fd, file_lock(lake.lake_lock("store"), shared=True):
        folder.mkdir(parents=True)
        try:
            manifest = _write_upload(lake, source, request, upload_id, folder, num_proc, lock_fd)
            folder.rename(lake.upload_dir("pending", upload_id))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                lock.unlink()
            raise
    return manifest


def convert_source(lake: Lake, source: Source, request: UploadRequest, upload_id: str, folder: Path,
                   num_proc: int, lock_fd: int | None = None) -> BatchConverter:
    """Stream a source into `folder`: rows to data.parquet, the bytes of assets the lake lacks to
    new-assets/, the facts of its assets to assets.parquet. Raises ValidationError for problem rows
    or no rows. Worker processes inherit `lock_fd` (the upload's lock) when given."""
    converter = BatchConverter(lake, request, upload_id, source, folder, num_proc, lock_fd)
    writer = facts = None
    failed = True
    try:
        facts = pq.ParquetWriter(folder / ASSETS_FILE, ASSET_FACTS)
        with progress(desc=f"read {source.description[:40]}", total=source.num_rows, unit="row") as bar:
            for pending in _started_batches(converter, source):
                out = converter.finish(pending)
                if converter.problems.count == 0:
                    if writer is None:
                        writer = pq.ParquetWriter(folder / DATA_FILE, out.schema)
                    writer.write_batch(out.cast(writer.schema) if out.schema != writer.schema else out)
                    if converter.facts_due:
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
    after it are under way, so the workers keep reading while a batch is finished and written."""
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
        "num_assets": len(converter.carried),
        "replaced_lake_columns": converter.plan.replaced,
        "read_from": sorted({os.path.normpath(f) for f in converter.read_from}),
        "overwrite": bool(request.overwrite),
        **_license_fields(request),
    }
    write_json_atomic(folder / MANIFEST_FILE, manifest)
    return manifest


def _license_fields(request: UploadRequest) -> dict[str, str | None]:
    """The upload's license as its manifest records it (all None without one)."""
    license = check_license(request.license, request.license_name, request.license_url)
    return license.fields() if license else {"license": None, "license_name": None, "license_url": None}

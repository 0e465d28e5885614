"""Rows out of the lake: parquet with absolute asset paths, a Hugging Face dataset, or pandas.

Every row is kept, in order. A row's asset is looked up only inside `<lake>/assets` (see
validation.StoreFiles); when it is not there, or is a symlink (never followed: the store file or
one of its shard folders), the row keeps its `hash`, its `path` (and `image`) is null, and it
counts in `missing_assets`. Image bytes are copied as stored: never decoded, never re-encoded.

Outputs are written outside the lake only, under a hidden name unique to the run beside them,
and renamed into place: nothing else the user has is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import warnings
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pandas as pd
import pyarrow as pa
import xxhash
import pyarrow.parquet as pq

from .catalog.validation import MissingAsset, StoreFiles, UnsafeAsset
from .errors import ConflictError, ValidationError
from .lake import Lake
from .progress import progress
from .upload.assets import IMAGE_EXTS

if TYPE_CHECKING:
    import datasets

FORMATS = ("auto", "parquet", "dataset")
FORMAT_ALIASES = {"datasets": "dataset"}  # the name Hugging Face and earlier versions of this tool use
BATCH = 1000  # rows per batch when only paths are written
IMAGE_BATCH = 100  # rows per batch when image bytes are read, to bound memory
SHARD_BYTES = 500 * 1024 * 1024  # as save_to_disk
NO_ASSET = (None, None, 0)

Located = tuple[str | None, bytes | None, int]


def _locate(store: StoreFiles, read_images: bool, digest: Any, relpath: Any) -> Located | None:
    """(absolute path, image bytes if read, size) of a row's asset; NO_ASSET without one; None when missing
    or a symlink."""
    if not isinstance(digest, str) and not isinstance(relpath, str):
        return NO_ASSET
    try:
        if read_images and isinstance(relpath, str) and _is_image(relpath):
            path, f = store.open(digest, relpath)
            with f:
                data = f.readall()
            return path, data, len(data)
        path, size = store.size(digest, relpath)
        return path, None, size
    except (MissingAsset, UnsafeAsset):
        return None
    except OSError as exc:
        raise store.unreadable(relpath, exc) from None


def _is_image(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in IMAGE_EXTS


class _Assets:
    """Resolves the assets of rows a batch at a time, counting missing ones and their bytes."""

    def __init__(self, lake: Lake, hashes: list, relpaths: list, read_images: bool):
        self.store, self.hashes, self.relpaths, self.read_images = StoreFiles(lake), hashes, relpaths, read_images
        self.batch = IMAGE_BATCH if read_images else BATCH
        self.missing = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[tuple[int, list[str | None], list[bytes | None]]]:
        """(first row, absolute paths, image bytes) per batch of rows."""
        with progress(total=len(self.hashes), desc="export", unit="row") as bar:
            for start in range(0, len(self.hashes), self.batch):
                keys = list(zip(self.hashes[start:start + self.batch], self.relpaths[start:start + self.batch]))
                # rows sharing an asset read it once; reading in this thread beats a pool on 2 cores
                located = {key: _locate(self.store, self.read_images, *key) for key in dict.fromkeys(keys)}
                found = [located[key] for key in keys]
                self.missing += found.count(None)
                found = [NO_ASSET if f is None else f for f in found]
                self.bytes += sum(size for _, _, size in found)
                bar.update(len(found))
                yield start, [p for p, _, _ in found], [d for _, d, _ in found]

    def summary(self) -> dict[str, int]:
        return {"rows": len(self.hashes), "missing_assets": self.missing, "bytes": self.bytes}


def _asset_columns(rows: pd.DataFrame) -> tuple[list, list]:
    return tuple(rows[c].tolist() if c in rows.columns else [None] * len(rows) for c in ("hash", "path"))


def _check_rows(rows: Any, added: str | None) -> None:
    """Raise unless `rows` is a DataFrame without a column named `added` (a column the export adds)."""
    if not isinstance(rows, pd.DataFrame):
        raise ValidationError(f"rows must be a pandas DataFrame (search results), not {type(rows).__name__}")
    if added in rows.columns:
        raise ValidationError(f"the rows already have a column {added!r}, which the export writes; rename it")


def _warn_missing(assets: _Assets) -> None:
    if assets.missing:
        warnings.warn(f"{assets.missing} row(s) point at assets missing from the lake or symlinked in its store "
                      "(never followed); their path and image are null (validate_assets, `datalake db validate`, "
                      "lists them)", stacklevel=3)


def _arrow(rows: pd.DataFrame, added: str | None) -> pa.Table:
    """The rows as Arrow, `path` typed as a string (added when absent)."""
    _check_rows(rows, added)
    try:
        table = pa.Table.from_pandas(rows, preserve_index=False).replace_schema_metadata(None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"the rows cannot be written: {exc}") from None
    if "path" not in table.column_names:
        return table.append_column("path", pa.nulls(len(table), pa.string()))
    if pa.types.is_string(table["path"].type) or pa.types.is_large_string(table["path"].type):
        return table
    return table.set_column(table.column_names.index("path"), "path", table["path"].cast(pa.string()))


def _with_assets(part: pa.Table, paths: list[str | None], image: pa.Array | None, schema: pa.Schema) -> pa.Table:
    """One batch of output: the rows with absolute paths, and the image column when there is one."""
    columns = dict(zip(part.column_names, part.columns))
    columns["path"] = pa.array(paths, schema.field("path").type)
    if image is not None:
        columns["image"] = image
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def _dataset_parts(lake: Lake, rows: pd.DataFrame,
                   include_images: bool) -> tuple["datasets.Features", Iterator[pa.Table], _Assets]:
    """The features of the dataset, its Arrow batches (streamed) and their asset counts."""
    import datasets

    table = _arrow(rows, "image")
    features = datasets.Features.from_arrow_schema(table.schema)
    features["image"] = datasets.Image()
    schema = features.arrow_schema
    table = table.cast(pa.schema([schema.field(name) for name in table.column_names]))
    assets = _Assets(lake, *_asset_columns(rows), read_images=include_images)

    def parts() -> Iterator[pa.Table]:
        for start, paths, datas in assets:
            images = [p is not None and _is_image(p) for p in paths]
            kept = [d if ok else None for d, ok in zip(datas, images)] if include_images else [None] * len(paths)
            linked = [None] * len(paths) if include_images else [p if ok else None for p, ok in zip(paths, images)]
            image = pa.StructArray.from_arrays(
                [pa.array(kept, pa.binary()), pa.array(linked, pa.string())], names=["bytes", "path"],
                mask=pa.array([not ok for ok in images]))
            yield _with_assets(table.slice(start, len(paths)), paths, image, schema)

    return features, parts(), assets


def _check_output(lake: Lake, output: Path) -> None:
    """Refuse an output inside the lake (symlinks resolved): the lake holds only what it writes itself."""
    real = Path(os.path.realpath(output))
    if real == lake.root or lake.root in real.parents:
        raise ValidationError(f"output {output} is inside the lake {lake.root}, which holds only its own files; "
                              "choose an output outside the lake")


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))


@contextlib.contextmanager
def _work_beside(output: Path, make: Callable[[Path], None], remove: Callable[[Path], None]) -> Iterator[Path]:
    """A new hidden name beside `output`, unique to this run (`make` creates it, failing if it exists);
    renamed onto `output` when the block succeeds, removed with `remove` when it fails.

    Unlike tempfile's, the file or folder gets the permissions of any new one (the umask's).
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    while True:
        work = output.with_name(f".{output.name}.{secrets.token_hex(6)}.tmp")
        try:
            make(work)
            break
        except FileExistsError:
            continue
    try:
        yield work
        os.replace(work, output)
    except BaseException:
        remove(work)
        raise


def _write_parquet(lake: Lake, rows: pd.DataFrame, output: Path) -> dict[str, int]:
    if output.is_dir():
        raise ConflictError(f"{output} is a folder; give a file name ending in .parquet")
    table = _arrow(rows, None)
    assets = _Assets(lake, *_asset_columns(rows), read_images=False)
    with _work_beside(output, _new_file, lambda work: work.unlink(missing_ok=True)) as work, \
            pq.ParquetWriter(str(work), table.schema) as writer:
        for start, paths, _ in assets:
            writer.write_table(_with_assets(table.slice(start, len(paths)), paths, None, table.schema))
    return assets.summary()


def _write_shards(parts: Iterator[pa.Table], schema: pa.Schema, folder: Path) -> list[str]:
    """Arrow stream files of about SHARD_BYTES each, named as save_to_disk names them."""
    shards: list[Path] = []
    writer, written = None, 0
    try:
        for part in parts:
            if writer is None or written >= SHARD_BYTES:
                if writer is not None:
                    writer.close()
                shards.append(folder / f".shard-{len(shards)}")
                writer, written = pa.ipc.new_stream(str(shards[-1]), schema), 0
            writer.write_table(part)
            written += part.nbytes
        if writer is None:  # no rows: one empty shard
            shards.append(folder / ".shard-0")
            writer = pa.ipc.new_stream(str(shards[-1]), schema)
    finally:
        if writer is not None:
            writer.close()
    names = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for shard, name in zip(shards, names):
        os.replace(shard, folder / name)
    return names


def _content_digest(folder: Path, names: list[str]) -> str:
    """A fingerprint of the shards' bytes: the same rows give the same dataset, byte for byte."""
    hasher = xxhash.xxh3_64()
    for name in names:
        with open(folder / name, "rb") as f:
            while chunk := f.read(1 << 22):
                hasher.update(chunk)
    return hasher.hexdigest()


def _write_dataset(lake: Lake, rows: pd.DataFrame, output: Path, include_images: bool) -> dict[str, int]:
    """Write the save_to_disk layout (data-*.arrow, dataset_info.json, state.json) directly.

    `Dataset.save_to_disk` would embed the bytes of `image` paths, so paths-only exports could
    not be written with it; writing the files ourselves also avoids a second copy of the data.
    """
    import datasets

    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConflictError(f"{output} already exists; remove it or choose another output")
    features, parts, assets = _dataset_parts(lake, rows, include_images)
    with _work_beside(output, os.mkdir, partial(shutil.rmtree, ignore_errors=True)) as work:
        names = _write_shards(parts, features.arrow_schema, work)
        datasets.DatasetInfo(features=features).write_to_directory(str(work))
        state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": _content_digest(work, names),
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": None}
        (work / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    return assets.summary()


def download(lake: Lake, rows: pd.DataFrame, output: str | Path, format: str = "auto",
             include_images: bool = True) -> dict[str, Any]:
    """Write rows to `output`, streaming in batches; the summary: output, format, rows, missing_assets, bytes.

    - `parquet`: the rows, `path` replaced by the asset's absolute path (`hash` kept); an existing
      file is replaced. `include_images` does not apply.
    - `dataset`: a `save_to_disk` folder (read it with `datasets.load_from_disk`): the same
      columns plus `image`, a `datasets.Image()` feature holding image assets (image extensions)
      — their exact stored bytes with include_images, else their absolute path. Other assets
      (pdf, …) have a null `image` and are reached through `path`. The folder must not exist yet
      (an empty one is fine).
    - `auto`: parquet when `output` ends in `.parquet`, else dataset.

    No rows raise ValidationError and write nothing (an empty output would pass for a result).
    The output appears complete or not at all: it is written beside it under a hidden name unique
    to this run, then renamed, and nothing else there is touched. An output inside the lake
    (symlinks resolved) is refused. `bytes` adds up the size of each row's asset; rows whose
    asset is missing, or a symlink in the store (never followed), are written with a null
    `path`/`image` and counted in `missing_assets`.
    """
    if not isinstance(format, str):
        raise TypeError(f"format must be a str, one of {', '.join(FORMATS)}; got {type(format).__name__}")
    format = FORMAT_ALIASES.get(format, format)
    if format not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)} (or datasets, the same as dataset); "
                              f"got {format!r}")
    output = Path(output).expanduser().absolute()
    _check_output(lake, output)
    if isinstance(rows, pd.DataFrame) and not len(rows):
        raise ValidationError(f"there are no rows to write (the search or collection holds none), so nothing was "
                              f"written to {output}; choose rows that exist (`datalake search` shows them)")
    if format == "auto":
        format = "parquet" if output.suffix.lower() == ".parquet" else "dataset"
    if format == "parquet":
        summary = _write_parquet(lake, rows, output)
    else:
        summary = _write_dataset(lake, rows, output, include_images)
    return {"output": str(output), "format": format, **summary}


def to_dataset(lake: Lake, rows: pd.DataFrame, include_images: bool = True) -> "datasets.Dataset":
    """The rows as an in-memory `datasets.Dataset` with the columns of a dataset download.

    For results too large for memory, `download(..., format="dataset")` and
    `datasets.load_from_disk`, which maps the files instead.
    """
    import datasets

    features, parts, assets = _dataset_parts(lake, rows, include_images)
    table = pa.concat_tables([features.arrow_schema.empty_table(), *parts])
    _warn_missing(assets)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))


def to_pandas(lake: Lake, rows: pd.DataFrame, include_images: bool = True) -> pd.DataFrame:
    """A copy of the rows with absolute asset paths in `path` (null when missing).

    With include_images, an `image` column holds the stored bytes of image assets (null for
    other assets).
    """
    _check_rows(rows, "image" if include_images else None)
    paths, images = [], []
    assets = _Assets(lake, *_asset_columns(rows), read_images=include_images)
    for _, batch_paths, batch_images in assets:
        paths += batch_paths
        images += batch_images
    _warn_missing(assets)
    out = rows.copy()
    out["path"] = pd.Series(paths, index=rows.index)
    if include_images:
        out["image"] = pd.Series(images, index=rows.index, dtype=object)
    return out

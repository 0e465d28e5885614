"""Rows out of the lake: portable exports (a Hugging Face dataset or parquet, in a folder with
copies of their assets), an in-memory Dataset, or pandas.

Every row is kept, in order. A row's asset is looked up only inside `<lake>/assets` (see
validation.StoreFiles), or the `assets/` of the published copy a folder reads; when it is not
there, or is a symlink (never followed: the store file or one of its shard folders), the row
keeps its `hash`, its `path` (and `image`) is null, and it counts in `missing_assets`. Image bytes are copied as stored: never decoded, never re-encoded.

Outputs are written outside the lake only, under a hidden name unique to the run beside them,
and renamed into place: nothing else the user has is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import warnings
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pandas as pd
import pyarrow as pa
import xxhash
import pyarrow.parquet as pq

from .card import write_card
from .catalog.validation import MissingAsset, Store, UnsafeAsset, store_files
from .errors import ConflictError, ValidationError
from .lake import SOURCE_NAME, Lake
from .progress import progress
from .upload.assets import CHUNK, IMAGE_EXTS
from .upload.sources import EXPORT_ASSETS, EXPORT_PARQUET, IMAGE_STRUCT

if TYPE_CHECKING:
    import datasets

FORMATS = ("auto", "parquet", "dataset")
LABEL_FORMATS = ("json", "struct")
LABEL_COLUMN = "label"  # the column labels="struct" structures
IN_LAKE_COLUMNS = ("_file", "_build", "file_row_number")  # left out of exports: they name the lake's files and builds
COLLECTION_KEYS = ("name", "version", "description", "fingerprint", "created_by", "created_at")
NAME_BYTES = 120  # the longest file name stem in an export's assets/, in bytes of UTF-8
WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
FORMAT_ALIASES = {"datasets": "dataset"}  # the name Hugging Face and earlier versions of this tool use
BATCH = 1000  # rows per batch when only paths are written
IMAGE_BATCH = 100  # rows per batch when image bytes are read, to bound memory
COPY_READERS = 16  # objects of a published copy read at once: each waits on a request
SHARD_BYTES = 500 * 1024 * 1024  # as save_to_disk
NO_ASSET = (None, None, 0)

Located = tuple[str | None, bytes | None, int]


def _locate(store: Store, read_images: bool, digest: Any, relpath: Any) -> Located | None:
    """(absolute path, image bytes if read, size) of a row's asset; NO_ASSET without one; None when missing
    or a symlink."""
    if not isinstance(digest, str) and not isinstance(relpath, str):
        return NO_ASSET
    try:
        if read_images and isinstance(relpath, str) and _is_image(relpath):
            path, f = store.open(digest, relpath)
            with f:
                data = f.read()
            return path, data, len(data)
        path, size = store.size(digest, relpath)
        return path, None, size
    except (MissingAsset, UnsafeAsset):
        return None
    except OSError as exc:
        raise store.unreadable(relpath, exc) from None


def _is_image(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in IMAGE_EXTS


class _Placed:
    """Where the asset files of an export go: copied, or hard-linked when on the same file system,
    into `<folder>/assets/`, each once, under its original file name made safe and unique (else its
    hash); rows reference them relative to the folder. Without a folder (in-memory results, for
    this process only), rows reference the store files where they are."""

    def __init__(self, store: Store, folder: Path | None):
        self.store, self.folder = store, folder
        self.placed: dict[str, str] = {}  # hash: the path rows reference
        self.taken: set[str] = set()  # file names used, compared regardless of case

    def path(self, digest: str, relpath: str, stored: str, original: str | None) -> str:
        if self.folder is None:
            return stored
        if digest not in self.placed:
            name = self._name(digest, relpath.rsplit(".", 1)[-1], original)
            target = self.folder / EXPORT_ASSETS / name
            target.parent.mkdir(exist_ok=True)
            _link_or_copy(self.store, digest, relpath, stored, target)
            self.placed[digest] = f"{EXPORT_ASSETS}/{name}"
        return self.placed[digest]

    def _name(self, digest: str, ext: str, original: str | None) -> str:
        stem = _safe_stem(original) if original else ""
        for name in ([f"{stem}.{ext}", f"{stem}-{digest[:8]}.{ext}"] if stem else []) + [f"{digest}.{ext}"]:
            if name.casefold() not in self.taken:
                break
        else:  # another asset's original name is this one's hash name
            name = f"{digest}-{len(self.taken)}.{ext}"
        self.taken.add(name.casefold())
        return name


def _safe_stem(original: str) -> str:
    """The file name of `original` without its extension, every character but letters, digits,
    `_ . -` made `_`, no leading dot, at most NAME_BYTES bytes of UTF-8."""
    stem = re.sub(r"[^\w.-]", "_", original.rsplit("/", 1)[-1]).lstrip(".")
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    while len(stem.encode("utf-8")) > NAME_BYTES:
        stem = stem[:-1]
    return stem


def _link_or_copy(store: Store, digest: str, relpath: str, stored: str, target: Path) -> None:
    """`target` as a hard link to the store file, which is made read-only first (a store file never
    changes), so that writing over the exported file cannot change the lake's; or a copy of its
    bytes where that fails (another file system, no hard links, a store file of another user, an
    object of a published copy)."""
    if store.local:
        try:
            _make_read_only(stored)
            os.link(stored, target, follow_symlinks=False)
            return
        except OSError:
            pass
    try:
        _, source = store.open(digest, relpath)
    except (MissingAsset, UnsafeAsset):
        raise ConflictError(f"asset {relpath} left the lake's store while it was exported; export again") from None
    with source, open(target, "xb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _make_read_only(path: str) -> None:
    """Take the write permissions off the file `path` (never through a symbolic link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~WRITE_BITS)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _readers(store: Store) -> Iterator[Callable]:
    """A `map` for reading a batch's assets: in this thread for the lake's own files (it beats a
    pool on 2 cores), in COPY_READERS threads for a published copy's objects, each read of which
    waits on the network."""
    if store.local:
        yield map
        return
    with ThreadPoolExecutor(COPY_READERS) as pool:
        yield pool.map


class _Assets:
    """Resolves the assets of rows a batch at a time, counting missing ones and their bytes."""

    def __init__(self, lake: Lake, rows: pd.DataFrame, read_images: bool, folder: Path | None = None):
        self.store, self.read_images = store_files(lake), read_images
        self.hashes, self.relpaths, self.names = (rows[c].tolist() if c in rows.columns else [None] * len(rows)
                                                  for c in ("hash", "path", SOURCE_NAME))
        self.placed = _Placed(self.store, folder)
        self.batch = IMAGE_BATCH if read_images else BATCH
        self.missing = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[tuple[int, list[Located], list[Any], list[Any]]]:
        """(first row, located assets, hashes, original names) per batch of rows."""
        with progress(total=len(self.hashes), desc="export", unit="row") as bar, _readers(self.store) as each:
            for start in range(0, len(self.hashes), self.batch):
                end = start + self.batch
                keys = list(zip(self.hashes[start:end], self.relpaths[start:end]))
                distinct = list(dict.fromkeys(keys))  # rows sharing an asset read it once
                located = dict(zip(distinct, each(lambda key: _locate(self.store, self.read_images, *key), distinct)))
                found = [located[key] for key in keys]
                self.missing += found.count(None)
                found = [NO_ASSET if f is None else f for f in found]
                self.bytes += sum(size for _, _, size in found)
                bar.update(len(found))
                yield start, found, keys, self.names[start:end]

    def columns(self) -> Iterator[tuple[int, list[str | None], pa.Array]]:
        """(first row, `path`, `image`) per batch: image bytes with the original name when read,
        else the file's path (placed), for image assets; a null image for others."""
        for start, found, keys, names in self:
            paths, images = [], []
            for (stored, data, _), (digest, relpath), original in zip(found, keys, names):
                original = original if isinstance(original, str) else None
                if stored is None:
                    paths.append(None)
                    images.append(None)
                elif data is not None:
                    paths.append(None)
                    images.append({"bytes": data, "path": original or f"{digest}.{stored.rsplit('.', 1)[-1]}"})
                else:
                    paths.append(self.placed.path(digest, relpath, stored, original))
                    images.append({"bytes": None, "path": paths[-1]} if _is_image(stored) else None)
            yield start, paths, pa.array(images, IMAGE_STRUCT)

    def summary(self) -> dict[str, int]:
        return {"rows": len(self.hashes), "missing_assets": self.missing, "bytes": self.bytes}


def _check_rows(rows: Any, added: str | None) -> None:
    """Raise unless `rows` is a DataFrame without a column named `added` (a column the export adds)."""
    if not isinstance(rows, pd.DataFrame):
        raise ValidationError(f"rows must be a pandas DataFrame (search results), not {type(rows).__name__}")
    if added in rows.columns:
        raise ValidationError(f"the rows already have a column {added!r}, which the export writes; rename it")


def _check_labels(labels: Any) -> str:
    if labels not in LABEL_FORMATS:
        raise ValidationError(f"labels must be one of {', '.join(LABEL_FORMATS)}; got {labels!r}")
    return labels


def _warn_missing(assets: _Assets) -> None:
    if assets.missing:
        warnings.warn(f"{assets.missing} row(s) point at assets missing from the lake or symlinked in its store "
                      "(never followed); their path and image are null (validate_assets, `datalake db validate`, "
                      "lists them)", stacklevel=3)


def _arrow(rows: pd.DataFrame, labels: str) -> pa.Table:
    """The rows as Arrow without the columns that only mean something inside the lake, `path`
    typed as a string (added when absent), the label column structured with labels="struct"."""
    _check_rows(rows, "image")
    rows = rows.drop(columns=[c for c in IN_LAKE_COLUMNS if c in rows.columns])
    try:
        table = pa.Table.from_pandas(rows, preserve_index=False).replace_schema_metadata(None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"the rows cannot be written: {exc}") from None
    if labels == "struct" and LABEL_COLUMN in table.column_names:
        table = table.set_column(table.column_names.index(LABEL_COLUMN), LABEL_COLUMN,
                                 _structured(table[LABEL_COLUMN]))
    if "path" not in table.column_names:
        return table.append_column("path", pa.nulls(len(table), pa.string()))
    return table.set_column(table.column_names.index("path"), "path", table["path"].cast(pa.string()))


def _structured(column: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The JSON text of a label column as one nested Arrow type; ValidationError naming the first
    row that is not JSON, or the shapes that differ."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column  # numbers or a nested type already
    values = []
    for row, text in enumerate(column.to_pylist()):
        try:
            values.append(None if text is None else json.loads(text))
        except ValueError:
            raise ValidationError(f"column {LABEL_COLUMN!r} holds text that is not JSON in row {row} "
                                  f"({text[:40]!r}), so labels='struct' cannot give it as a nested feature; "
                                  "use labels='json' (--labels json) to keep the text") from None
    shapes: dict[str, int] = {}  # each shape met: the first row holding it
    for row, value in enumerate(values):
        if value is not None:
            shapes.setdefault(_shape(value), row)
    if len(shapes) > 1:
        (first, row), (other, other_row) = list(shapes.items())[:2]
        raise ValidationError(_not_one_shape(f"row {row} holds {first}, row {other_row} {other}"))
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationError(_not_one_shape(str(exc))) from None


def _shape(value: Any) -> str:
    """The top level of a JSON value, as a label's shape is compared: an object's keys, or its kind."""
    if isinstance(value, dict):
        return f"keys {', '.join(sorted(value))}" if value else "an empty object"
    return {list: "a list", str: "text", bool: "true or false"}.get(type(value), "a number")


def _not_one_shape(detail: str) -> str:
    return (f"the rows of column {LABEL_COLUMN!r} do not share one JSON shape ({detail}), so labels='struct' "
            "cannot give them one nested feature; use labels='json' (--labels json) to keep the text")


def _dataset_parts(lake: Lake, rows: pd.DataFrame, include_images: bool, labels: str,
                   folder: Path | None = None) -> tuple["datasets.Features", Iterator[pa.Table], _Assets]:
    """The features of the dataset, its Arrow batches (streamed) and their asset counts; asset files
    not embedded are placed in `folder` when given."""
    import datasets

    table = _arrow(rows, labels)
    features = datasets.Features.from_arrow_schema(table.schema)
    features["image"] = datasets.Image()
    schema = features.arrow_schema
    table = table.cast(pa.schema([schema.field(name) for name in table.column_names]))
    assets = _Assets(lake, rows, include_images, folder)

    def parts() -> Iterator[pa.Table]:
        for start, paths, image in assets.columns():
            columns = dict(zip(table.column_names, table.slice(start, len(paths)).columns))
            columns["path"] = pa.array(paths, pa.string())
            columns["image"] = image
            yield pa.Table.from_arrays(list(columns.values()), schema=schema)

    return features, parts(), assets


def _check_output(lake: Lake, output: Path) -> None:
    """Refuse an output inside the lake (symlinks resolved): the lake holds only what it writes itself."""
    real = Path(os.path.realpath(output))
    if real == lake.root or lake.root in real.parents:
        raise ValidationError(f"output {output} is inside the lake {lake.root}, which holds only its own files; "
                              "choose an output outside the lake")


@contextlib.contextmanager
def _work_beside(output: Path) -> Iterator[Path]:
    """A new hidden folder beside `output`, unique to this run, with the permissions of any new one
    (the umask's, unlike tempfile's); renamed onto `output` when the block succeeds, removed when it
    fails."""
    output.parent.mkdir(parents=True, exist_ok=True)
    while True:
        work = output.with_name(f".{output.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.mkdir(work)
            break
        except FileExistsError:
            continue
    try:
        yield work
        os.replace(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _write_parquet(features: "datasets.Features", parts: Iterator[pa.Table], work: Path,
                   about: dict[str, Any]) -> None:
    """`data.parquet`, its schema carrying the `datasets` features (so `load_dataset("parquet")`
    reads `image` as an Image) and `about` under the key `datalake`."""
    metadata = {b"huggingface": json.dumps({"info": {"features": features.to_dict()}}).encode("utf-8"),
                b"datalake": json.dumps(about, ensure_ascii=False).encode("utf-8")}
    schema = features.arrow_schema.with_metadata(metadata)
    with pq.ParquetWriter(str(work / EXPORT_PARQUET), schema) as writer:
        for part in parts:
            writer.write_table(part.replace_schema_metadata(metadata))


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


def _write_dataset(features: "datasets.Features", parts: Iterator[pa.Table], work: Path,
                   about: dict[str, Any]) -> None:
    """Write the save_to_disk layout (data-*.arrow, dataset_info.json, state.json) directly, with
    the collection's description and `about` (key `datalake`) in dataset_info.json.

    `Dataset.save_to_disk` would embed the bytes of `image` paths, so paths-only exports could
    not be written with it; writing the files ourselves also avoids a second copy of the data.
    """
    import datasets

    names = _write_shards(parts, features.arrow_schema, work)
    datasets.DatasetInfo(description=about.get("description", ""), features=features).write_to_directory(str(work))
    info_path = work / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["datalake"] = about
    info_path.write_text(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": _content_digest(work, names),
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
             "_output_all_columns": False, "_split": None}
    (work / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")


def _about(collection: dict[str, Any] | None, rows: int) -> dict[str, Any]:
    """What an export says of itself: its rows and, for a collection, its name, version,
    description, fingerprint and who froze it when."""
    about: dict[str, Any] = {"rows": rows}
    if collection:
        about.update({key: collection[key] for key in COLLECTION_KEYS if key in collection})
        about["collection"] = about.pop("name", None)
    return about


def _check_format(format: Any, output: Path) -> str:
    if not isinstance(format, str):
        raise TypeError(f"format must be a str, one of {', '.join(FORMATS)}; got {type(format).__name__}")
    format = FORMAT_ALIASES.get(format, format)
    if format not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)} (or datasets, the same as dataset); "
                              f"got {format!r}")
    if format == "auto":
        return "parquet" if output.suffix.lower() == ".parquet" else "dataset"
    return format


def download(lake: Lake, rows: pd.DataFrame, output: str | Path, format: str = "auto",
             include_images: bool = True, labels: str = "json",
             collection: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write rows to the folder `output`, streaming in batches; the summary: output, format, rows,
    missing_assets, bytes. The folder holds no path into the lake, so it can be moved or zipped
    (docs/design.md, "Exports").

    - `dataset`: a `save_to_disk` folder (read it with `datasets.load_from_disk`).
    - `parquet`: the same rows as `data.parquet` in the folder (read that file; its schema carries
      the `datasets` features).
    - `auto`: parquet when `output` ends in `.parquet`, else dataset.

    Each holds the rows' columns but those that only mean something inside the lake
    (IN_LAKE_COLUMNS), and `image`, a `datasets.Image()` holding image assets: with include_images
    their exact stored bytes, `image.path` their original file name (`_source_name`, else
    `<hash>.<ext>`); without, the path of the file in `assets/`. `path` is the asset's file in
    `assets/` (relative to the folder), null where the image rides in `image`: assets not embedded
    (every one without include_images, others than images always) are copied there, or hard-linked
    on the same file system, under their original file name made safe and unique (else their hash).
    `labels="struct"` gives a `label` column of JSON as a nested feature (ValidationError when its
    rows do not share one shape); "json" keeps the text. `collection` (a version's metadata)
    describes the export: the description, and a `datalake` key with name, version and fingerprint,
    in dataset_info.json (dataset) or the parquet schema's metadata.

    No rows raise ValidationError and write nothing (an empty output would pass for a result).
    The folder must not exist yet (an empty one is fine). It appears complete or not at all: it is
    written beside it under a hidden name unique to this run, then renamed, and nothing else there
    is touched. An output inside the lake (symlinks resolved) is refused. `bytes` adds up the size
    of each row's asset; rows whose asset is missing, or a symlink in the store (never followed),
    are written with a null `path`/`image` and counted in `missing_assets`.
    """
    output = Path(output).expanduser().absolute()
    format = _check_format(format, output)
    _check_labels(labels)
    _check_output(lake, output)
    if isinstance(rows, pd.DataFrame) and not len(rows):
        raise ValidationError(f"there are no rows to write (the search or collection holds none), so nothing was "
                              f"written to {output}; choose rows that exist (`datalake search` shows them)")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConflictError(f"{output} already exists; remove it or choose another output")
    with _work_beside(output) as work:
        features, parts, assets = _dataset_parts(lake, rows, include_images, labels, work)
        about = _about(collection, len(rows))
        (_write_parquet if format == "parquet" else _write_dataset)(features, parts, work, about)
        write_card(lake, rows, work, collection)  # README.md: the export is complete, renamed as the block ends
    return {"output": str(output), "format": format, **assets.summary()}


def to_dataset(lake: Lake, rows: pd.DataFrame, include_images: bool = True, labels: str = "json",
               collection: dict[str, Any] | None = None) -> "datasets.Dataset":
    """The rows as an in-memory `datasets.Dataset` with the columns of a dataset download; without
    include_images, `image` and `path` point at the lake's store files (this process only: a
    download copies them).

    For results too large for memory, `download(..., format="dataset")` and
    `datasets.load_from_disk`, which maps the files instead.
    """
    import datasets

    _check_labels(labels)
    features, parts, assets = _dataset_parts(lake, rows, include_images, labels)
    table = pa.concat_tables([features.arrow_schema.empty_table(), *parts])
    _warn_missing(assets)
    description = (collection or {}).get("description", "")
    return datasets.Dataset(table, info=datasets.DatasetInfo(description=description, features=features))


def to_pandas(lake: Lake, rows: pd.DataFrame, include_images: bool = True) -> pd.DataFrame:
    """A copy of the rows with absolute asset paths in `path` (null when missing).

    With include_images, an `image` column holds the stored bytes of image assets (null for
    other assets).
    """
    _check_rows(rows, "image" if include_images else None)
    paths, images = [], []
    assets = _Assets(lake, rows, include_images)
    for _, found, _, _ in assets:
        paths += [stored for stored, _, _ in found]
        images += [data for _, data, _ in found]
    _warn_missing(assets)
    out = rows.copy()
    out["path"] = pd.Series(paths, index=rows.index)
    if include_images:
        out["image"] = pd.Series(images, index=rows.index, dtype=object)
    return out

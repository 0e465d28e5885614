"""Reading what users upload: parquet files and folders, save_to_disk folders, DataFrames, Datasets.

Every source becomes a stream of Arrow record batches, each with the folder that relative file
paths in it are resolved against. Nothing reads a whole dataset into memory.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ValidationError, storage_problem

BATCH_ROWS = 256
BATCH_BYTES = 32 * 1024 * 1024
READ_BUFFER = 8 * 1024 * 1024
HF_DISK_MARKERS = ("state.json", "dataset_info.json")
EXPORT_PARQUET, EXPORT_ASSETS = "data.parquet", "assets"  # a parquet export's folder (export.py) holds both


@dataclass
class Source:
    """A readable upload source: its description, Arrow schema, row count and a batch iterator."""

    description: str
    schema: pa.Schema
    num_rows: int
    batches: Callable[[], Iterator[tuple[pa.RecordBatch, Path]]]


def open_source(data_source: Any) -> Source:
    """Open any supported source; a clear ValidationError when it is none of them."""
    if isinstance(data_source, (str, Path)):
        return _open_path(Path(data_source).expanduser())
    if _is_hf_dataset(data_source):
        return _from_hf_dataset(data_source, "datasets.Dataset")
    if type(data_source).__name__ == "DatasetDict":
        raise ValidationError(_dataset_dict_hint(list(data_source)))
    import pandas as pd

    if isinstance(data_source, pd.DataFrame):
        return _from_dataframe(data_source)
    raise ValidationError(
        f"cannot upload a {type(data_source).__name__}: give a parquet file or folder, "
        "a save_to_disk folder, a pandas DataFrame or a datasets.Dataset"
    )


def _is_hf_dataset(obj: Any) -> bool:
    return type(obj).__name__ == "Dataset" and type(obj).__module__.startswith("datasets")


def _dataset_dict_hint(splits: list[str]) -> str:
    return (f"this is a DatasetDict with splits {', '.join(splits)}; upload one split at a time, "
            f"e.g. dataset['{splits[0] if splits else 'train'}']")


def _open_path(path: Path) -> Source:
    if not path.exists():
        raise ValidationError(f"data source {str(path)!r} does not exist")
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
            raise ValidationError(_dataset_dict_hint(splits) + f" (folder {path}/<split>)")
        if any((path / m).is_file() for m in HF_DISK_MARKERS) and list(path.glob("*.arrow")):
            import datasets

            return _from_hf_dataset(datasets.load_from_disk(str(path)), f"save_to_disk folder {path}", path.resolve())
        if (path / EXPORT_PARQUET).is_file() and (path / EXPORT_ASSETS).is_dir():  # a parquet export
            return _from_parquet_files([path / EXPORT_PARQUET], f"parquet export {path}")
        files = sorted(p for p in path.rglob("*.parquet") if not any(part.startswith(".") for part in p.parts))
        if not files:
            raise ValidationError(f"folder {str(path)!r} holds no .parquet files and is not a save_to_disk folder")
        return _from_parquet_files(files, f"parquet folder {path}")
    return _from_parquet_files([path], f"parquet file {path}")


def _from_parquet_files(files: list[Path], description: str) -> Source:
    schemas, num_rows = [], 0
    for f in files:
        try:
            metadata = pq.read_metadata(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(f"{str(f)!r} is not a readable parquet file ({exc})") from None
        schemas.append(metadata.schema.to_arrow_schema())
        num_rows += metadata.num_rows
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationError(f"the parquet files of {description} have conflicting columns: {exc}") from None

    def batches() -> Iterator[tuple[pa.RecordBatch, Path]]:
        for f in files:
            reader = pq.ParquetFile(f, buffer_size=READ_BUFFER, pre_buffer=False)
            groups = [reader.metadata.row_group(i) for i in range(reader.metadata.num_row_groups)]
            rows = _batch_rows(sum(g.total_byte_size for g in groups), sum(g.num_rows for g in groups))
            base = f.parent.resolve()
            with _damage_named(f):
                for batch in reader.iter_batches(batch_size=rows):
                    yield _conform(batch, schema), base

    return Source(description, schema, num_rows, batches)


@contextlib.contextmanager
def _damage_named(path: Path) -> Iterator[None]:
    """A file that cannot be read to its end is damaged: say which, and what to do."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        if storage_problem(exc):
            raise
        raise ValidationError(f"{str(path)!r} is damaged and cannot be read to its end ({exc}); "
                              "write it again from its source") from None


def _batch_rows(nbytes: int, nrows: int) -> int:
    """Rows per batch so that a batch holds about BATCH_BYTES of data, whatever the row size."""
    per_row = max(1, nbytes // max(1, nrows))
    return max(8, min(BATCH_ROWS, BATCH_BYTES // per_row))


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with exactly the unified schema's columns (missing ones as nulls)."""
    if batch.schema == schema:
        return batch
    arrays = [batch.column(f.name).cast(f.type) if f.name in batch.schema.names
              else pa.nulls(batch.num_rows, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _from_hf_dataset(ds: Any, description: str, base: Path | None = None) -> Source:
    """A Dataset's rows; relative paths in them are resolved against `base` (a save_to_disk
    folder's own: an export's `assets/` are there), else the current folder."""
    table_iter = ds.with_format("arrow")
    schema = ds.features.arrow_schema
    rows = _batch_rows(ds.data.nbytes, len(ds))

    def batches() -> Iterator[tuple[pa.RecordBatch, Path]]:
        for table in table_iter.iter(batch_size=rows):
            for batch in table.cast(schema).to_batches():
                yield batch, base or Path.cwd()

    return Source(f"{description} ({len(ds)} rows)", schema, len(ds), batches)


def _from_dataframe(df: Any) -> Source:
    table = _dataframe_table(df)

    def batches() -> Iterator[tuple[pa.RecordBatch, Path]]:
        for batch in table.to_batches(max_chunksize=_batch_rows(table.nbytes, table.num_rows)):
            yield batch, Path.cwd()

    return Source(f"pandas DataFrame ({len(df)} rows)", table.schema, table.num_rows, batches)


def _dataframe_table(df: Any) -> pa.Table:
    """The DataFrame as Arrow: PIL images as their bytes, Hugging Face `Image` dicts as Image
    structs, other dict/list cells as JSON text; a clear error naming a column Arrow cannot take."""
    from PIL import Image

    names = [str(c) for c in df.columns]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValidationError(f"column {twice[0]!r} appears twice; give each column its own name")
    arrays = []
    for name, (_, column) in zip(names, df.items()):
        values = column.dropna() if column.dtype == object else ()
        if any(isinstance(v, Image.Image) for v in values):
            column = [_pil_bytes(v) if isinstance(v, Image.Image) else v for v in column]
        elif len(values) and all(_is_image_dict(v) for v in values):
            arrays.append(_array(name, [v if isinstance(v, dict) else None for v in column], IMAGE_STRUCT))
            continue
        elif any(isinstance(v, (dict, list, tuple)) or hasattr(v, "tolist") for v in values):
            column = [None if _is_missing(v) else to_json(v) for v in column]
        arrays.append(_array(name, column))
    return pa.Table.from_arrays(arrays, names=names)


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _is_image_dict(value: Any) -> bool:
    """A Hugging Face `Image` cell as pandas holds it: {"bytes": ..., "path": ...}."""
    return isinstance(value, dict) and set(value) <= {"bytes", "path"} and "bytes" in value


def _array(name: str, values: Any, type: pa.DataType | None = None) -> pa.Array:
    """One column as Arrow (a pandas Series, or a list made from one)."""
    try:
        if hasattr(values, "dtype"):
            return pa.Array.from_pandas(values, type=type)
        return pa.array(values, type=type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"column {name!r} cannot be stored: {exc}; give it one type "
                              f"(e.g. df[{name!r}] = df[{name!r}].astype(str))") from None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _pil_bytes(image: Any) -> bytes:
    """The original file's bytes for an image opened from a file, else a lossless PNG encoding."""
    filename = getattr(image, "filename", "")
    if filename and image.format and Path(filename).is_file():
        return Path(filename).read_bytes()
    buffer = io.BytesIO()
    image.save(buffer, format=image.format or "PNG")
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)


_JSON = json.JSONEncoder(ensure_ascii=False, default=_json_default)  # json.dumps's format, made once


def to_json(value: Any) -> str:
    """JSON text (UTF-8, not escaped) of a dict/list cell."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return _JSON.encode(value)


def json_column(array: pa.Array) -> pa.Array:
    """A nested Arrow column (struct, list, map) as JSON text (Arrow values are plain Python ones)."""
    values = array.to_pylist()
    if pa.types.is_map(array.type):
        values = [None if v is None else dict(v) for v in values]
    encode = _JSON.encode
    return pa.array([None if v is None else encode(v) for v in values], type=pa.string())

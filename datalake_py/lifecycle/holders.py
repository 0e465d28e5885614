"""The files that hold rows pointing at stored assets, and the two things done with them: count
or drop the rows a selection takes, and gather every hash they still reference.

Rows live in catalog parts, in collection versions' members, and in staged uploads (pending,
processing or failed, each of which may still land). An upload still being written and a
collection being imported are not listed: they hold the `store` lock shared, so they do not exist
while a retraction or a garbage collection holds it (lifecycle/__init__.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..fs import atomic_path, read_json
from ..lake import DATA_FILE, MANIFEST_FILE, MEMBERS_FILE, PART_FILES, ROW_NUMBER, Lake, Partition
from ..processing.processor import manifest_partition
from .selection import Selection

STAGED = ("failed", "pending", "processing")  # the stages of uploads that may still land


@dataclass(frozen=True)
class RowFile:
    """A parquet file of rows: a catalog part, a collection version's members, or a staged upload's data."""

    path: Path
    kind: str  # "part", "members" or "staged"
    partition: Partition | None = None  # a part's, or a staged upload's; members carry theirs as columns
    name: str = ""  # the collection of members, or the staged upload's id
    version: str = ""  # the collection version of members, or the staged upload's stage


def catalog_parts(lake: Lake) -> Iterator[RowFile]:
    for path in sorted(lake.catalog.glob(PART_FILES)):
        yield part_file(lake, path)


def part_file(lake: Lake, path: Path) -> RowFile:
    """The part file at `path`, under catalog/<partition folders>/, with its partition."""
    names = dict(level.split("=", 1) for level in path.relative_to(lake.catalog).parts[:-1])
    return RowFile(path, "part", Partition(**names))


def member_files(lake: Lake) -> Iterator[RowFile]:
    """The members of every collection version (folders being written, named `.…`, are not versions)."""
    for path in sorted(lake.collections.glob(f"[!.]*/[!.]*/{MEMBERS_FILE}")):
        yield RowFile(path, "members", name=path.parent.parent.name, version=path.parent.name)


def staged_files(lake: Lake) -> Iterator[RowFile]:
    for stage in STAGED:
        for folder in sorted(lake.stage(stage).iterdir()):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                partition = manifest_partition(read_json(folder / MANIFEST_FILE))
                if (folder / DATA_FILE).is_file():
                    yield RowFile(folder / DATA_FILE, "staged", partition, folder.name, stage)


def columns_of(path: Path) -> set[str]:
    return set(pq.read_schema(path).names)


READ = "read_parquet(?, hive_partitioning=false)"  # one file's rows, without columns from its folders


def selected(con: duckdb.DuckDBPyConnection, file: RowFile, selection: Selection) -> tuple[int, list[str]]:
    """How many rows of `file` the selection takes, and the distinct hashes of their assets."""
    if file.partition is not None and not selection.takes_partition(file.partition):
        return 0, []
    columns = columns_of(file.path)
    condition, params = selection.condition(columns, file.partition)
    hashes = "list(distinct hash) filter (where hash is not null)" if "hash" in columns else "[]"
    rows, found = con.execute(f"select count(*), {hashes} from {READ} where {condition}",
                              [str(file.path), *params]).fetchone()
    return rows, sorted(found or [])


def drop_selected(con: duckdb.DuckDBPyConnection, file: RowFile, selection: Selection) -> int:
    """Rewrite `file` without the rows the selection takes (atomically, same schema, order and
    permissions; a part's rows numbered as their upload wrote them, ROW_NUMBER); the rows dropped.
    A part left without rows goes, and so do its partition folders left empty; members stay, with
    no rows. Running it again drops nothing more."""
    if not file.path.exists():  # a run killed after removing it may have left its folders
        if file.kind == "part":
            remove_empty_partition(file.path.parent)
        return 0
    condition, params = selection.condition(columns_of(file.path), file.partition)
    keep = [row for (row,) in con.execute(
        f"select file_row_number from read_parquet(?, file_row_number=true, hive_partitioning=false) "
        f"where not {condition} order by 1", [str(file.path), *params]).fetchall()]
    whole = pq.ParquetFile(file.path)
    dropped = whole.metadata.num_rows - len(keep)
    if not dropped:
        return 0
    if keep or file.kind != "part":
        mode = os.stat(file.path).st_mode & 0o777
        with atomic_path(file.path) as tmp:
            kept = whole.read().take(pa.array(keep, pa.int64()))
            if file.kind == "part" and ROW_NUMBER not in kept.column_names:  # else kept from a rewrite before
                kept = kept.append_column(ROW_NUMBER, pa.array(keep, pa.int64()))
            pq.write_table(kept, tmp, compression="zstd")
            os.chmod(tmp, mode)
    else:
        file.path.unlink()
        remove_empty_partition(file.path.parent)
    return dropped


def remove_empty_partition(folder: Path) -> None:
    """A partition's folder (variant=…) and those above it (task=, dataset=, provider=), each if empty."""
    for level in (folder, *folder.parents[:3]):
        with contextlib.suppress(OSError):
            level.rmdir()


def referenced_hashes(con: duckdb.DuckDBPyConnection, lake: Lake, table: str,
                      leaving: Selection | None = None) -> None:
    """Make the temporary table `table` (hash) of every asset a row of the lake points at (catalog
    parts, collection members, staged uploads), not counting the rows `leaving` takes."""
    con.execute(f"create or replace temp table {table} (hash varchar)")
    together = []  # files none of whose rows leave: read in one go
    for file in (f for source in (catalog_parts, member_files, staged_files) for f in source(lake)):
        columns = columns_of(file.path)
        if "hash" not in columns:
            continue
        if leaving is None or (file.partition is not None and not leaving.takes_partition(file.partition)):
            together.append(str(file.path))
            continue
        condition, params = leaving.condition(columns, file.partition)
        con.execute(f"insert into {table} select distinct hash from {READ} where hash is not null "
                    f"and not {condition}", [str(file.path), *params])
    if together:
        con.execute(f"insert into {table} select distinct hash from "
                    "read_parquet(?, union_by_name=true, hive_partitioning=false) where hash is not null", [together])

"""A database build takes the lake's own columns from the lake, never from user data.

Part files that the upload side would refuse (columns named like the lake's, quotes, unicode), a
user's export saved among the part files, and odd lake folder names: the catalog still holds
exactly the rows of the part files, with partition, row_id and _file from the path, through
incremental builds and a full refresh, and `behind` tells when it does not.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import process
from datalake import DatalakeClient, DbBuildError, ValidationError
from datalake.catalog.db import PROJECT_DIR, dbt_env
from datalake.cli import app as cli

PART_GLOB = "catalog/provider=*/dataset=*/task=*/variant=*/part-*.parquet"


def partition_folder(lake: Path, variant: str) -> Path:
    folder = lake / "catalog" / "provider=test" / "dataset=d" / "task=raw" / f"variant={variant}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_part(lake: Path, table: pa.Table, variant: str = "poison", upload_id: str = "poison") -> Path:
    """A part file written straight into the catalog, as the upload side would never write it."""
    path = partition_folder(lake, variant) / f"part-{upload_id}.parquet"
    pq.write_table(table, path)
    return path


def upload(client: DatalakeClient, first: int) -> None:
    client.upload_raw(pd.DataFrame({"n": [first, first + 1]}), provider="test", dataset="d")
    process(client)


def rows_per_part(lake: Path) -> dict[str, int]:
    return {str(p): pq.read_metadata(p).num_rows for p in lake.glob(PART_GLOB)}


def rows_per_file_in_catalog(client: DatalakeClient) -> dict[str, int]:
    counts = client.sql("select _file, count(*) as n from catalog group by _file")
    return dict(zip(counts["_file"], counts["n"]))


def poison_filename(lake: Path) -> None:
    write_part(lake, pa.table({"n": [100], "filename": ["mine.txt"]}))


def poison_lake_columns(lake: Path) -> None:
    write_part(lake, pa.table({"n": [101, 102], "row_id": ["r", "r"], "_file": ["f", "f"], "_Build": [7, 7],
                               "provider": ["evil", "evil"], "Dataset": ["evil", "evil"]}))


def poison_double_quote(lake: Path) -> None:
    write_part(lake, pa.table({"n": [103], 'say "hi"': ["hi"]}))


def poison_unicode(lake: Path) -> None:
    write_part(lake, pa.table({"n": [104], "이름 ✓": ["값"]}))


def foreign_file(lake: Path) -> None:
    """A user's export saved among the part files, and a hidden file being written."""
    folder = next((lake / "catalog").rglob("part-*.parquet")).parent
    pq.write_table(pa.table({"n": [1, 2, 3]}), folder / "my_export.parquet")
    pq.write_table(pa.table({"n": [4]}), folder / ".part-x.parquet")


POISONS: dict[str, Callable[[Path], None]] = {
    "user column filename": poison_filename,
    "row_id, _file, _build, provider columns": poison_lake_columns,
    "column with a double quote": poison_double_quote,
    "unicode column": poison_unicode,
}


def assert_catalog_holds_the_parts(client: DatalakeClient) -> None:
    assert rows_per_file_in_catalog(client) == rows_per_part(client.base_path)
    assert client.get_db_info()["behind"] is False


def build_upload_and_rebuild(client: DatalakeClient, plant: Callable[[Path], None], plants_a_part: bool) -> None:
    """Build, plant the poison (behind only if it is a part), build, upload once more (behind),
    build; each build holds exactly the part files' rows, and a full refresh the same rows."""
    upload(client, 1)
    client.build_db()
    plant(client.base_path)
    assert client.get_db_info()["behind"] is plants_a_part
    client.build_db()
    assert_catalog_holds_the_parts(client)
    upload(client, 10)
    assert client.get_db_info()["behind"] is True
    client.build_db()
    assert_catalog_holds_the_parts(client)
    incremental = client.sql("select * exclude (_build) from catalog order by row_id")
    client.build_db(full_refresh=True)
    assert_catalog_holds_the_parts(client)
    refreshed = client.sql("select * exclude (_build) from catalog order by row_id")
    pd.testing.assert_frame_equal(incremental.sort_index(axis=1), refreshed.sort_index(axis=1))


@pytest.mark.parametrize("poison", POISONS)
def test_poisoned_part_files_build_with_the_lakes_own_columns(client, poison):
    build_upload_and_rebuild(client, POISONS[poison], plants_a_part=True)
    poisoned = client.sql("select * from catalog where variant = 'poison' order by row_id")
    poison_file = str(partition_folder(client.base_path, "poison") / "part-poison.parquet")
    assert poisoned["provider"].tolist() == ["test"] * len(poisoned)
    assert poisoned["dataset"].tolist() == ["d"] * len(poisoned)
    assert poisoned["_file"].tolist() == [poison_file] * len(poisoned)
    assert poisoned["row_id"].tolist() == [f"poison:{i}" for i in range(len(poisoned))]
    user_columns = {"user column filename": ("filename", ["mine.txt"]),
                    "column with a double quote": ('say "hi"', ["hi"]),
                    "unicode column": ("이름 ✓", ["값"])}
    if poison in user_columns:
        column, values = user_columns[poison]
        assert poisoned[column].tolist() == values
    assert sorted(client.sql("select n from catalog")["n"]) == [1, 2, 10, 11, *sorted(poisoned["n"])]


def test_a_users_export_among_the_part_files_does_not_feed_the_build(client):
    build_upload_and_rebuild(client, foreign_file, plants_a_part=False)
    assert sorted(client.sql("select n from catalog")["n"]) == [1, 2, 10, 11]


@pytest.mark.parametrize("folder", ["it's a lake", "lake [1] * é ✓ #$%{x}"])
def test_any_lake_folder_name_builds(tmp_path, folder):
    client = DatalakeClient(user_id="alice", base_path=tmp_path / folder / "lake", create_dirs=True, num_proc=2)
    build_upload_and_rebuild(client, poison_lake_columns, plants_a_part=True)
    assert client.sql("select count(*) as n from catalog")["n"][0] == 6


def test_a_lake_folder_with_a_question_mark_is_refused_clearly(tmp_path):
    client = DatalakeClient(user_id="alice", base_path=tmp_path / "why?" / "lake", create_dirs=True)
    with pytest.raises(ValidationError, match=r"has a '\?', under which DuckDB cannot write its database"):
        client.build_db()


def test_a_part_with_a_file_row_number_column_stops_the_build_naming_it(client):
    upload(client, 1)
    client.build_db()
    part = write_part(client.base_path, pa.table({"n": [5], "file_row_number": [9]}))
    with pytest.raises(DbBuildError) as failure:
        client.build_db()
    assert "part file(s) with a column named file_row_number" in str(failure.value)
    assert str(part) in str(failure.value)
    assert client.sql("select count(*) as n from catalog")["n"][0] == 2  # the previous database is kept
    assert client.get_db_info()["behind"] is True


def claim_one_more_row(part: Path) -> None:
    """Damage a part file: its footer claims one row more than it holds (num_rows, field 3 of the
    footer, written right after the schema list as a one-byte zigzag varint)."""
    data = bytearray(part.read_bytes())
    footer_start = len(data) - 8 - struct.unpack("<i", data[-8:-4])[0]
    rows = pq.read_metadata(part).num_rows
    at = data.index(bytes([0x00, 0x16, rows * 2]), footer_start) + 2
    data[at] = (rows + 1) * 2
    part.write_bytes(data)
    assert pq.read_metadata(part).num_rows == rows + 1 and pq.read_table(part).num_rows == rows


def test_a_build_that_would_lose_rows_fails_naming_the_part_file(client):
    upload(client, 1)
    client.build_db()
    part = write_part(client.base_path, pa.table({"n": [7, 8]}))
    claim_one_more_row(part)
    assert client.get_db_info()["behind"] is True
    with pytest.raises(DbBuildError) as failure:
        client.build_db()
    assert "the catalog does not hold exactly the rows of these part files" in str(failure.value)
    assert f"{part}: 3 row(s) in the file, 2 in the catalog" in str(failure.value)
    assert client.get_db_info()["behind"] is True


def test_a_query_that_does_not_tokenize_is_a_clear_error(client):
    upload(client, 1)
    client.build_db()
    result = CliRunner().invoke(cli, ["--base-path", str(client.base_path), "query", "select 1 /* x"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: the SQL does not parse: Error tokenizing 'select 1 /* '; "
                             "check for an unclosed quote or comment\n")


def test_compiling_the_project_leaves_the_database_alone(client):
    """`dbt compile` renders the incremental models against the database; only a build changes it."""
    upload(client, 1)
    client.build_db()
    client.upload_raw(pd.DataFrame({"n": [5]}), provider="test", dataset="d", overwrite=True)
    process(client)
    target = client.base_path / "db" / "compile-target"
    compiled = subprocess.run([str(Path(sys.executable).parent / "dbt"), "compile", "--profiles-dir", "profiles",
                               "--target-path", str(target)], cwd=PROJECT_DIR, env=dbt_env(client.lake),
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    assert sorted(client.sql("select n from catalog")["n"]) == [1, 2]
    assert client.get_db_info()["behind"] is True
    client.build_db()
    assert sorted(client.sql("select n from catalog")["n"]) == [5]

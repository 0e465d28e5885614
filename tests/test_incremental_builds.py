"""Incremental builds give exactly the tables a full build gives, and check what they add."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import image_bytes, process
from datalake import DatalakeClient, DbBuildError, DuckDBClient
from datalake.cli import app as cli
from datalake.sql import quote

MARTS = ["catalog", "part_files", "partitions", "assets", "uploads", "collections", "collection_members",
         "collection_history"]
OCR = {"lang": "ko", "src": "real"}


def marts(client: DatalakeClient) -> dict[str, pd.DataFrame]:
    """Every mart's rows in order, its columns by name (an update adds new columns at the end), but
    the catalog's `_build` (which build read a row)."""
    tables = {}
    with DuckDBClient(client.db_path) as db:
        for table in MARTS:
            columns = sorted(c for c in db.get_table_info(table)["column_name"] if c != "_build")
            tables[table] = db.execute_query(
                f"select {', '.join(quote(c) for c in columns)} from {table} order by all")
    return tables


def ocr_rows(images: range, text: str) -> pd.DataFrame:
    return pd.DataFrame({"image": [image_bytes(i) for i in images], "label": [f"{text} {i}" for i in images]})


def build_two_korean_rows(client: DatalakeClient) -> None:
    client.upload_task(ocr_rows(range(2), "a"), provider="huggingface", dataset="coco", task="ocr",
                       variant="v1", meta=OCR)
    process(client)
    client.build_db()


def allow_languages(client: DatalakeClient, languages: list[str]) -> None:
    """Change the rules under stored rows: the ocr task's `lang` may take only `languages`."""
    rules = yaml.safe_load(client.lake.schema_path.read_text())
    rules["tasks"]["ocr"]["allowed_values"]["lang"] = languages
    client.lake.schema_path.write_text(yaml.safe_dump(rules))


def build(client: DatalakeClient) -> dict:
    info = client.build_db()
    assert info["incremental"] is True
    return info


def test_uploads_an_overwrite_and_collection_deletes_build_as_a_full_build_does(client):
    client.upload_raw(pd.DataFrame({"image": [image_bytes(i) for i in range(6)], "n": range(6)}),
                      provider="huggingface", dataset="coco")
    client.upload_task(ocr_rows(range(3), "a"), provider="huggingface", dataset="coco", task="ocr",
                       variant="v1", meta=OCR)
    process(client)
    assert client.build_db()["incremental"] is False

    client.upload_task(ocr_rows(range(2, 5), "b"), provider="huggingface", dataset="coco", task="ocr",
                       variant="v1", meta=OCR)
    client.upload_task(ocr_rows(range(4, 8), "c"), provider="aihub", dataset="receipts", task="ocr",
                       variant="v1", meta=OCR)
    process(client)
    build(client)

    client.import_collection(data_source=client.search(tasks=["ocr"]), name="train")
    client.import_collection(data_source=client.search(datasets=["coco"], tasks=["ocr"]).head(2), name="train")
    client.import_collection(data_source=client.search(datasets=["receipts"]), name="test")
    build(client)

    # an overwrite leaves image 0 with no row of its partition, and image 7 with none at all
    client.upload_task(ocr_rows(range(5, 7), "d"), provider="aihub", dataset="receipts", task="ocr",
                       variant="v1", meta=OCR, overwrite=True)
    process(client)
    build(client)
    client.delete_collection("train", "v1")
    client.upload_raw(pd.DataFrame({"text": ["plain"]}), provider="test", dataset="notes")
    process(client)
    info = build(client)
    assert info["behind"] is False

    incremental = marts(client)
    assert client.build_db(full_refresh=True)["incremental"] is False
    full = marts(client)
    for table in MARTS:
        pd.testing.assert_frame_equal(incremental[table], full[table], obj=table)
    assert len(full["catalog"]) == 3 + 3 + 2 + 6 + 1
    members = full["collection_members"].set_index("member_id")
    assert members["in_catalog"].value_counts().to_dict() == {True: 2, False: 4}  # train/v2, and test
    assert set(full["collection_history"]["collection_key"]) == {"train/v1", "train/v2", "test/v1"}


def test_an_update_tests_the_rows_it_adds_and_a_check_tests_every_row(client):
    build_two_korean_rows(client)
    with DuckDBClient(client.db_path, read_only=False) as db:  # a row that breaks the rules, put there by hand
        db.execute_query("update catalog set lang = 'xx' where row_id = (select min(row_id) from catalog)")
    client.upload_task(ocr_rows(range(2, 4), "b"), provider="huggingface", dataset="coco", task="ocr",
                       variant="v2", meta=OCR)
    process(client)
    assert build(client)["tables"]["catalog"] == 4  # the update checks the two rows it added
    with pytest.raises(DbBuildError, match="task 'ocr' field 'lang': value 'xx' in 1 row"):
        client.check_db()
    checked = CliRunner().invoke(cli, ["--base-path", str(client.base_path), "db", "check"])
    assert checked.exit_code == 1 and "task 'ocr' field 'lang': value 'xx' in 1 row" in checked.stderr
    assert client.build_db(full_refresh=True)["tables"]["catalog"] == 4  # read again from the lake's files
    checked = CliRunner().invoke(cli, ["--base-path", str(client.base_path), "db", "check"])
    assert checked.exit_code == 0 and "every test passed on all 4 catalog rows" in checked.stdout


def test_a_changed_rule_checks_every_row_again(client):
    build_two_korean_rows(client)
    allow_languages(client, ["en"])
    with pytest.raises(DbBuildError, match="task 'ocr' field 'lang': value 'ko' in 2 row"):
        client.build_db()  # nothing new, but the rules changed


def test_a_build_with_little_memory_spills_to_disk(client, monkeypatch):
    client.upload_raw(pd.DataFrame({"n": range(300_000), "text": [f"row {i} " * 8 for i in range(300_000)]}),
                      provider="test", dataset="big")
    process(client)
    monkeypatch.setenv("DATALAKE_DB_MEMORY_LIMIT", "40MB")
    info = client.build_db()
    assert info["tables"]["catalog"] == 300_000


def test_plain_dbt_keeps_failing_on_a_changed_rule_until_the_rows_keep_it(client):
    """Plain `dbt build` works on the database file itself: a run that fails leaves the changed
    rules unrecorded, so the next run checks every row again rather than only its new ones."""
    from datalake.catalog.db import PROJECT_DIR, dbt_env

    build_two_korean_rows(client)
    allow_languages(client, ["en"])
    dbt = [str(Path(sys.executable).parent / "dbt"), "build", "--profiles-dir", "profiles", "--target-path",
           str(client.base_path / "db" / "plain-target")]
    for _ in range(2):
        out = subprocess.run(dbt, cwd=PROJECT_DIR, env=dbt_env(client.lake), capture_output=True, text=True)
        assert out.returncode == 1 and "task_meta_rules" in out.stdout, out.stdout[-3000:]
    allow_languages(client, ["en", "ko"])
    out = subprocess.run(dbt, cwd=PROJECT_DIR, env=dbt_env(client.lake), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]

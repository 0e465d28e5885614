"""The dbt-built database: marts, rules tests, incremental builds, safe sharing, search and SQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import image_bytes, process
from datalake import DatalakeClient, DbBuildError, DuckDBClient, NotFoundError, ValidationError
from datalake.catalog.dbt_worker import DbtWorker
from datalake.cli import app as cli

OCR = {"lang": "ko", "src": "real"}


def labels(texts: list[str]) -> list[str]:
    return [json.dumps({"elements": [{"text": t}, {"text": "other"}]}, ensure_ascii=False) for t in texts]


def fill(client: DatalakeClient) -> None:
    client.upload_raw(pd.DataFrame({"image": [image_bytes(i) for i in range(4)], "n": range(4)}),
                      provider="huggingface", dataset="coco_2017")
    client.upload_task(pd.DataFrame({"image": [image_bytes(i) for i in range(3)],
                                     "label": labels(["영수증 합계", "Invoice", "nothing"])}),
                       provider="huggingface", dataset="coco_2017", task="ocr", variant="base_ocr", meta=OCR)
    client.upload_task(pd.DataFrame({"image": [image_bytes(9)], "label": labels(["RECEIPT"])}),
                       provider="aihub", dataset="receipts", task="ocr", variant="v1", meta={"lang": "en", "src": "synthetic"})
    client.upload_raw(pd.DataFrame({"text": ["plain"], "extra": [None]}), provider="test", dataset="notes")
    process(client)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> DatalakeClient:
    client = DatalakeClient(user_id="qa", base_path=tmp_path_factory.mktemp("db") / "lake", create_dirs=True)
    fill(client)
    client.build_db()
    return client


def test_marts_hold_the_lake(built):
    info = built.get_db_info()
    assert info["behind"] is False and info["tables"]["catalog"] == 9 and info["tables"]["uploads"] == 4
    parts = built.get_partitions()
    assert parts.set_index("partition_key").loc["huggingface/coco_2017/ocr/base_ocr", "num_rows"] == 3
    assets = built.sql("select * from assets order by hash")
    assert len(assets) == 5 and set(assets["kind"]) == {"image"} and set(assets["width"]) == {24}
    shared = built.sql("select num_rows, datasets from assets where hash = (select hash from catalog "
                       "where task = 'raw' and n = 0)")
    assert shared.iloc[0].tolist() == [2, "huggingface/coco_2017"]
    assert built.sql("select distinct variant from catalog where dataset = 'notes'")["variant"].tolist() == ["text"]


def test_search_levels_globs_meta_and_limit(built):
    assert len(built.search(providers=["huggingface"])) == 7
    assert len(built.search(providers=["huggingface", "aihub"], tasks=["ocr"])) == 4   # OR within, AND across
    assert len(built.search(datasets=["coco_*"], variants=["*"])) == 7
    assert len(built.search(datasets=["rec?ipts"])) == 1
    assert len(built.search(tasks=["ocr"], meta={"lang": "ko"})) == 3
    assert len(built.search(limit=2)) == 2
    rows = built.search(datasets=["notes"])
    assert "extra" not in rows.columns and "hash" not in rows.columns  # empty for the whole result
    with pytest.raises(ValidationError, match="meta field 'nope' is not a column of the catalog"):
        built.search(meta={"nope": "x"})


def test_text_and_json_path_search(built):
    def find(**spec):
        return sorted(built.search(text_search=spec)["label"].map(lambda s: json.loads(s)["elements"][0]["text"]))

    assert find(column="label", text="receipt") == ["RECEIPT"]
    assert find(column="label", text="영수증", json_path="$.elements[*].text") == ["영수증 합계"]
    assert find(column="label", text="INVOICE", json_path="$.elements[0].text") == ["Invoice"]
    assert find(column="label", text="other", json_path="$.elements[0].text") == []
    assert len(built.search(text_search={"column": "label", "text": "other", "json_path": "$.elements[*].text"})) == 4


def test_filter_values_never_change_the_query(built):
    assert built.search(datasets=["o'brien"]).empty
    assert built.search(providers=["x' or 1=1 --"]).empty
    assert built.search(meta={"lang": "ko' or '1'='1"}, tasks=["ocr"]).empty


def test_sql_is_read_only(built):
    assert built.sql("select count(*) as n from catalog where provider = ?", ["aihub"])["n"].tolist() == [1]
    for statement in ("drop table catalog", "delete from catalog", "create table x as select 1",
                      "copy catalog to '/tmp/x.csv'", "select 1; drop table catalog"):
        with pytest.raises(ValidationError):
            built.sql(statement)
    with pytest.raises(ValidationError, match="query failed"):
        built.sql("select * from read_csv('/etc/passwd')")
    assert built.get_db_info()["tables"]["catalog"] == 9


def test_duckdb_client(built):
    with DuckDBClient(built.db_path) as db:
        assert {"catalog", "partitions", "assets", "uploads"} <= set(db.list_tables())
        assert "partition_key" in db.get_table_info("partitions")["column_name"].tolist()
        assert len(db.execute_query("select * from partitions")) == 4
        with pytest.raises(ValidationError):
            db.execute_query("drop table catalog")
        with pytest.raises(NotFoundError):
            db.get_table_info("nope")


def test_docs_generate_shows_lineage(built):
    result = CliRunner().invoke(cli, ["--base-path", str(built.base_path), "docs", "generate"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((built.base_path / "db" / "dbt-target" / "manifest.json").read_text())
    parents = manifest["parent_map"]
    assert parents["model.datalake.catalog"] == ["model.datalake.stg_lake__catalog_rows"]
    assert parents["model.datalake.stg_lake__catalog_rows"] == ["source.datalake.lake.catalog"]
    assert parents["model.datalake.retractions"] == ["model.datalake.stg_lake__retractions"]
    assert parents["model.datalake.stg_lake__retractions"] == ["source.datalake.lake.retractions"]
    assert (built.base_path / "db" / "dbt-target" / "index.html").is_file()


@pytest.fixture
def client(tmp_path) -> DatalakeClient:
    return DatalakeClient(user_id="qa", base_path=tmp_path / "lake", create_dirs=True)


def test_an_empty_lake_builds(client):
    assert client.get_db_info()["exists"] is False
    info = client.build_db()
    assert info["tables"]["catalog"] == 0 and info["behind"] is False
    assert client.search(providers=["*"]).empty


def test_incremental_build_overwrite_and_rebuild_from_scratch(client):
    client.upload_raw(pd.DataFrame({"n": [1, 2]}), provider="test", dataset="a")
    process(client)
    assert client.build_db()["tables"]["catalog"] == 2
    client.upload_raw(pd.DataFrame({"n": [3]}), provider="test", dataset="b")
    process(client)
    assert client.get_db_info()["behind"] is True and client.get_db_info()["uploads_missing"] == 1
    info = client.build_db()
    assert info["incremental"] is True and info["tables"]["catalog"] == 3 and info["behind"] is False
    client.upload_raw(pd.DataFrame({"n": [9]}), provider="test", dataset="a", overwrite=True)
    process(client)
    client.build_db()
    assert sorted(client.sql("select n from catalog")["n"]) == [3, 9]
    client.db_path.unlink()
    assert client.build_db()["tables"]["catalog"] == 2


def test_a_client_that_has_searched_sees_each_new_build(client):
    client.upload_raw(pd.DataFrame({"n": [1]}), provider="test", dataset="a")
    process(client)
    client.build_db()
    assert len(client.search(providers=["test"])) == 1  # keeps a connection open
    with DuckDBClient(client.db_path) as held:
        client.upload_raw(pd.DataFrame({"n": [2]}), provider="test", dataset="a")
        process(client)
        assert client.build_db()["tables"]["catalog"] == 2
        assert len(client.search(providers=["test"])) == 2
        assert len(held.execute_query("select * from catalog")) == 1  # an open reader keeps its snapshot


def test_rules_are_enforced_from_schema_yaml_and_failures_named(client):
    runner = CliRunner()
    base = ["--base-path", str(client.base_path)]
    assert runner.invoke(cli, [*base, "config", "task", "create", "caption", "--required", "style",
                               "--allowed", "style=short,long"]).exit_code == 0
    client.upload_task(pd.DataFrame({"t": ["a", "b"]}), provider="test", dataset="d", task="caption",
                       variant="v", meta={"style": "short"})
    client.upload_task(pd.DataFrame({"t": ["c"]}), provider="test", dataset="d", task="ocr", variant="v", meta=OCR)
    process(client)
    client.build_db()
    rules = yaml.safe_load(client.lake.schema_path.read_text())
    rules["tasks"]["caption"]["allowed_values"]["style"] = ["long"]   # the rules change under stored data
    rules["tasks"]["ocr"]["required_fields"].append("mod")
    client.lake.schema_path.write_text(yaml.safe_dump(rules))
    with pytest.raises(DbBuildError) as failure:
        client.build_db()
    message = str(failure.value)
    assert "task 'caption' field 'style': value 'short' in 2 row(s) (allowed: long)" in message
    assert "task 'ocr' field 'mod': value None in 1 row(s) (required)" in message
    assert client.get_db_info()["tables"]["catalog"] == 3  # the previous database is kept
    result = runner.invoke(cli, [*base, "db", "update"])
    assert result.exit_code == 1 and "task 'caption' field 'style'" in result.stderr


def test_builds_in_one_process_leave_the_file_alone(client):
    """dbt stays loaded between builds: after a build nothing holds the file, and a later failing
    build (here, rules broken) still leaves the database as it was."""
    client.upload_raw(pd.DataFrame({"n": [1]}), provider="test", dataset="a")
    process(client)
    client.build_db()
    opened = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
                             str(client.db_path)], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr  # no write lock kept by this process
    client.upload_task(pd.DataFrame({"t": ["a"]}), provider="test", dataset="d", task="ocr", variant="v",
                       meta=OCR)
    process(client)
    rules = yaml.safe_load(client.lake.schema_path.read_text())
    rules["tasks"]["ocr"]["required_fields"].append("mod")
    client.lake.schema_path.write_text(yaml.safe_dump(rules))
    with pytest.raises(DbBuildError):
        client.build_db()
    assert client.get_db_info()["tables"]["catalog"] == 1


def test_a_dbt_process_killed_mid_build_fails_that_build_only(client):
    client.upload_raw(pd.DataFrame({"n": [1]}), provider="test", dataset="a")
    process(client)
    client.build_db()
    client.upload_raw(pd.DataFrame({"n": [2]}), provider="test", dataset="a")
    process(client)
    work = client.lake.db_dir / ".catalog.duckdb.building"
    outcome: list = []
    build = threading.Thread(target=lambda: outcome.append(_build_or_error(client)))
    build.start()
    deadline = time.monotonic() + 60
    while not work.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    DbtWorker._child.kill()  # the build's dbt process dies mid-build
    build.join(120)
    assert isinstance(outcome[0], DbBuildError) and "stopped unexpectedly" in str(outcome[0])
    assert client.sql("select count(*) as n from catalog")["n"][0] == 1  # the previous database, untouched
    client.build_db()  # a new dbt process takes over
    assert client.sql("select count(*) as n from catalog")["n"][0] == 2


def _build_or_error(client: DatalakeClient) -> object:
    try:
        return client.build_db()
    except DbBuildError as exc:
        return exc


def test_a_plain_script_builds_twice(tmp_path):
    """A user's script with no `if __name__ == "__main__"` guard: builds run dbt in a kept child
    process, which must not run the script again."""
    script = tmp_path / "build_twice.py"
    script.write_text(
        "import pandas as pd\n"
        "from datalake import DatalakeClient\n"
        f"client = DatalakeClient(user_id='qa', base_path={str(tmp_path / 'lake')!r}, create_dirs=True)\n"
        "for n in range(2):\n"
        "    client.upload_raw(pd.DataFrame({'n': [n]}), provider='test', dataset='a')\n"
        "    client.wait_for_job_completion(client.trigger_processing())\n"
        "    client.build_db()\n"
        "    print(client.sql('select count(*) as n from catalog')['n'][0])\n")
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["1", "2"]


def test_searches_never_fail_while_builds_run(client, tmp_path):
    client.upload_raw(pd.DataFrame({"n": range(50)}), provider="test", dataset="a")
    process(client)
    client.build_db()
    errors, counts = [], set()
    done = threading.Event()

    def reader():
        reader_client = DatalakeClient(user_id="r", base_path=client.base_path)
        while not done.is_set():
            try:
                counts.add(len(reader_client.search(providers=["test"])))
            except Exception as exc:  # any failure is what this test is about
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    script = "import sys; from datalake.catalog.db import build_db; from datalake.lake import Lake; build_db(Lake(sys.argv[1]), True)"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(client.base_path)]) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    done.set()
    thread.join()
    assert errors == [] and counts == {50}
    assert client.get_db_info()["tables"]["catalog"] == 50


def test_plain_dbt_build_works_on_the_same_lake(client):
    from datalake.catalog.db import PROJECT_DIR, dbt_env

    client.upload_raw(pd.DataFrame({"n": [1]}), provider="test", dataset="a")
    process(client)
    dbt = Path(sys.executable).parent / "dbt"
    out = subprocess.run([str(dbt), "build", "--profiles-dir", "profiles", "--target-path",
                          str(client.base_path / "db" / "plain-target")], cwd=PROJECT_DIR,
                         env=dbt_env(client.lake), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert client.sql("select count(*) as n from catalog")["n"].tolist() == [1]
    shutil.rmtree(client.base_path / "db" / "plain-target")


def test_an_unknown_build_target_is_named(client):
    result = CliRunner().invoke(cli, ["--base-path", str(client.base_path), "db", "update", "--target", "oracle"])
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown build target 'oracle': duckdb or spark\n"
    assert not client.db_path.exists()

"""The dbt project as its users meet it: plain dbt commands on a built database, its docs, its unit tests.

`dbt compile`, `dbt show` and `dbt docs generate` only read the database; every model and every
column users query is described in the docs; the unit tests of the task meta rule check pass on
an empty and a full lake; and a catalog that breaks config/schema.yaml stops the build, naming
each task, field and bad value.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import process
from datalake import ConfigError, DatalakeClient, DbBuildError
from datalake.catalog.db import PROJECT_DIR, dbt_env
from datalake.lake import LAKE_COLUMNS
from datalake.schema import remove_task

OCR = {"lang": "ko", "src": "real"}
MARTS = ["catalog", "partitions", "assets", "uploads", "dataset_licenses", "collections", "collection_members",
         "collection_history", "collections_snapshot"]


def dbt(client: DatalakeClient, *args: str) -> subprocess.CompletedProcess:
    """Plain dbt from the project folder on the client's lake and database, as a user runs it."""
    out = client.base_path.parent / "dbt-out"
    command = [str(Path(sys.executable).parent / "dbt"), *args, "--profiles-dir", "profiles",
               "--target-path", str(out / "target"), "--log-path", str(out / "logs")]
    return subprocess.run(command, cwd=PROJECT_DIR, env=dbt_env(client.lake), capture_output=True, text=True)


def full_lake(client: DatalakeClient) -> None:
    """Raw and task rows, live and deleted collection versions, built."""
    client.upload_raw(pd.DataFrame({"n": [1, 2]}), provider="test", dataset="d")
    client.upload_task(pd.DataFrame({"t": ["a"]}), provider="test", dataset="d", task="ocr", variant="v", meta=OCR)
    process(client)
    client.build_db()
    client.import_collection(client.search(providers=["test"]), "picks")
    client.import_collection(pd.DataFrame({"q": ["x"]}), "outside")
    client.delete_collection("outside")
    client.build_db()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_compile_show_and_docs_leave_a_built_database_byte_for_byte(client):
    full_lake(client)
    client.upload_raw(pd.DataFrame({"n": [5]}), provider="test", dataset="d", overwrite=True)
    client.upload_raw(pd.DataFrame({"m": [7]}), provider="test", dataset="e")
    process(client)
    before = sha256(client.db_path)
    for args in (["compile"], ["show", "--select", "catalog"], ["show", "--select", "uploads"], ["docs", "generate"]):
        result = dbt(client, *args)
        assert result.returncode == 0, result.stdout[-3000:]
        assert sha256(client.db_path) == before, args
    assert sorted(client.sql("select n from catalog where n is not null")["n"]) == [1, 2]
    client.build_db()  # the changes were there to be read: the next build takes them
    assert sorted(client.sql("select coalesce(n, m) as v from catalog where task = 'raw'")["v"]) == [5, 7]


def test_the_docs_describe_every_model_and_every_column_users_query(client):
    full_lake(client)
    result = dbt(client, "docs", "generate")
    assert result.returncode == 0, result.stdout[-3000:]
    target = client.base_path.parent / "dbt-out" / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    tables = json.loads((target / "catalog.json").read_text())["nodes"]
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "snapshot")]
    assert [n["name"] for n in nodes if not n["description"].strip()] == []
    undocumented = {}
    for node in nodes:
        if node["name"] not in MARTS:
            continue
        columns = [c.lower() for c in tables[node["unique_id"]]["columns"]]
        assert columns, node["name"]
        if node["name"] == "catalog":
            columns = [c for c in columns if c in LAKE_COLUMNS]  # the rest are the users' own and the task meta
        described = {name.lower() for name, c in node["columns"].items() if c["description"].strip()}
        undocumented[node["name"]] = [c for c in columns if c not in described]
    assert sorted(undocumented) == sorted(MARTS)
    assert all(missing == [] for missing in undocumented.values()), undocumented


@pytest.mark.parametrize("filled", [False, True], ids=["empty lake", "full lake"])
def test_the_unit_tests_of_the_rule_check_pass(client, filled):
    if filled:
        full_lake(client)
    else:
        client.build_db()
    result = dbt(client, "test", "--select", "test_type:unit")
    assert result.returncode == 0, result.stdout[-3000:]
    for name in ("name_every_broken_rule", "without_rules_name_every_task_but_raw"):
        assert f"PASS task_meta_violations::task_meta_violations_{name}" in result.stdout


def test_a_task_no_longer_registered_stops_the_build_naming_it(client):
    client.upload_task(pd.DataFrame({"t": ["a", "b"]}), provider="test", dataset="d", task="ocr", variant="v",
                       meta=OCR)
    client.upload_raw(pd.DataFrame({"n": [1]}), provider="test", dataset="d")
    process(client)
    client.build_db()
    remove_task(client.lake, "ocr")
    with pytest.raises(DbBuildError) as failure:
        client.build_db()
    message = str(failure.value)
    assert ("task 'ocr' field '(task)': value 'ocr' in 2 row(s) (task is not registered in config/schema.yaml)"
            in message)
    assert "'raw'" not in message
    assert client.get_db_info()["tables"]["catalog"] == 3  # the previous database is kept


def test_a_broken_rules_file_stops_the_build_naming_the_problem(client):
    """datalake checks config/schema.yaml with its own parser before it builds; plain dbt reads it
    with fromyaml and stops on what its models rely on, naming it too."""
    client.upload_raw(pd.DataFrame({"n": [1]}), provider="test", dataset="d")
    process(client)
    client.build_db()
    before = sha256(client.db_path)
    rules = yaml.safe_load(client.lake.schema_path.read_text())
    rules["tasks"]["ocr"]["required_fields"] = "lang"
    client.lake.schema_path.write_text(yaml.safe_dump(rules))
    with pytest.raises(ConfigError, match=r"tasks\.ocr\.required_fields must be a list of strings"):
        client.build_db()
    assert sha256(client.db_path) == before
    result = dbt(client, "build")
    assert result.returncode == 1
    assert ("config/schema.yaml is invalid: tasks.ocr must be a mapping with required_fields (a list)"
            in result.stdout), result.stdout[-3000:]

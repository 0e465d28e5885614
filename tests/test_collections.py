"""Collections: immutable versions from every source kind, latest, verify, history, export, CLI."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import image_bytes, lake_files, process
from datalake import ConflictError, DatalakeClient, NotFoundError, ValidationError
from datalake.cli import app as cli

OCR = {"lang": "ko", "src": "real"}


@pytest.fixture
def client(tmp_path) -> DatalakeClient:
    c = DatalakeClient(user_id="trainer", base_path=tmp_path / "lake", create_dirs=True)
    c.upload_task(pd.DataFrame({"image": [image_bytes(i) for i in range(6)], "label": [f"t{i}" for i in range(6)]}),
                  provider="huggingface", dataset="docs", task="ocr", variant="v1", meta=OCR)
    process(c)
    c.build_db()
    return c


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_freeze_search_results_then_load_and_export(client, tmp_path):
    results = client.search(providers=["huggingface"], tasks=["ocr"])
    meta = client.import_collection(results, name="korean_ocr_train", version="v1.0",
                                    description="Korean OCR training dataset")
    assert (meta["name"], meta["version"], meta["num_samples"], meta["created_by"]) == (
        "korean_ocr_train", "v1.0", 6, "trainer")
    assert meta["description"] == "Korean OCR training dataset" and len(meta["fingerprint"]) == 32
    folder = client.base_path / "collections" / "korean_ocr_train"
    assert (folder / "latest").read_text().strip() == "v1.0"
    members = pq.read_table(folder / "v1.0" / "members.parquet").to_pandas()
    assert list(members["row_id"]) == sorted(results["row_id"])  # deterministic order
    assert len(lake_files(client.base_path, "assets")) == 6  # no bytes copied
    ds = client.load_collection("korean_ocr_train")
    assert isinstance(ds.features["image"], datasets.Image) and len(ds) == 6
    raw = ds.cast_column("image", datasets.Image(decode=False))
    stored = {r["hash"]: (client.base_path / "assets" / r["path"]).read_bytes() for _, r in members.iterrows()}
    assert all(row["image"]["bytes"] == stored[row["hash"]] for row in raw)
    for fmt, name in (("datasets", "out"), ("parquet", "out.parquet")):
        first = client.export_collection("korean_ocr_train", "v1.0", tmp_path / "a" / name, format=fmt)
        client.export_collection("korean_ocr_train", None, tmp_path / "b" / name, format=fmt)
        assert first["rows"] == 6
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        if a.is_dir():
            assert tree_digest(a) == tree_digest(b)
        else:
            assert a.read_bytes() == b.read_bytes()
    assert datasets.load_from_disk(str(tmp_path / "a" / "out")).num_rows == 6


@pytest.mark.parametrize("kind", ["dataframe", "dataset", "parquet", "save_to_disk"])
def test_import_external_data_stores_its_assets_first(client, tmp_path, kind):
    df = pd.DataFrame({"image": [image_bytes(100 + i) for i in range(3)] + [image_bytes(0)], "y": [1, 2, 3, 4]})
    source = {"dataframe": lambda: df, "dataset": lambda: datasets.Dataset.from_pandas(df)}.get(kind)
    if kind == "parquet":
        df.to_parquet(tmp_path / "ext.parquet")
        data = tmp_path / "ext.parquet"
    elif kind == "save_to_disk":
        datasets.Dataset.from_pandas(df).save_to_disk(str(tmp_path / "saved"))
        data = tmp_path / "saved"
    else:
        data = source()
    meta = client.import_collection(data, name="external_dataset")
    assert meta["version"] == "v1" and meta["num_samples"] == 4
    assert len(lake_files(client.base_path, "assets")) == 9  # 3 new, 1 already stored
    members = client.collection_manager.members("external_dataset")
    assert all((client.base_path / "assets" / p).is_file() for p in members["path"])
    assert client.verify_collection("external_dataset")["ok"]


def test_versions_are_immutable_automatic_and_latest_moves_back(client):
    rows = client.search(tasks=["ocr"])
    assert client.import_collection(rows, "c")["version"] == "v1"
    assert client.import_collection(rows.head(2), "c")["version"] == "v2"
    before = tree_digest(client.base_path / "collections" / "c")
    with pytest.raises(ConflictError, match="collection 'c' already has \\(or had\\) version 'v2'; versions never change"):
        client.import_collection(rows.head(1), "c", version="v2")
    with pytest.raises(ValidationError, match="'latest' names the newest version"):
        client.import_collection(rows, "c", version="latest")
    with pytest.raises(ValidationError, match="collection name '../x' is not allowed"):
        client.import_collection(rows, "../x")
    assert tree_digest(client.base_path / "collections" / "c") == before
    assert not any(p.name.startswith(".") for p in (client.base_path / "collections" / "c").iterdir())
    member_file = client.base_path / "collections" / "c" / "v1" / "members.parquet"
    assert not member_file.stat().st_mode & stat.S_IWUSR
    assert client.collection_manager.info("c")["version"] == "v2"
    client.delete_collection("c", "v2")
    assert client.collection_manager.info("c")["version"] == "v1"
    assert client.import_collection(rows, "c")["version"] == "v3"
    with pytest.raises(ConflictError, match="deleted ones are not reused"):
        client.import_collection(rows, "c", version="v2")
    client.delete_collection("c")
    assert client.collection_manager.list_collections() == []
    with pytest.raises(NotFoundError, match="collection 'c' does not exist"):
        client.load_collection("c")


def test_two_imports_at_once_get_distinct_versions(client, tmp_path):
    rows = client.search(tasks=["ocr"])
    rows.to_pickle(tmp_path / "rows.pkl")
    script = ("import sys, pandas as pd; from datalake import DatalakeClient\n"
              "c = DatalakeClient(user_id='u', base_path=sys.argv[1])\n"
              "print(c.import_collection(pd.read_pickle(sys.argv[2]), 'race')['version'])")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(client.base_path), str(tmp_path / "rows.pkl")],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    versions = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert versions == ["v1", "v2", "v3"]
    assert all(client.verify_collection("race", v)["ok"] for v in versions)


def test_verify_detects_a_tampered_asset_and_a_tampered_member_file(client):
    client.import_collection(client.search(tasks=["ocr"]), "t")
    assert client.verify_collection("t")["ok"]
    members = client.collection_manager.members("t")
    (client.base_path / "assets" / members["path"][0]).write_bytes(image_bytes(999))
    report = client.verify_collection("t")
    assert not report["ok"] and report["problems"] == [
        "1 member asset(s) with bytes that no longer match their hash"]
    (client.base_path / "assets" / members["path"][0]).unlink()
    assert "1 member asset(s) missing" in client.verify_collection("t")["problems"]
    member_file = client.base_path / "collections" / "t" / "v1" / "members.parquet"
    member_file.chmod(0o644)
    members.loc[1, "label"] = "changed"
    members.to_parquet(member_file)
    assert client.verify_collection("t")["problems"][0].startswith("members changed: fingerprint")


def test_collections_in_the_database_with_history_after_delete(client):
    rows = client.search(tasks=["ocr"])
    client.import_collection(rows, "hist", version="a")
    client.import_collection(rows.head(3), "hist", version="b")
    client.build_db()
    assert client.sql("select count(*) as n from collection_members where in_catalog")["n"].tolist() == [9]
    assert client.sql("select version from collections where is_latest")["version"].tolist() == ["b"]
    client.delete_collection("hist", "b")
    client.build_db()
    history = client.sql("select version, deleted_at from collection_history order by version")
    assert history["version"].tolist() == ["a", "b"]
    assert history["deleted_at"].isna().tolist() == [True, False]
    snapshot = client.sql("select collection_key, dbt_valid_to from collections_snapshot order by 1")
    assert snapshot["collection_key"].tolist() == ["hist/a", "hist/b"]
    assert snapshot["dbt_valid_to"].isna().tolist() == [True, False]
    manifest = json.loads((client.base_path / "db" / "dbt-target" / "manifest.json").read_text())
    assert "model.datalake.part_files" in manifest["parent_map"]["model.datalake.collection_members"]


def test_cli(client, tmp_path):
    runner = CliRunner()
    base = ["--base-path", str(client.base_path)]
    result = runner.invoke(cli, [*base, "download", "--task", "ocr", "--output", str(tmp_path / "dl.parquet"),
                                 "--as-collection", "cli_set", "--version", "v1.0"])
    assert result.exit_code == 0, result.output
    assert "Froze 6 rows as collection cli_set v1.0" in result.stdout
    assert "cli_set" in runner.invoke(cli, [*base, "collections", "list"]).stdout
    info = json.loads(runner.invoke(cli, [*base, "collections", "info", "cli_set"]).stdout)
    assert info["version"] == "v1.0" and '"tasks": ["ocr"]' in info["source"]
    pd.DataFrame({"image": [image_bytes(500)], "y": [1]}).to_parquet(tmp_path / "ext.parquet")
    result = runner.invoke(cli, [*base, "collections", "import", str(tmp_path / "ext.parquet"), "--name", "ext"])
    assert result.exit_code == 0 and "Collection ext v1: 1 samples" in result.stdout
    result = runner.invoke(cli, [*base, "collections", "export", "cli_set", "--output", str(tmp_path / "ds"),
                                 "--format", "datasets"])
    assert result.exit_code == 0 and datasets.load_from_disk(str(tmp_path / "ds")).num_rows == 6
    assert runner.invoke(cli, [*base, "collections", "verify", "cli_set", "v1.0"]).exit_code == 0
    result = runner.invoke(cli, [*base, "collections", "delete", "cli_set"], input="n\n")
    assert (result.exit_code, result.stderr) == (1, "Error: nothing deleted\n")
    assert runner.invoke(cli, [*base, "collections", "delete", "cli_set", "--yes"]).exit_code == 0
    result = runner.invoke(cli, [*base, "collections", "info", "cli_set"])
    assert (result.exit_code, result.stderr) == (
        1, "Error: collection 'cli_set' does not exist; `datalake collections list` shows them\n")

"""Reading a published copy: `datalake db update --from s3://…` builds a database from the copy
(dbt-duckdb through s3fs, against moto's S3 server on loopback), and a client on that folder
searches, exports and validates with the assets read from the copy, sees whole publishes only,
and writes to no lake."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import image_bytes, process
from s3_util import SECRET, killed_publish, publishable_lake, upload_ocr
from datalake import DatalakeClient
from datalake.cli import app as cli
from datalake.errors import ConflictError, NotFoundError, ReadOnlyError

# What a build from the copy holds as the lake's build does, but the lake's own file names
IN_LAKE = ("_file", "_build", "row_id")


@pytest.fixture
def published(tmp_path, store):
    """A lake, published to s3://<bucket>/lake; (lake client, copy URL, endpoint, s3fs)."""
    fs, bucket = store
    lake = publishable_lake(tmp_path / "lake")
    endpoint = fs.client_kwargs["endpoint_url"]
    lake.publish(f"s3://{bucket}/lake", endpoint_url=endpoint)
    return lake, f"s3://{bucket}/lake", endpoint, fs


def update_from(folder: Path, *args: str) -> str:
    """`datalake db update` with --base-path `folder`; its output (exit code 0 checked)."""
    result = CliRunner().invoke(cli, ["--base-path", str(folder), "db", "update", *args])
    assert result.exit_code == 0, result.output
    return result.output


def rows_of(client: DatalakeClient, table: str, order: str) -> list[dict]:
    frame = client.sql(f"select * from {table} order by {order}")
    return frame.drop(columns=[c for c in IN_LAKE if c in frame.columns]).to_dict("records")


def test_a_database_built_from_the_copy_holds_what_the_lakes_own_holds(published, tmp_path):
    lake, url, endpoint, _ = published
    lake.build_db()  # with the collection
    output = update_from(tmp_path / "copy", "--from", url, "--endpoint-url", endpoint)
    assert f"of {url}." in output and "Database built in" in output
    copy = DatalakeClient(base_path=tmp_path / "copy")
    for table, order in [("catalog", "hash"), ("assets", "hash"), ("partitions", "partition_key"),
                         ("uploads", "upload_id"), ("collections", "name"), ("collection_members", "hash")]:
        assert rows_of(copy, table, order) == rows_of(lake, table, order), table
    files = copy.sql("select distinct _file from catalog order by 1")["_file"].tolist()
    assert files and all(f.startswith(f"{url}/catalog/provider=huggingface/") for f in files)
    record = json.loads((tmp_path / "copy" / "published.json").read_text())
    assert record["url"] == url and record["publish_id"] and record["built_at"]
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == [
        "collections", "config", "db", "layout.json", "locks", "logs", "published.json"]
    assert (tmp_path / "copy" / "config" / "schema.yaml").read_bytes() == lake.lake.schema_path.read_bytes()
    info = copy.get_db_info()
    assert info["behind"] is False and info["newest_publish_id"] == record["publish_id"]


def test_search_export_and_validation_read_the_assets_from_the_copy(published, tmp_path):
    lake, url, endpoint, _ = published
    copy = DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)
    rows = copy.search(tasks=["ocr"])
    assert len(rows) == 8
    stored = {h: (lake.base_path / "assets" / p).read_bytes() for h, p in zip(rows["hash"], rows["path"])}

    dataset = copy.to_dataset(rows)
    assert {r["hash"]: r["image"]["bytes"] for r in dataset.cast_column("image", _undecoded()).to_list()} == stored
    frame = copy.to_pandas(rows, include_images=False)
    assert all(p == f"{url}/assets/{r}" for p, r in zip(frame["path"], rows["path"]))

    summary = copy.download(rows, tmp_path / "out", format="parquet", include_images=False)
    assert summary["missing_assets"] == 0
    exported = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert {h: (tmp_path / "out" / p).read_bytes() for h, p in zip(exported["hash"], exported["path"])} == stored

    report = copy.validate_assets(deep=True)
    assert (report["total"], report["missing_count"], report["mismatch_count"]) == (12, 0, 0)


def test_collections_load_export_and_verify_from_the_copy(published, tmp_path):
    lake, url, endpoint, _ = published
    copy = DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)
    assert copy.collection_manager.list_collections() == lake.collection_manager.list_collections()
    frozen = lake.load_collection("train").to_pandas()
    assert copy.load_collection("train").to_pandas().equals(frozen)
    assert copy.verify_collection("train")["ok"]
    copy.export_collection("train", output_path=tmp_path / "train", format="parquet")
    lake.export_collection("train", output_path=tmp_path / "train-lake", format="parquet")
    exported = pd.read_parquet(tmp_path / "train" / "data.parquet")
    assert len(exported) == 8 and exported.equals(pd.read_parquet(tmp_path / "train-lake" / "data.parquet"))

    lake.delete_collection("train")
    lake.publish(url, endpoint_url=endpoint)
    copy.build_db()
    assert copy.collection_manager.list_collections() == [] and not list((tmp_path / "copy").glob(".collections*"))


def _undecoded():
    from datasets import Image

    return Image(decode=False)


def test_a_build_sees_whole_publishes_only(published, tmp_path):
    lake, url, endpoint, fs = published
    copy = DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)
    first = copy.lake.copy_source()["publish_id"]
    upload_ocr(lake, range(30, 34), "later")
    process(lake)
    killed_publish(lake, url, endpoint, after=4)  # the new part, ledger files and assets partly sent, no manifest
    assert fs.find(f"{url[5:]}/catalog/provider=huggingface/dataset=later")

    copy.build_db()
    assert copy.lake.copy_source()["publish_id"] == first
    assert copy.count(datasets=["later"]) == 0 and copy.count() == 12
    assert copy.get_db_info()["behind"] is False

    lake.publish(url, endpoint_url=endpoint)
    assert copy.get_db_info()["behind"] is True
    output = update_from(tmp_path / "copy")  # the folder's copy, at its newest publish; incrementally
    assert copy.lake.copy_source()["publish_id"] != first and "Read the publish" in output
    assert copy.count(datasets=["later"]) == 4 and copy.count() == 16
    assert copy.get_db_info()["behind"] is False


def test_a_retraction_reaches_readers_at_their_next_build(published, tmp_path):
    lake, url, endpoint, _ = published
    copy = DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)
    gone = lake.search(tasks=["ocr"]).iloc[0]
    lake.retract(hashes=[gone["hash"]], reason="privacy request", force=True)
    lake.publish(url, endpoint_url=endpoint)

    stale = copy.search(tasks=["ocr"])  # built before: it still lists the row, whose asset is gone from the copy
    assert gone["hash"] in set(stale["hash"])
    assert copy.download(stale, tmp_path / "out", format="parquet", include_images=False)["missing_assets"] == 1
    copy.build_db()
    assert gone["hash"] not in set(copy.search()["hash"])
    assert copy.sql("select count(*) as n from retractions")["n"].tolist() == [1]


def test_a_reader_writes_to_no_lake(published, tmp_path):
    lake, url, endpoint, _ = published
    copy = DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)
    before = sorted(str(p) for p in (tmp_path / "copy").rglob("*") if "locks" not in p.parts)
    data = pd.DataFrame({"image": [image_bytes(90)], "label": ["x"]})
    attempts = [
        lambda: copy.upload_task(data, provider="huggingface", dataset="docs", task="ocr", variant="v1",
                                 meta={"lang": "ko", "src": "real"}),
        lambda: copy.upload_raw(data[["image"]], provider="huggingface", dataset="raw"),
        copy.trigger_processing,
        copy.index_fingerprints,
        lambda: copy.import_collection(copy.search(), name="mine"),
        lambda: copy.delete_collection("train"),
        lambda: copy.retract(datasets=["docs"], reason="no"),
        copy.collect_garbage,
        lambda: copy.publish(url, endpoint_url=endpoint),
        lambda: copy.build_db(target="spark"),
        lambda: DatalakeClient(base_path=tmp_path / "copy", create_dirs=True),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnlyError, match=f"reads the published copy {url}"):
            attempt()
    result = CliRunner().invoke(cli, ["--base-path", str(tmp_path / "copy"), "config", "provider", "create", "other"])
    assert result.exit_code == 1 and "reads the published copy" in result.output
    assert sorted(str(p) for p in (tmp_path / "copy").rglob("*") if "locks" not in p.parts) == before


def test_bad_sources_and_folders_are_named_and_change_nothing(published, tmp_path):
    lake, url, endpoint, fs = published
    lake_listing = sorted(str(p) for p in lake.base_path.rglob("*") if "locks" not in p.parts)
    with pytest.raises(ConflictError, match="holds a lake of its own"):
        DatalakeClient.from_published(url, lake.base_path, endpoint_url=endpoint)
    assert sorted(str(p) for p in lake.base_path.rglob("*") if "locks" not in p.parts) == lake_listing

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConflictError, match="holds other files"):
        DatalakeClient.from_published(url, tmp_path / "other", endpoint_url=endpoint)
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]

    with pytest.raises(NotFoundError, match="no published copy at s3://.*/nothing-here"):
        DatalakeClient.from_published(f"{url}/nothing-here", tmp_path / "empty", endpoint_url=endpoint)
    assert not (tmp_path / "empty").exists()

    result = CliRunner().invoke(cli, ["--base-path", str(tmp_path / "x"), "db", "update", "--from", "http://host/x"])
    assert result.exit_code == 1 and "must be an s3:// URL" in result.output and not (tmp_path / "x").exists()

    DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)
    with pytest.raises(ConflictError, match=f"reads the published copy {url}, not"):
        DatalakeClient.from_published(f"{url}-b", tmp_path / "copy", endpoint_url=endpoint)
    result = CliRunner().invoke(cli, ["--base-path", str(lake.base_path), "db", "update", "--endpoint-url", endpoint])
    assert result.exit_code == 1 and "reads no published copy" in result.output
    assert not any(SECRET.encode() in p.read_bytes() for p in (tmp_path / "copy").rglob("*") if p.is_file())


def test_an_object_replaced_since_its_manifest_stops_the_build_by_name(published, tmp_path):
    lake, url, endpoint, fs = published
    part = fs.find(f"{url[5:]}/ledger/uploads")[0]
    fs.pipe_file(part, fs.cat_file(part) + b"more")  # a later publish replacing it in place, say
    result = CliRunner().invoke(cli, ["--base-path", str(tmp_path / "copy"), "db", "update", "--from", url,
                                      "--endpoint-url", endpoint])
    assert result.exit_code == 1
    assert "changed since the publish the build reads" in result.output and "run the build again" in result.output
    assert not (tmp_path / "copy" / "db" / "catalog.duckdb").exists()

    fs.pipe_file(part, fs.cat_file(part)[:-4])  # as published again, then a collection's `latest` of the same size
    fs.pipe_file(f"{url[5:]}/collections/train/latest", b"v9\n")
    with pytest.raises(ConflictError, match=r"collections/train/latest changed since the publish the build reads"):
        DatalakeClient.from_published(url, tmp_path / "copy", endpoint_url=endpoint)

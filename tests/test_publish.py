"""Publishing to S3-compatible storage against a real S3 and Glue server (moto's, on loopback, started
here): every object and the manifest, incremental runs, a publish killed mid-way and run again, the
Glue table and partitions, and the table statements for Athena and Trino parsed in their dialects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
import xxhash
from sqlglot import exp
from typer.testing import CliRunner

from conftest import process
from s3_util import KILLED_PUBLISHER, SECRET, killed_publish, publishable_lake, upload_ocr
from datalake import DatalakeClient
from datalake.cli import app as cli
from datalake.fs import file_lock

PUBLISHED = ("catalog", "ledger", "collections", "assets")


@pytest.fixture
def client(tmp_path) -> DatalakeClient:
    return publishable_lake(tmp_path / "lake")


def local_files(lake: Path) -> dict[str, bytes]:
    """What a publish must copy, read straight from the lake: key -> bytes."""
    found = {k: (lake / k).read_bytes() for k in ("config/schema.yaml", "layout.json")}
    for folder in PUBLISHED:
        for path in (lake / folder).rglob("*"):
            key = str(path.relative_to(lake))
            if path.is_file() and not any(p.startswith(".") for p in key.split("/")):
                found[key] = path.read_bytes()
    return found


def remote_files(fs, root: str) -> dict[str, bytes]:
    return {p[len(root) + 1:]: fs.cat_file(p) for p in fs.find(root)}


def manifests(fs, root: str) -> list[dict]:
    return [json.loads(fs.cat_file(p)) for p in sorted(fs.glob(f"{root}/_manifests/*.json"))]


def check_copy(fs, root: str, lake: Path) -> dict:
    """The published copy is the lake's files, byte for byte, and its one manifest names each of
    them with its size and hash; `latest` names that manifest. Returns the manifest."""
    want = local_files(lake)
    got = remote_files(fs, root)
    assert {k: v for k, v in got.items() if not k.startswith("_manifests/")} == want
    [manifest] = manifests(fs, root)
    assert {o["key"]: (o["size"], o["hash"]) for o in manifest["objects"]} == {
        k: (len(v), xxhash.xxh3_128_hexdigest(v)) for k, v in want.items()}
    assert got["_manifests/latest"].decode().strip() == manifest["publish_id"]
    return manifest


def test_publish_copies_the_lake_in_its_layout_and_a_manifest_names_every_object(client, store):
    fs, bucket = store
    report = client.publish(f"s3://{bucket}/lake/v1", endpoint_url=fs.client_kwargs["endpoint_url"])
    manifest = check_copy(fs, f"{bucket}/lake/v1", client.base_path)
    keys = [o["key"] for o in manifest["objects"]]
    assert sum(k.startswith("assets/") for k in keys) == 12  # 8 OCR images and 4 raw ones
    assert sum(k.startswith("catalog/provider=huggingface/") for k in keys) == 2
    assert "collections/train/latest" in keys and "collections/train/v1/members.parquet" in keys
    assert not any(k.startswith(("db/", "staging/", "locks/", "jobs/", "logs/")) for k in keys)
    assert (report.objects, report.uploaded, report.skipped, report.removed) == (len(keys), len(keys), 0, 0)
    assert report.manifest == f"_manifests/{manifest['publish_id']}.json"
    assert report.uploaded_bytes == sum(o["size"] for o in manifest["objects"])


def test_publish_again_sends_only_what_changed_and_removes_what_the_lake_dropped(client, store):
    fs, bucket = store
    target, root, endpoint = f"s3://{bucket}/lake", f"{bucket}/lake", fs.client_kwargs["endpoint_url"]
    first = client.publish(target, endpoint_url=endpoint)
    again = client.publish(target, endpoint_url=endpoint)
    assert (again.uploaded, again.skipped, again.removed) == (0, first.objects, 0)
    check_copy(fs, root, client.base_path)  # the first manifest is gone: one manifest, the newest

    before = local_files(client.base_path)
    upload_ocr(client, range(8, 10), "more")
    process(client)
    after = local_files(client.base_path)
    changed = {k for k, v in after.items() if before.get(k) != v}
    assert {k for k in changed if k.startswith("assets/")} and {k for k in changed if k.startswith("catalog/")}
    third = client.publish(target, endpoint_url=endpoint)
    assert (third.uploaded, third.skipped, third.removed) == (len(changed), len(after) - len(changed), 0)
    check_copy(fs, root, client.base_path)

    old_part = next(k for k in after if k.startswith("catalog/provider=huggingface/dataset=docs/"))
    upload_ocr(client, range(3), "docs", overwrite=True)  # replaces the partition's part
    process(client)
    fourth = client.publish(target, endpoint_url=endpoint)
    assert fourth.removed == 1 and not fs.exists(f"{root}/{old_part}")
    check_copy(fs, root, client.base_path)


def test_a_publish_killed_mid_way_leaves_the_last_complete_copy_and_a_run_again_finishes_it(client, store):
    fs, bucket = store
    target, root, endpoint = f"s3://{bucket}/lake", f"{bucket}/lake", fs.client_kwargs["endpoint_url"]
    total = len(local_files(client.base_path))
    killed_publish(client, target, endpoint, after=total // 2)
    stored = [k for k in remote_files(fs, root)]
    assert total // 2 <= len(stored) < total and manifests(fs, root) == []  # no manifest: nothing published yet
    resumed = client.publish(target, endpoint_url=endpoint)
    assert resumed.skipped >= total // 2 and resumed.uploaded == total - resumed.skipped
    first = check_copy(fs, root, client.base_path)

    before = local_files(client.base_path)
    upload_ocr(client, range(30, 40), "later")
    process(client)
    changed = [k for k, v in local_files(client.base_path).items() if before.get(k) != v]
    killed_publish(client, target, endpoint, after=len(changed))  # every object of the change sent, no manifest yet
    [still] = manifests(fs, root)
    assert still == first
    listed = {p[len(root) + 1:]: fs.info(p)["size"] for p in fs.find(root)}
    assert all(listed.get(o["key"]) == o["size"] for o in still["objects"]), "a manifest names a missing object"
    client.publish(target, endpoint_url=endpoint)
    check_copy(fs, root, client.base_path)


def test_a_publish_under_way_holds_the_store_lock_shared_so_no_retraction_or_gc_starts(client, store):
    fs, bucket = store
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALAKE_")}
    child = subprocess.Popen([sys.executable, "-c", KILLED_PUBLISHER, str(client.base_path), f"s3://{bucket}/lake",
                              fs.client_kwargs["endpoint_url"], "1", "pause"], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == "paused\n", child.stderr.read()
        with file_lock(client.lake.lake_lock("store"), blocking=False) as exclusive:
            assert exclusive is None  # what retraction and garbage collection take
        with file_lock(client.lake.lake_lock("store"), blocking=False, shared=True) as shared:
            assert shared is not None  # uploads and processing go on
    finally:
        out, err = child.communicate("go\n", timeout=120)
    assert child.returncode == 0, err
    check_copy(fs, f"{bucket}/lake", client.base_path)


def test_glue_registration_names_the_catalog_its_columns_and_partitions(client, store):
    import botocore.session

    fs, bucket = store
    report = client.publish(f"s3://{bucket}/lake", endpoint_url=fs.client_kwargs["endpoint_url"],
                            glue_database="lake")
    assert report.glue_table == "lake.catalog"
    glue = botocore.session.get_session().create_client("glue")
    table = glue.get_table(DatabaseName="lake", Name="catalog")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/lake/catalog/"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["provider", "dataset", "task", "variant"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns["label"] == "string" and columns["hash"] == "string" and columns["_upload_id"] == "string"
    assert "provider" not in columns and "lang" in columns
    partitions = {tuple(p["Values"]): p["StorageDescriptor"]["Location"]
                  for p in glue.get_partitions(DatabaseName="lake", TableName="catalog")["Partitions"]}
    assert partitions == {
        ("huggingface", "docs", "ocr", "v1"): f"s3://{bucket}/lake/catalog/provider=huggingface/dataset=docs/task=ocr/variant=v1/",
        ("huggingface", "raw", "raw", "image"): f"s3://{bucket}/lake/catalog/provider=huggingface/dataset=raw/task=raw/variant=image/"}
    for location in partitions.values():  # each names a folder of the published copy holding its part
        assert fs.glob(location.removeprefix("s3://") + "part-*.parquet")

    upload_ocr(client, range(50, 52), "later")
    process(client)
    client.publish(f"s3://{bucket}/lake", endpoint_url=fs.client_kwargs["endpoint_url"], glue_database="lake")
    values = [tuple(p["Values"]) for p in glue.get_partitions(DatabaseName="lake", TableName="catalog")["Partitions"]]
    assert sorted(values) == [("huggingface", "docs", "ocr", "v1"), ("huggingface", "later", "ocr", "v1"), ("huggingface", "raw", "raw", "image")]


@pytest.mark.parametrize("dialect", ["athena", "trino"])
def test_the_table_statement_parses_in_its_dialect(client, dialect):
    ddl = client.publish_ddl("s3://bucket/lake", dialect, database="lake")
    create = sqlglot.parse_one(ddl, read=dialect)
    assert isinstance(create, exp.Create) and create.kind == "TABLE"
    names = [c.name for c in create.find_all(exp.ColumnDef)]
    assert {"label", "hash", "path", "_upload_id", "lang", "provider", "variant"} <= set(names)
    properties = {type(p).__name__: p for p in create.args["properties"].expressions}
    assert "PARQUET" in properties["FileFormatProperty"].sql(dialect).upper()
    partitioned = properties["PartitionedByProperty"].sql(dialect)
    assert all(k in partitioned for k in ("provider", "dataset", "task", "variant"))
    if dialect == "athena":
        assert properties["LocationProperty"].this.name == "s3://bucket/lake/catalog/"
        assert "provider" not in [c.name for c in create.this.expressions]  # partition keys stay out of the columns
    else:
        assert "external_location='s3://bucket/lake/catalog/'" in create.sql(dialect)
        assert names[-4:] == ["provider", "dataset", "task", "variant"]  # Trino: partition columns last
    printed = CliRunner().invoke(cli, ["--base-path", str(client.base_path), "publish", "s3://bucket/lake",
                                       "--print-ddl", dialect])
    assert printed.exit_code == 0 and printed.output.startswith("CREATE ")


def test_bad_targets_are_refused_with_the_fix_and_no_secret_is_ever_written(client, store):
    fs, bucket = store
    run = CliRunner().invoke
    base = ["--base-path", str(client.base_path), "publish"]
    refused = run(cli, [*base, "/tmp/lake"])
    assert refused.exit_code == 1
    assert refused.output == "Error: the publish target must be an s3:// URL: s3://bucket/prefix\n"
    refused = run(cli, [*base, "s3://key:secret@bucket/lake"])
    assert refused.exit_code == 1 and "never in a URL" in refused.output and "key:secret" not in refused.output
    refused = run(cli, [*base, f"s3://{bucket}/lake", "--print-ddl", "spark"])
    assert refused.output == "Error: no table statement for 'spark': choose one of athena, trino\n"
    missing = run(cli, [*base, "s3://no-such-bucket/lake", "--endpoint-url", fs.client_kwargs["endpoint_url"]])
    assert missing.exit_code == 1 and "no-such-bucket" in missing.output and SECRET not in missing.output
    done = run(cli, [*base, f"s3://{bucket}/lake", "--endpoint-url", fs.client_kwargs["endpoint_url"]])
    assert done.exit_code == 0 and done.output.startswith("Published ")
    for key, data in remote_files(fs, bucket).items():
        assert SECRET.encode() not in data, key
    assert not any(SECRET.encode() in p.read_bytes() for p in client.base_path.rglob("*") if p.is_file())

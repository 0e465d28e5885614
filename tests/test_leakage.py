"""Leakage between collections on a real lake: a test set that shares an asset, a resized copy of a
training image and a row with the training set is reported (from Python and the CLI, against a
collection or a search), and an import that excludes the training set's assets or near-duplicates
freezes a version without them that checks clean."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import lake_files
from datalake import DatalakeClient, NotFoundError, ValidationError
from datalake.cli import app as cli
from test_fingerprint import encoded, picture
from test_near_duplicates import upload

SIZE = (128, 96)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> DatalakeClient:
    """Pictures 0-4 uploaded to `pool` and fingerprinted; `fresh` holds the same bytes as picture 0,
    a half-size copy of picture 1 and two new pictures, fingerprinted by nobody. Collection `train`:
    pool's pictures 0-3; `test`: fresh's rows and pool's rows of pictures 3 and 4."""
    client = DatalakeClient(user_id="alice", base_path=tmp_path_factory.mktemp("leakage") / "lake",
                            create_dirs=True, num_proc=2)
    originals = [picture(seed, SIZE) for seed in range(5)]
    upload(client, [encoded(p, quality=90) for p in originals], "pool")
    assert client.index_fingerprints()["fingerprinted"] == 5
    upload(client, [encoded(originals[0], quality=90), encoded(originals[1].resize((64, 48)), quality=80),
                    encoded(picture(50, SIZE)), encoded(picture(51, SIZE))], "fresh")
    client.build_db()
    pool = client.search(datasets=["pool"])
    client.import_collection(pool[pool["n"] < 4], "train")
    client.import_collection(pd.concat([client.search(datasets=["fresh"]), pool[pool["n"] >= 3]]), "test")
    return client


def rows_of(client: DatalakeClient, dataset: str, n: int) -> pd.Series:
    rows = client.search(datasets=[dataset])
    return rows[rows["n"] == n].iloc[0]


def test_the_report_names_shared_assets_near_copies_rows_and_uploads(lake):
    ledger = lake_files(lake.base_path, "ledger")
    report = lake.check_leakage("train", "test")
    picture0, picture3 = rows_of(lake, "pool", 0), rows_of(lake, "pool", 3)
    assert report.exact.to_dict("records") == [
        {"hash": r["hash"], "path": r["path"], "rows_a": 1, "rows_b": 1}
        for r in sorted([picture0, picture3], key=lambda r: r["hash"])]
    picture1, copy = rows_of(lake, "pool", 1), rows_of(lake, "fresh", 1)
    [near] = report.near.to_dict("records")
    assert (near["hash_a"], near["hash_b"], near["path_a"], near["path_b"]) == (
        picture1["hash"], copy["hash"], picture1["path"], copy["path"])
    assert 0 <= near["distance"] <= report.threshold == 12
    assert report.same_rows == [picture3["row_id"]]
    assert report.same_uploads == [picture0["_upload_id"]]
    assert report.leaks and report.unchecked_images == 0
    assert report.summary() == ("Leakage between collection train v1 and collection test v1: 2 shared assets, "
                                "1 near-duplicate pair (threshold 12), 1 shared row")
    assert lake_files(lake.base_path, "ledger") == ledger  # the copy was fingerprinted on the spot, not recorded

    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["counts"] == {"exact": 2, "near": 1, "same_rows": 1, "same_uploads": 1, "unchecked_images": 0}
    assert as_json["a"] == {"label": "collection train v1", "collection": "train", "version": "v1", "rows": 4}
    assert as_json["near"] == [near] and as_json["leaks"] is True


def test_a_collection_against_a_search_and_two_searches(lake):
    fresh = lake.search(datasets=["fresh"])
    report = lake.check_leakage("train", fresh)
    assert report.exact["hash"].tolist() == [rows_of(lake, "pool", 0)["hash"]]
    assert report.near["hash_b"].tolist() == [rows_of(lake, "fresh", 1)["hash"]]
    assert (report.same_rows, report.same_uploads) == ([], [])
    assert report.b.label == "4 rows"

    pool = lake.search(datasets=["pool"])
    apart = lake.check_leakage(pool[pool["n"] >= 2], fresh)
    assert not apart.leaks and apart.summary() == "No leakage between 3 rows and 4 rows (threshold 12)"
    assert lake.check_leakage(pool[pool["n"] >= 2], fresh, threshold=14).near.empty


def test_an_image_missing_from_the_store_is_counted_as_unchecked(lake):
    gone = "0" * 32
    report = lake.check_leakage("train", pd.DataFrame({"hash": [gone], "path": [f"00/{gone}.jpg"]}))
    assert (report.leaks, report.unchecked_images) == (False, 1)


def test_bad_sides_and_thresholds_are_refused_clearly(lake):
    with pytest.raises(NotFoundError, match="collection 'nope' does not exist"):
        lake.check_leakage("train", "nope")
    with pytest.raises(NotFoundError, match=r"collection 'train' has no version 'v9' \(versions: v1\)"):
        lake.check_leakage("train", "test", version_a="v9")
    with pytest.raises(ValidationError, match="version_b applies to a collection name only"):
        lake.check_leakage("train", lake.search(), version_b="v1")
    with pytest.raises(ValidationError, match="rows given as a have no `hash` column"):
        lake.check_leakage(pd.DataFrame({"n": [1]}), "test")
    with pytest.raises(TypeError, match="b must be a collection name or a DataFrame"):
        lake.check_leakage("train", ["test"])
    with pytest.raises(ValidationError, match="threshold 15 is not allowed"):
        lake.check_leakage("train", "test", threshold=15)


def test_the_cli_exits_1_on_leakage_and_0_without(lake):
    runner = CliRunner()
    base = ["--base-path", str(lake.base_path)]
    result = runner.invoke(cli, [*base, "curate", "leakage", "train", "test"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == ("Leakage between collection train v1 and collection test v1: "
                                              "2 shared assets, 1 near-duplicate pair (threshold 12), 1 shared row")
    assert "Rows of 1 upload(s) are on both sides" in result.stderr
    blocks = [block.splitlines()[0] for block in result.stdout.split("\n\n")]
    assert blocks == ["Shared assets (2):", "Near-duplicate pairs (1):", "Shared rows (1):",
                      "Uploads on both sides (1):"]
    assert rows_of(lake, "fresh", 1)["path"] in result.stdout

    result = runner.invoke(cli, [*base, "curate", "leakage", "train", "test", "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["counts"]["exact"] == 2

    result = runner.invoke(cli, [*base, "curate", "leakage", "train", "train", "--version-b", "v1", "--threshold", "3"])
    assert result.exit_code == 1 and "4 shared assets, 4 shared rows" in result.stderr

    lake.import_collection(lake.search(datasets=["fresh"]).iloc[2:], "unseen")
    result = runner.invoke(cli, [*base, "curate", "leakage", "train", "unseen"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "No leakage between collection train v1 and collection unseen v1 (threshold 12)\n", "")

    result = runner.invoke(cli, [*base, "curate", "leakage", "train", "nope"])
    assert (result.exit_code, result.stderr) == (
        1, "Error: collection 'nope' does not exist; `datalake collections list` shows them\n")


def test_an_import_excluding_the_training_set_leaves_its_leaks_out(lake):
    test_rows = lake.collection_manager.members("test")
    train = lake.collection_manager.info("train")
    meta = lake.import_collection(test_rows, "clean", exclude_near_duplicates_of="train")
    leaked = sorted(rows_of(lake, *where)["hash"] for where in (("pool", 0), ("fresh", 1), ("pool", 3)))
    assert meta["num_samples"] == 3
    assert meta["exclusions"] == [{"kind": "near_duplicates", "of": "train", "version": "v1",
                                   "fingerprint": train["fingerprint"], "threshold": 12, "rows_removed": 3,
                                   "hashes": leaked}]
    assert lake.collection_manager.info("clean") == meta
    assert sorted(lake.collection_manager.members("clean")["n"]) == [2, 3, 4]  # fresh's new pictures, pool's 4
    report = lake.check_leakage("train", "clean")
    assert not report.leaks and report.same_uploads == [rows_of(lake, "pool", 4)["_upload_id"]]
    assert lake.verify_collection("clean")["ok"]

    only_assets = lake.import_collection(test_rows, "clean", exclude_assets_of="train:v1")
    assert only_assets["version"] == "v2" and only_assets["exclusions"][0]["rows_removed"] == 2
    assert "threshold" not in only_assets["exclusions"][0]
    assert lake.check_leakage("train", "clean").summary().endswith(": 1 near-duplicate pair (threshold 12)")

    lake.build_db()  # the exclusions record reads into the database with the rest of the metadata
    assert lake.sql("select version, num_samples from collections where name = 'clean' order by version"
                    ).values.tolist() == [["v1", 3], ["v2", 4]]


def test_external_data_is_filtered_after_its_assets_are_stored(lake, tmp_path):
    png_copy = encoded(picture(2, SIZE), "PNG")  # the same picture as train's 2, other bytes
    data = pd.DataFrame({"image": [png_copy, encoded(picture(60, SIZE))], "y": [1, 2]})
    meta = lake.import_collection(data, "external", exclude_near_duplicates_of="train")
    assert meta["num_samples"] == 1 and meta["exclusions"][0]["rows_removed"] == 1
    assert lake.collection_manager.members("external")["y"].tolist() == [2]

    data.to_parquet(tmp_path / "ext.parquet")
    result = CliRunner().invoke(cli, ["--base-path", str(lake.base_path), "collections", "import",
                                      str(tmp_path / "ext.parquet"), "--name", "external",
                                      "--exclude-near-duplicates-of", "train", "--threshold", "10"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "Left out 1 row(s): near-duplicates (threshold 10) of train v1"


def test_an_import_that_would_exclude_every_row_writes_no_version(lake):
    pool = lake.search(datasets=["pool"])
    ledger = lake_files(lake.base_path, "ledger")
    with pytest.raises(ValidationError, match=r"every row is excluded \(assets of train v1\)"):
        lake.import_collection(pool[pool["n"] < 2], "gone", exclude_assets_of="train")
    assert lake_files(lake.base_path, "ledger") == ledger
    with pytest.raises(NotFoundError, match="collection 'nope' does not exist"):  # checked before storing anything
        lake.import_collection(pd.DataFrame({"image": [encoded(picture(61, SIZE))]}), "gone", exclude_assets_of="nope")
    assert lake_files(lake.base_path, "ledger") == ledger
    with pytest.raises(ValidationError, match="every row is excluded"):
        lake.import_collection(pd.DataFrame({"image": [encoded(picture(0, SIZE), quality=90)]}), "gone",
                               exclude_near_duplicates_of="train")
    assert [p.name for p in (lake.base_path / "collections" / "gone").iterdir()] == []
    with pytest.raises(NotFoundError):
        lake.collection_manager.info("gone")

    with pytest.raises(ValidationError, match="threshold applies to exclude_near_duplicates_of only"):
        lake.import_collection(pool, "gone", exclude_assets_of="train", threshold=10)
    with pytest.raises(ValidationError, match="version name 'v/1' is not allowed"):
        lake.import_collection(pool, "gone", exclude_assets_of="train:v/1")

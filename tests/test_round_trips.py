"""Rows out of the lake go back in: relabelled search results, downloads and collection exports land
as the user expects, and every build after has exactly the rows of the catalog files."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes, process
from datalake.cli import app

OCR_META = {"lang": "ko", "src": "real"}
OCR_FLAGS = ["--task", "ocr", "--meta", "lang=ko", "--meta", "src=real"]


@pytest.fixture
def lake(client):
    """A lake of 30 image rows in two datasets and 10 OCR rows over some of them, built."""
    for dataset, start in (("a", 0), ("b", 20)):
        frame = pd.DataFrame({"image": [image_bytes(start + i) for i in range(15)],
                              "caption": [f"{dataset}{i}" for i in range(15)]})
        client.upload_raw(frame, provider="test", dataset=dataset)
    process(client)
    client.build_db()
    rows = client.search(datasets=["a"], limit=10)
    rows["label"] = [json.dumps({"text": f"t{i}"}) for i in range(10)]
    client.upload_task(rows, provider="test", dataset="a", task="ocr", variant="base", meta=OCR_META)
    process(client)
    client.build_db()
    return client


def assert_database_matches_files(client) -> None:
    """The catalog table holds exactly the rows of the part files, and says it is not behind."""
    on_disk = catalog_rows(client.base_path)
    in_db = client.sql("select count(*) as n from catalog")["n"][0]
    assert in_db == len(on_disk)
    assert client.get_db_info()["behind"] is False


def run(client, *args):
    result = CliRunner().invoke(app, ["--base-path", str(client.base_path), "--user", "bob", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_relabelled_search_results_upload_again_and_every_build_keeps_every_row(lake):
    client = lake
    assert_database_matches_files(client)
    rows = client.search(tasks=["ocr"])
    rows["label"] = [json.dumps({"text": f"relabelled {i}"}) for i in range(len(rows))]
    client.upload_task(rows, provider="test", dataset="a", task="ocr", variant="relabel", meta=OCR_META)
    (summary,) = process(client)["uploads"]
    assert (summary["rows_written"], summary["new_assets"], summary["reused_assets"]) == (10, 0, 10)
    assert client.get_db_info()["behind"] is True
    client.build_db()
    assert_database_matches_files(client)
    relabelled = client.search(variants=["relabel"])
    assert sorted(relabelled["hash"]) == sorted(rows["hash"])
    assert set(relabelled["_uploaded_by"]) == {"alice"} and set(relabelled["_upload_id"]) != set(rows["_upload_id"])
    # a later upload still reaches the database
    client.upload_raw(pd.DataFrame({"image": [image_bytes(99)]}), provider="test", dataset="c")
    process(client)
    client.build_db()
    assert_database_matches_files(client)
    assert len(client.search(datasets=["c"])) == 1


def test_a_parquet_download_uploads_again_through_the_cli(lake, tmp_path):
    client = lake
    run(client, "download", "--dataset", "a", "--task", "ocr", "-o", tmp_path / "o.parquet")
    frame = pd.read_parquet(tmp_path / "o.parquet" / "data.parquet")
    frame["label"] = "fixed"
    frame.to_parquet(tmp_path / "o.parquet" / "data.parquet")
    staged = run(client, "upload", tmp_path / "o.parquet", "--provider", "test", "--dataset", "a", *OCR_FLAGS,
                 "--variant", "fixed")
    assert "their lake columns were replaced: _upload_id, _uploaded_at, _uploaded_by, dataset, hash, " \
           "path, provider, row_id, task, variant" in staged.stdout
    assert "10 rows" in staged.stdout
    run(client, "process", "start")
    run(client, "db", "update")
    assert_database_matches_files(client)
    fixed = client.search(variants=["fixed"])
    assert len(fixed) == 10 and set(fixed["label"]) == {"fixed"}
    assert sorted(fixed["hash"]) == sorted(frame["hash"])


@pytest.mark.parametrize("include_images", [True, False], ids=["with-images", "paths-only"])
def test_a_dataset_download_uploads_again_with_the_same_assets(lake, tmp_path, include_images):
    client = lake
    rows = client.search(datasets=["b"])
    client.download(rows, tmp_path / "ds", format="dataset", include_images=include_images)
    client.upload_raw(tmp_path / "ds", provider="test", dataset="b_copy")
    (summary,) = process(client)["uploads"]
    assert (summary["rows_written"], summary["new_assets"], summary["reused_assets"]) == (15, 0, 15)
    client.build_db()
    assert_database_matches_files(client)
    copy = client.search(datasets=["b_copy"])
    assert sorted(copy["hash"]) == sorted(rows["hash"]) and sorted(copy["caption"]) == sorted(rows["caption"])


def test_a_collection_export_uploads_again(lake, tmp_path):
    client = lake
    client.import_collection(data_source=client.search(tasks=["ocr"]), name="train")
    client.export_collection("train", output_path=tmp_path / "train.parquet", format="parquet")
    client.upload_task(tmp_path / "train.parquet", provider="test", dataset="a", task="ocr", variant="from_train",
                       meta=OCR_META)
    assert process(client)["uploads"][0]["rows_written"] == 10
    client.build_db()
    assert_database_matches_files(client)


def test_rows_contradicting_the_meta_on_the_way_back_are_refused(lake):
    client = lake
    rows = client.search(tasks=["ocr"])
    with pytest.raises(Exception, match="column 'lang' holds 'ko' but the upload's meta is lang='en'"):
        client.upload_task(rows, provider="test", dataset="a", task="ocr", variant="en",
                           meta={"lang": "en", "src": "real"})


def test_an_export_into_the_catalog_is_refused_and_never_read(lake, tmp_path):
    client = lake
    partition = client.base_path / "catalog" / "provider=test" / "dataset=a" / "task=raw" / "variant=image"
    with pytest.raises(Exception, match="inside the lake"):
        client.download(client.search(), partition / "export.parquet")
    pq.write_table(pq.read_table(next(partition.glob("part-*.parquet"))), partition / "copy.parquet")
    client.build_db()
    assert client.sql("select count(*) as n from catalog")["n"][0] == 40

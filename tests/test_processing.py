"""Processing: dedup of assets and rows, overwrite, type conflicts, retry, and the run summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import catalog_rows, image_bytes, lake_files, process
from datalake import DatalakeProcessor, NotFoundError

OCR_META = {"lang": "en", "src": "synthetic"}


def images_df(seeds, **extra) -> pd.DataFrame:
    return pd.DataFrame({"image": [image_bytes(s) for s in seeds], "n": list(seeds), **extra})


def test_summary_lists_every_figure_per_upload(client):
    client.upload_raw(images_df([1, 2, 2]), provider="test", dataset="a")
    result = process(client)
    assert result["processed"] == 1 and result["failed"] == 0
    (summary,) = result["uploads"]
    assert summary == {
        "upload_id": summary["upload_id"], "status": "processed", "partition": "test/a/raw/image",
        "rows_in": 3, "rows_written": 2, "duplicate_rows": 1, "new_assets": 2, "reused_assets": 0,
        "new_bytes": len(image_bytes(1)) + len(image_bytes(2)),
    }


def test_the_same_image_in_two_datasets_is_stored_once(client):
    client.upload_raw(images_df([1, 2]), provider="test", dataset="a")
    client.upload_raw(images_df([2, 3]), provider="huggingface", dataset="b")
    summaries = process(client)["uploads"]
    assert sorted((s["new_assets"], s["reused_assets"]) for s in summaries) == [(1, 1), (2, 0)]
    rows = catalog_rows(client.base_path)
    assert len(rows) == 4
    assert len(lake_files(client.base_path, "assets")) == 3
    shared = [r for r in rows if r["n"] == 2]
    assert {r["dataset"] for r in shared} == {"a", "b"} and len({r["path"] for r in shared}) == 1


def test_uploading_the_same_data_twice_adds_nothing(client, tmp_path):
    pq.write_table(pa.Table.from_pandas(images_df([1, 2, 3])), tmp_path / "d.parquet")
    client.upload_raw(tmp_path / "d.parquet", provider="test", dataset="a")
    process(client)
    before = (catalog_rows(client.base_path), lake_files(client.base_path, "assets"))
    client.upload_raw(tmp_path / "d.parquet", provider="test", dataset="a")
    summary = process(client)["uploads"][0]
    assert (summary["rows_written"], summary["duplicate_rows"], summary["new_assets"]) == (0, 3, 0)
    assert (catalog_rows(client.base_path), lake_files(client.base_path, "assets")) == before
    assert len(list((client.base_path / "catalog").rglob("part-*.parquet"))) == 1


def test_one_part_per_upload_with_lineage_and_meta_columns(client):
    first = client.upload_task(images_df([1]), provider="test", dataset="a", task="ocr", variant="v", meta=OCR_META)
    second = client.upload_task(images_df([2]), provider="test", dataset="a", task="ocr", variant="v", meta=OCR_META)
    process(client)
    parts = sorted(p.name for p in (client.base_path / "catalog").rglob("part-*.parquet"))
    assert parts == [f"part-{first}.parquet", f"part-{second}.parquet"]
    schema = pq.read_schema(next((client.base_path / "catalog").rglob(f"part-{first}.parquet")))
    assert schema.names == ["n", "hash", "path", "lang", "src", "_upload_id", "_uploaded_by", "_uploaded_at",
                            "_source_name"]


def test_overwrite_replaces_the_partition(client):
    client.upload_raw(images_df([1, 2]), provider="test", dataset="a")
    process(client)
    client.upload_raw(images_df([3]), provider="test", dataset="a", overwrite=True)
    process(client)
    assert [r["n"] for r in catalog_rows(client.base_path)] == [3]
    assert len(list((client.base_path / "catalog").rglob("part-*.parquet"))) == 1


def test_type_conflict_fails_with_the_reason_and_retry_sends_it_back(client):
    client.upload_raw(pd.DataFrame({"score": [1, 2]}), provider="test", dataset="a", variant="scores")
    process(client)
    bad = client.upload_raw(pd.DataFrame({"score": ["high"]}), provider="test", dataset="a", variant="scores")
    result = process(client)
    assert result["failed"] == 1
    error = json.loads((client.base_path / "staging/failed" / bad / "error.json").read_text())
    assert error["error"].startswith("column 'score' is string in this upload but int64 in partition "
                                     "test/a/raw/scores; convert it to int64")
    assert error["fix"] == f"fix the cause, then run `datalake process retry {bad}`"
    assert [u["stage"] for u in client.list_uploads()] == ["failed"]
    assert [r["score"] for r in catalog_rows(client.base_path)] == [1, 2]
    client.retry_upload(bad)
    assert [u["stage"] for u in client.list_uploads()] == ["pending"]
    assert process(client)["failed"] == 1  # still conflicting: failed again, nothing landed
    with pytest.raises(NotFoundError, match="is not among the failed uploads"):
        client.retry_upload("20990101T000000000Z-00000000")


def test_a_failed_upload_keeps_its_assets_out_of_sight_until_it_lands(client):
    client.upload_raw(pd.DataFrame({"score": [1]}), provider="test", dataset="a", variant="scores")
    process(client)
    images = [image_bytes(1), image_bytes(2)]
    bad = client.upload_raw(pd.DataFrame({"image": images, "score": ["x", "y"]}),
                            provider="test", dataset="a", variant="scores")
    assert process(client)["failed"] == 1
    assert [f for f in lake_files(client.base_path, "assets") if not Path(f).name.startswith(".")] == []
    client.upload_raw(pd.DataFrame({"score": ["z"]}), provider="test", dataset="a", variant="scores",
                      overwrite=True)  # the partition's scores become strings
    process(client)
    client.retry_upload(bad)
    (summary,) = process(client)["uploads"]
    assert summary["status"] == "processed" and summary["new_assets"] == 2
    assert sorted(lake_files(client.base_path, "assets")) == sorted(r["path"] for r in catalog_rows(client.base_path)
                                                                    if r.get("path"))
    assert sorted((client.base_path / "assets" / r["path"]).read_bytes() for r in catalog_rows(client.base_path)
                  if r.get("path")) == sorted(images)


def test_new_columns_in_a_later_upload_are_fine(client):
    client.upload_raw(pd.DataFrame({"a": [1]}), provider="test", dataset="d", variant="t")
    client.upload_raw(pd.DataFrame({"a": [2], "b": ["x"]}), provider="test", dataset="d", variant="t")
    assert process(client)["failed"] == 0
    assert sorted(r["a"] for r in catalog_rows(client.base_path)) == [1, 2]


def test_processor_class_and_ledger(client):
    upload_id = client.upload_raw(images_df([5]), provider="test", dataset="a")
    result = DatalakeProcessor(client.base_path, num_proc=1).process_all_pending()
    assert result["uploads"][0]["upload_id"] == upload_id
    ledger = pq.read_table(client.base_path / "ledger/uploads" / f"{upload_id}.parquet").to_pylist()[0]
    assert (ledger["uploaded_by"], ledger["rows_written"], ledger["provider"]) == ("alice", 1, "test")
    facts = pq.read_table(client.base_path / "ledger/assets" / f"{upload_id}.parquet").to_pylist()
    assert facts[0]["kind"] == "image" and facts[0]["width"] == 24 and facts[0]["height"] == 16
    assert not any(any((client.base_path / "staging" / s).iterdir()) for s in ("pending", "processing", "trash"))


def test_job_record_is_kept_in_the_lake(client):
    client.upload_raw(images_df([1]), provider="test", dataset="a")
    job_id = client.trigger_processing()
    job = client.get_job_status(job_id)
    assert job["status"] == "completed" and job["kind"] == "process" and job["result"]["processed"] == 1
    assert (client.base_path / "jobs" / f"{job_id}.json").is_file()
    with pytest.raises(NotFoundError):
        client.get_job_status("process-unknown")

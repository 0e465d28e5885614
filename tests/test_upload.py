"""Upload: every source kind and asset form, and every bad input refused with nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from PIL import Image

from conftest import catalog_rows, image_bytes, lake_files, lake_listing, process
from datalake import DatalakeClient, DatalakeError, NotFoundError, ValidationError
from datalake.upload.assets import WHOLE_READ_LIMIT
from datalake.upload.ingest import PROCESS_MIN_ROWS
from datalake.upload.workers import start_workers

OCR_META = {"lang": "ko", "src": "real"}


def hf_image_table(n: int, start: int = 0) -> pa.Table:
    images = [{"bytes": image_bytes(start + i), "path": f"img_{start + i}.png"} for i in range(n)]
    return pa.table({"image": images, "caption": [f"caption {start + i}" for i in range(n)]})


# -- sources ------------------------------------------------------------------------------------


def test_parquet_file_with_hf_image_structs_lands_with_hash_and_path(client, tmp_path):
    pq.write_table(hf_image_table(3), tmp_path / "data.parquet")
    client.upload_raw(tmp_path / "data.parquet", provider="huggingface", dataset="coco_2017")
    summary = process(client)["uploads"][0]
    assert summary["partition"] == "huggingface/coco_2017/raw/image"
    rows = catalog_rows(client.base_path)
    assert [r["caption"] for r in rows] == ["caption 0", "caption 1", "caption 2"]
    for i, row in enumerate(rows):
        stored = (client.base_path / "assets" / row["path"]).read_bytes()
        assert stored == image_bytes(i)
        assert row["hash"] == xxhash.xxh3_128_hexdigest(stored)
        assert row["path"] == f"{row['hash'][:2]}/{row['hash']}.png"
        assert row["_uploaded_by"] == "alice" and row["_upload_id"] and row["_uploaded_at"]
        assert "image" not in row


def test_parquet_folder_is_read_as_one_upload(client, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(hf_image_table(2, 0), folder / "a.parquet")
    pq.write_table(hf_image_table(2, 2), folder / "b.parquet")
    client.upload_raw(folder, provider="huggingface", dataset="shards")
    assert process(client)["uploads"][0]["rows_written"] == 4


def test_save_to_disk_folder_and_dataset_object(client, tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"image": [Image.open(__import__("io").BytesIO(image_bytes(i))) for i in range(3)],
         "text": ["a", "b", "c"]},
        features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")}),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    client.upload_raw(tmp_path / "saved", provider="huggingface", dataset="saved")
    client.upload_task(ds, provider="huggingface", dataset="saved", task="ocr", variant="v1", meta=OCR_META)
    result = process(client)
    assert {s["partition"]: s["rows_written"] for s in result["uploads"]} == {
        "huggingface/saved/raw/image": 3, "huggingface/saved/ocr/v1": 3}
    rows = catalog_rows(client.base_path)
    assert len({r["hash"] for r in rows}) == 3  # task rows link to the raw rows by hash
    assert lake_files(client.base_path, "assets").__len__() == 3


def test_dataframe_with_raw_bytes_pil_images_and_nested_labels(client, tmp_path):
    png = image_bytes(1)
    jpeg_path = tmp_path / "photo.jpg"
    jpeg_path.write_bytes(image_bytes(2, "JPEG"))
    df = pd.DataFrame({"image": [png, Image.open(jpeg_path)],
                       "label": [{"text": "영수증 합계"}, {"elements": [{"text": "日本"}]}]})
    client.upload_task(df, provider="test", dataset="frames", task="ocr", variant="v", meta=OCR_META)
    process(client)
    rows = catalog_rows(client.base_path)
    assert [r["path"].rsplit(".", 1)[1] for r in rows] == ["png", "jpg"]
    # a PIL image opened from a file keeps that file's exact bytes
    assert (client.base_path / "assets" / rows[1]["path"]).read_bytes() == jpeg_path.read_bytes()
    assert rows[0]["label"] == '{"text": "영수증 합계"}'  # JSON text, UTF-8, not escaped
    assert json.loads(rows[1]["label"]) == {"elements": [{"text": "日本"}]}
    assert (rows[0]["lang"], rows[0]["src"]) == ("ko", "real")


def test_file_path_columns_absolute_and_relative_to_the_source(client, tmp_path):
    src = tmp_path / "src"
    (src / "files").mkdir(parents=True)
    (src / "files" / "a.png").write_bytes(image_bytes(1))
    (src / "files" / "doc.pdf").write_bytes(b"%PDF-1.4 tiny")
    absolute = tmp_path / "elsewhere.txt"
    absolute.write_text("plain text")
    pq.write_table(pa.table({"file_path": ["files/a.png", "files/doc.pdf", str(absolute)]}), src / "data.parquet")
    client.upload_raw(src / "data.parquet", provider="test", dataset="docs")
    summary = process(client)["uploads"][0]
    assert summary["partition"] == "test/docs/raw/mixed"
    assert sorted(r["path"].rsplit(".", 1)[1] for r in catalog_rows(client.base_path)) == ["pdf", "png", "txt"]


def test_a_file_bigger_than_one_read_is_copied_while_hashed(client, tmp_path):
    big = os.urandom(WHOLE_READ_LIMIT + 1_000_000)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "small.txt").write_text("small")
    pq.write_table(pa.table({"file_path": ["big.bin", "small.txt"]}), tmp_path / "files.parquet")
    client.upload_raw(tmp_path / "files.parquet", provider="test", dataset="d")
    assert process(client)["uploads"][0]["new_bytes"] == len(big) + 5
    stored = {r["path"]: (client.base_path / "assets" / r["path"]).read_bytes() for r in catalog_rows(client.base_path)}
    assert sorted(stored.values(), key=len) == [b"small", big]
    assert {Path(p).name for p in stored} == {f"{xxhash.xxh3_128_hexdigest(big)}.bin",
                                              f"{xxhash.xxh3_128_hexdigest(b'small')}.txt"}


@pytest.mark.parametrize("columns, variant", [
    ({"image_path": ["a.png"]}, "image"),
    ({"file": ["doc.pdf"]}, "files"),
    ({"text": ["just text"]}, "text"),
])
def test_raw_variant_is_detected_from_the_columns(client, tmp_path, columns, variant):
    (tmp_path / "a.png").write_bytes(image_bytes(3))
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.7")
    pq.write_table(pa.table(columns), tmp_path / "d.parquet")
    client.upload_raw(tmp_path / "d.parquet", provider="test", dataset="detect")
    assert process(client)["uploads"][0]["partition"] == f"test/detect/raw/{variant}"


def test_variant_given_for_raw_data_is_used(client, tmp_path):
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "d.parquet")
    client.upload_raw(tmp_path / "d.parquet", provider="test", dataset="d", variant="001")
    assert process(client)["uploads"][0]["partition"] == "test/d/raw/001"


def test_search_relabel_upload_round_trip_by_hash(client, tmp_path):
    pq.write_table(hf_image_table(2), tmp_path / "raw.parquet")
    client.upload_raw(tmp_path / "raw.parquet", provider="huggingface", dataset="coco")
    process(client)
    found = pd.DataFrame(catalog_rows(client.base_path))  # what a search returns: rows with hash, path, lineage
    found["label"] = [{"text": f"t{i}"} for i in range(len(found))]
    client.upload_task(found, provider="huggingface", dataset="coco", task="ocr", variant="relabel", meta=OCR_META)
    summary = process(client)["uploads"][0]
    assert summary["rows_written"] == 2 and summary["new_assets"] == 0 and summary["reused_assets"] == 2
    ocr = [r for r in catalog_rows(client.base_path) if r["task"] == "ocr"]
    assert {r["hash"] for r in ocr} == set(found["hash"])
    assert all((client.base_path / "assets" / r["path"]).is_file() for r in ocr)
    assert len(lake_files(client.base_path, "assets")) == 2


def test_upload_records_who_when_source_and_description(client, tmp_path):
    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "t.parquet")
    upload_id = client.upload_raw(tmp_path / "t.parquet", provider="test", dataset="d", description="two rows")
    manifest = json.loads((client.base_path / "staging/pending" / upload_id / "manifest.json").read_text())
    assert manifest["uploaded_by"] == "alice" and manifest["uploaded_at"]
    assert manifest["description"] == "two rows" and manifest["num_rows"] == 2
    assert str(tmp_path / "t.parquet") in manifest["source"]
    assert client.list_uploads()[0]["stage"] == "pending"


# -- bad inputs: a clear error, and nothing written -----------------------------------------------


def refused(client: DatalakeClient, match: str, call) -> None:
    refused_with(client, ValidationError, match, call)


def refused_with(client: DatalakeClient, error: type[Exception], match: str, call) -> None:
    before = lake_listing(client.base_path)
    with pytest.raises(error, match=match):
        call()
    assert lake_listing(client.base_path) == before, "a refused upload must leave no trace"


@pytest.fixture
def small(tmp_path) -> Path:
    pq.write_table(hf_image_table(2), tmp_path / "small.parquet")
    return tmp_path / "small.parquet"


def test_unregistered_provider_names_the_fix(client, small):
    refused(client, r"provider 'hf' is not registered; add it with `datalake config provider create hf`",
            lambda: client.upload_raw(small, provider="hf", dataset="d"))


def test_unregistered_task(client, small):
    refused(client, r"task 'captions' is not registered",
            lambda: client.upload_task(small, provider="test", dataset="d", task="captions", variant="v", meta={}))


@pytest.mark.parametrize("meta, message", [
    ({"lang": "ko"}, r"task 'ocr' requires meta field 'src' \(allowed: real, synthetic\)"),
    ({"lang": "ko", "src": "real", "extra": "x"}, r"meta field 'extra' is not defined for task 'ocr'"),
    ({"lang": "fr", "src": "real"}, r"meta lang='fr' is not allowed for task 'ocr'; allowed: ko, en, ja, multi"),
])
def test_meta_must_match_the_task_rules(client, small, meta, message):
    refused(client, message,
            lambda: client.upload_task(small, provider="test", dataset="d", task="ocr", variant="v", meta=meta))


@pytest.mark.parametrize("field, value", [("dataset", "../escape"), ("dataset", "a/b"), ("dataset", "/abs"),
                                          ("variant", ".hidden"), ("dataset", "")])
def test_unsafe_names_are_refused(client, small, field, value):
    kwargs = {"provider": "test", "dataset": "d", "task": "ocr", "variant": "v", "meta": OCR_META, field: value}
    refused(client, rf"{field} name .* is not allowed", lambda: client.upload_task(small, **kwargs))


def test_corrupt_image_is_reported_with_its_row_number(client, tmp_path):
    images = [{"bytes": image_bytes(0), "path": "a.png"}, {"bytes": b"\x89PNG not really", "path": "b.png"},
              {"bytes": image_bytes(2), "path": "c.png"}]
    pq.write_table(pa.table({"image": images}), tmp_path / "bad.parquet")
    refused(client, r"1 row\(s\) of .* cannot be uploaded[\s\S]*row 1: image header is not readable \('b.png'\)",
            lambda: client.upload_raw(tmp_path / "bad.parquet", provider="test", dataset="d"))


def test_missing_file_is_reported(client, tmp_path):
    pq.write_table(pa.table({"image_path": ["nope.png"]}), tmp_path / "d.parquet")
    refused(client, r"row 0: file not found: .*nope.png",
            lambda: client.upload_raw(tmp_path / "d.parquet", provider="test", dataset="d"))


def large_upload(tmp_path: Path, bad: dict[int, str], as_bytes: bool = False) -> Path:
    """PROCESS_MIN_ROWS + 100 rows naming image files (or carrying their bytes in HF Image
    structs), staged in child processes: every image comes twice (rows i and i + half), so two
    children may meet the same content; `bad` puts other paths at some rows."""
    half = (PROCESS_MIN_ROWS + 100) // 2
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(half):
        (folder / f"{i}.png").write_bytes(image_bytes(i))
    (folder / "broken.png").write_bytes(b"\x89PNG cut short")
    paths = [bad.get(row, f"files/{row % half}.png") for row in range(2 * half)]
    column = ({"image": [{"bytes": (tmp_path / p).read_bytes(), "path": p} for p in paths]} if as_bytes
              else {"image_path": paths})
    pq.write_table(pa.table({**column, "n": list(range(2 * half))}), tmp_path / "large.parquet")
    return tmp_path / "large.parquet"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["file-paths", "image-bytes"])
def test_a_large_upload_lands_like_a_small_one(client, tmp_path, as_bytes):
    source = large_upload(tmp_path, {}, as_bytes)
    upload_id = client.upload_raw(source, provider="test", dataset="d")
    half = (PROCESS_MIN_ROWS + 100) // 2
    manifest = json.loads((client.base_path / "staging" / "pending" / upload_id / "manifest.json").read_text())
    assert (manifest["num_rows"], manifest["num_assets"]) == (2 * half, half)
    (summary,) = process(client)["uploads"]
    assert (summary["rows_written"], summary["new_assets"], summary["reused_assets"]) == (2 * half, half, 0)
    assert len(lake_files(client.base_path, "assets")) == half
    assert lake_files(client.base_path, "staging") == []
    rows = catalog_rows(client.base_path)
    assert {r["hash"] for r in rows if r["n"] in (7, 7 + half)} == {xxhash.xxh3_128_hexdigest(image_bytes(7))}
    assert all((client.base_path / "assets" / r["path"]).read_bytes() == image_bytes(r["n"] % half) for r in rows)


def test_a_script_without_a_main_guard_uploads_a_large_source(client, tmp_path):
    source = large_upload(tmp_path, {})
    script = tmp_path / "upload.py"
    script.write_text("from datalake import DatalakeClient\n"
                      f"client = DatalakeClient(user_id='bob', base_path={str(client.base_path)!r}, num_proc=2)\n"
                      f"print(client.upload_raw({str(source)!r}, provider='test', dataset='d'))\n")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert [u["upload_id"] for u in client.list_uploads()] == [run.stdout.strip()]
    assert process(client)["uploads"][0]["rows_written"] == PROCESS_MIN_ROWS + 100


def test_a_large_upload_reports_its_bad_rows_and_leaves_no_trace(client, tmp_path):
    source = large_upload(tmp_path, {3: "files/broken.png", PROCESS_MIN_ROWS + 5: "files/gone.png"})
    refused(client, rf"2 row\(s\) of .* cannot be uploaded[\s\S]*row 3: image header is not readable "
                    rf"\('broken.png'\)[\s\S]*row {PROCESS_MIN_ROWS + 5}: file not found: .*gone.png",
            lambda: client.upload_raw(source, provider="test", dataset="d"))


def test_a_worker_process_that_dies_fails_its_calls_with_a_clear_error():
    workers = start_workers(partial(partial, os._exit, 3), 1)  # each call ends the worker process
    try:
        with pytest.raises(DatalakeError, match=r"a worker process stopped unexpectedly \(exit code 3\); "
                                                r"nothing of this upload was kept, upload it again"):
            workers.submit().result(timeout=60)
    finally:
        workers.shutdown()


def test_empty_data_is_refused(client, tmp_path):
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    refused(client, r"holds no rows; there is nothing to upload",
            lambda: client.upload_raw(tmp_path / "empty.parquet", provider="test", dataset="d"))
    refused(client, r"holds no rows", lambda: client.upload_raw(pd.DataFrame({"a": []}), provider="test", dataset="d"))


def test_a_file_that_is_not_parquet_is_refused(client, tmp_path):
    (tmp_path / "notes.parquet").write_text("hello")
    refused(client, r"is not a readable parquet file",
            lambda: client.upload_raw(tmp_path / "notes.parquet", provider="test", dataset="d"))
    refused(client, r"does not exist", lambda: client.upload_raw(tmp_path / "missing.parquet",
                                                                 provider="test", dataset="d"))


def test_unknown_hash_is_refused(client):
    df = pd.DataFrame({"hash": ["0" * 32], "label": ["x"]})
    refused(client, r"hash 0{32} is not in the lake's asset store",
            lambda: client.upload_task(df, provider="test", dataset="d", task="ocr", variant="v", meta=OCR_META))


def test_two_asset_columns_are_ambiguous(client):
    df = pd.DataFrame({"image": [image_bytes(1)], "file_path": ["x.png"]})
    refused(client, r"several asset columns \(image, file_path\)",
            lambda: client.upload_raw(df, provider="test", dataset="d"))


def test_client_on_a_missing_lake_says_how_to_create_it(tmp_path):
    with pytest.raises(NotFoundError, match=r"no lake at .*; create one with `datalake init"):
        DatalakeClient(user_id="a", base_path=tmp_path / "none")

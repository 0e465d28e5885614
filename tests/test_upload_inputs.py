"""Hostile and unusual inputs: each is stored faithfully or refused with a clear error and no trace."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from PIL import Image
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes, lake_listing, process
from datalake import DatalakeClient, DatalakeError, ValidationError
from datalake.cli import app

OCR_META = {"lang": "ko", "src": "real"}
LAKE_COLUMNS_TEXT = ("is one of the lake's own columns (provider, dataset, task, variant, hash, path, _upload_id, "
                     "_uploaded_by, _uploaded_at, _source_name, row_id, _file, _build, _row_number), which the lake "
                     "writes itself; rename it (rows that came out of the lake, with all of _upload_id, _uploaded_by, "
                     "_uploaded_at, may carry them)")


def refused(client: DatalakeClient, error: type[Exception], text: str, call) -> str:
    """Run `call`, which must raise `error` whose message contains `text`, leaving the lake as it was."""
    before = lake_listing(client.base_path)
    with pytest.raises(error) as caught:
        call()
    assert text in str(caught.value)
    assert lake_listing(client.base_path) == before, "a refused upload must leave no trace"
    return str(caught.value)


def cli(client: DatalakeClient, *args: str):
    return CliRunner().invoke(app, ["--base-path", str(client.base_path), "--user", "alice", *map(str, args)])


def cli_refused(client: DatalakeClient, text: str, *args: str) -> None:
    before = lake_listing(client.base_path)
    result = cli(client, *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and text in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert lake_listing(client.base_path) == before


# -- the lake's own columns -------------------------------------------------------------------


@pytest.mark.parametrize("column", ["provider", "dataset", "_upload_id", "_uploaded_by", "row_id", "_file", "_build",
                                    "_Row_Number", "Provider", "PATH"])
def test_user_data_naming_a_lake_column_is_refused(client, tmp_path, column):
    frame = pd.DataFrame({"text": ["a", "b"], column: ["x", "y"]})
    refused(client, ValidationError, f"column {column!r} {LAKE_COLUMNS_TEXT}",
            lambda: client.upload_raw(frame, provider="test", dataset="d"))
    frame.to_parquet(tmp_path / "t.parquet")
    cli_refused(client, f"column {column!r} {LAKE_COLUMNS_TEXT}", "upload", tmp_path / "t.parquet",
                "--provider", "test", "--dataset", "d")


def test_a_path_column_beside_the_images_is_refused(client):
    frame = pd.DataFrame({"image": [image_bytes(0)], "path": ["mine/a.png"]})
    refused(client, ValidationError, f"column 'path' {LAKE_COLUMNS_TEXT}",
            lambda: client.upload_raw(frame, provider="test", dataset="d"))


@pytest.mark.parametrize("columns, text", [
    (["Label", "label"], "columns 'Label' and 'label' differ only in case, which the database cannot tell apart; "
                         "rename one of them"),
    (["", "label"], "a column has an empty name; give every column a name"),
    (["file_row_number"], "column 'file_row_number' cannot be stored: the database adds a column of that name "
                          "when it reads the lake's files; rename it"),
    (["LANG"], "column 'LANG' differs only in case from the meta field 'lang', which the database cannot "
               "tell apart; rename the column or drop it"),
])
def test_column_names_the_database_cannot_tell_apart_are_refused(client, tmp_path, columns, text):
    table = pa.table({name: ["x"] for name in columns} | {"text": ["t"]}) if "" not in columns else \
        pa.Table.from_arrays([pa.array(["x"]), pa.array(["y"])], names=columns)
    pq.write_table(table, tmp_path / "t.parquet")
    refused(client, ValidationError, text, lambda: client.upload_task(
        tmp_path / "t.parquet", provider="test", dataset="d", task="ocr", variant="v", meta=OCR_META))
    cli_refused(client, text, "upload", tmp_path / "t.parquet", "--provider", "test", "--dataset", "d",
                "--task", "ocr", "--variant", "v", "--meta", "lang=ko", "--meta", "src=real")


def test_a_dataframe_with_the_same_column_twice_is_refused(client):
    frame = pd.DataFrame([["a", "b"]], columns=["text", "text"])
    refused(client, ValidationError, "column 'text' appears twice; give each column its own name",
            lambda: client.upload_raw(frame, provider="test", dataset="d"))


def test_per_row_meta_values_that_contradict_the_upload_meta_are_refused(client):
    frame = pd.DataFrame({"text": ["a", "b", "c"], "lang": ["ko", "en", "ja"]})
    message = refused(client, ValidationError, "2 row(s) of pandas DataFrame (3 rows) cannot be uploaded", lambda:
                      client.upload_task(frame, provider="test", dataset="d", task="ocr", variant="v", meta=OCR_META))
    assert "row 1: column 'lang' holds 'en' but the upload's meta is lang='ko'; upload those rows with their own " \
           "meta, or drop the column" in message
    assert "row 2: column 'lang' holds 'ja'" in message


def test_per_row_meta_values_that_agree_are_stored_once(client):
    frame = pd.DataFrame({"text": ["a", "b"], "lang": ["ko", None]})
    client.upload_task(frame, provider="test", dataset="d", task="ocr", variant="v", meta=OCR_META)
    process(client)
    assert sorted((r["text"], r["lang"]) for r in catalog_rows(client.base_path)) == [("a", "ko"), ("b", "ko")]


# -- images in DataFrames ---------------------------------------------------------------------


def test_hugging_face_image_dicts_in_a_dataframe_store_their_images(client):
    frame = pd.DataFrame({"image": [{"bytes": image_bytes(i), "path": f"{i}.png"} for i in range(3)] + [None],
                          "caption": ["a", "b", "c", "d"]})
    client.upload_raw(frame, provider="test", dataset="d")
    (summary,) = process(client)["uploads"]
    assert (summary["partition"], summary["new_assets"]) == ("test/d/raw/image", 3)
    rows = sorted(catalog_rows(client.base_path), key=lambda r: r["caption"])
    for i, row in enumerate(rows[:3]):
        assert (client.base_path / "assets" / row["path"]).read_bytes() == image_bytes(i)
    assert rows[3]["hash"] is None


def test_pil_images_and_raw_bytes_in_a_dataframe_store_their_images(client):
    pil = Image.open(io.BytesIO(image_bytes(5)))
    frame = pd.DataFrame({"image": [pil, image_bytes(6)]})
    client.upload_raw(frame, provider="test", dataset="d")
    assert process(client)["uploads"][0]["new_assets"] == 2
    stored = {(client.base_path / "assets" / r["path"]).read_bytes() for r in catalog_rows(client.base_path)}
    assert stored == {image_bytes(5), image_bytes(6)}


def test_a_column_of_mixed_types_is_a_clear_error(client):
    frame = pd.DataFrame({"text": ["a", "b"], "score": [1, "high"]})
    refused(client, ValidationError, "column 'score' cannot be stored: ",
            lambda: client.upload_raw(frame, provider="test", dataset="d"))


def test_an_image_header_claiming_an_impossible_size_is_a_row_problem(client, tmp_path):
    png = bytearray(image_bytes(0))
    png[16:20] = (0xFFFFFFFF).to_bytes(4, "big")
    frame = pd.DataFrame({"image": [image_bytes(1), bytes(png)]})
    refused(client, ValidationError, "row 1: image header claims 4294967295x16 px: the image is corrupt",
            lambda: client.upload_raw(frame, provider="test", dataset="d"))


# -- damaged files ----------------------------------------------------------------------------


def test_a_parquet_file_damaged_in_its_middle_is_a_clear_error(client, tmp_path):
    path = tmp_path / "damaged.parquet"
    words = [os.urandom(40).hex() for _ in range(20000)]
    pq.write_table(pa.table({"text": words}), path, row_group_size=5000, compression="snappy")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    text = f"{str(path)!r} is damaged and cannot be read to its end"
    refused(client, ValidationError, text, lambda: client.upload_raw(path, provider="test", dataset="d"))
    cli_refused(client, text, "upload", path, "--provider", "test", "--dataset", "d")


# -- file paths read regular files only -------------------------------------------------------


@pytest.fixture
def special_files(tmp_path):
    """A source folder with a good image and special files; their paths as the rows name them."""
    folder = tmp_path / "src"
    (folder / "imgs").mkdir(parents=True)
    (folder / "imgs" / "ok.png").write_bytes(image_bytes(0))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(image_bytes(1))
    os.symlink(outside / "secret.png", folder / "imgs" / "link.png")
    os.symlink(outside, folder / "linked")
    os.mkfifo(folder / "imgs" / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "imgs" / "sock"))
    yield folder, {
        "/proc/self/environ": "not a regular file (a folder, device, FIFO, socket or system file): /proc/self/environ",
        "/dev/null": "not a regular file (a folder, device, FIFO, socket or system file): /dev/null",
        "imgs/fifo": f"not a regular file (a folder, device, FIFO, socket or system file): {folder}/imgs/fifo",
        "imgs/sock": f"not a regular file (a folder, device, FIFO, socket or system file): {folder}/imgs/sock",
        "imgs": f"not a regular file (a folder, device, FIFO, socket or system file): {folder}/imgs",
        "imgs/link.png": f"{folder}/imgs/link.png is a symbolic link; datalake reads regular files only",
        "linked/secret.png": f"linked/secret.png is reached through a symbolic link in {folder}/linked",
    }
    sock.close()


def test_path_columns_read_regular_files_only(client, special_files, monkeypatch):
    folder, expected = special_files
    monkeypatch.setenv("DATALAKE_TOKEN", "do-not-store-me")
    paths = ["imgs/ok.png", *expected]
    pq.write_table(pa.table({"image_path": paths}), folder / "rows.parquet")
    message = refused(client, ValidationError, f"{len(expected)} row(s) of parquet file",
                      lambda: client.upload_raw(folder / "rows.parquet", provider="test", dataset="d"))
    for row, text in enumerate(expected.values(), start=1):
        assert f"row {row}: {text}" in message
    cli_refused(client, "row 1: not a regular file", "upload", folder / "rows.parquet", "--provider", "test",
                "--dataset", "d")


def test_the_upload_names_the_folders_it_read_files_from(client, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(image_bytes(ord(name)))
    pq.write_table(pa.table({"file_path": ["a/x.png", f"{tmp_path}/b/x.png"]}), tmp_path / "rows.parquet")
    result = cli(client, "upload", tmp_path / "rows.parquet", "--provider", "test", "--dataset", "d")
    assert result.exit_code == 0, result.output
    assert f"Read files from: {tmp_path}/a, {tmp_path}/b\n" in result.stdout
    (pending,) = (client.base_path / "staging" / "pending").iterdir()
    manifest = json.loads((pending / "manifest.json").read_text())
    assert manifest["read_from"] == [f"{tmp_path}/a", f"{tmp_path}/b"]


# -- the store holds no links -----------------------------------------------------------------


@pytest.mark.parametrize("planted", ["file", "shard"])
def test_a_symbolic_link_in_the_store_is_never_followed(client, tmp_path, planted):
    data = image_bytes(3)
    digest = xxhash.xxh3_128_hexdigest(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    store = client.base_path / "assets"
    if planted == "file":
        os.symlink(tmp_path / "elsewhere.png", store / digest[:2] / f"{digest}.png")
        link = f"{store}/{digest[:2]}/{digest}.png"
    else:
        (store / digest[:2]).rmdir()
        os.symlink(outside, store / digest[:2])
        link = f"{store}/{digest[:2]}"
    refused(client, DatalakeError, f"the asset store holds a symbolic link at {link}; datalake never follows "
                                   "links in its store: remove it",
            lambda: client.upload_raw(pd.DataFrame({"image": [data]}), provider="test", dataset="d"))
    assert list(outside.iterdir()) == []


# -- leftovers ----------------------------------------------------------------------------------


def test_a_killed_upload_leaves_the_lake_as_it_was_once_processing_ran(client, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for i in range(3000):
        (files / f"{i}.png").write_bytes(image_bytes(i))
    pq.write_table(pa.table({"image_path": [f"files/{i}.png" for i in range(3000)]}), tmp_path / "big.parquet")
    before = lake_listing(client.base_path)
    script = ("import sys; from datalake import DatalakeClient; "
              "DatalakeClient(user_id='bob', base_path=sys.argv[1], num_proc=2).upload_raw("
              "sys.argv[2], provider='test', dataset='d')")
    child = subprocess.Popen([sys.executable, "-c", script, str(client.base_path), str(tmp_path / "big.parquet")])
    while child.poll() is None and sum(1 for _ in client.base_path.rglob("*")) < len(before) + 300:
        pass
    child.kill()
    child.wait()
    assert lake_listing(client.base_path) != before, "the kill came too late to test anything"
    # its worker processes finish what was queued for them; a processing run after that cleans up
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = cli(client, "process", "start")
        assert result.exit_code == 0, result.output
        if not any((client.base_path / "staging" / "incoming").iterdir()):
            break
        time.sleep(0.2)
    after = [p for p in lake_listing(client.base_path) if not p.startswith("jobs/")]
    assert after == [p for p in before if not p.startswith("jobs/")]

"""Dataset statistics on a real lake: the dataset_stats mart after full and incremental builds,
client.stats() over the rows of a search, and `datalake stats` as a table and as JSON.

The lake: huggingface/train/ocr/v1 (lang ko, src real) holds pictures A, B, C, D, one row each,
and a second upload that brought A's row again (dropped as a duplicate); huggingface/val/ocr/v1
(lang en, src synthetic) holds A again, E without a label, and F, a smaller re-encode of B."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import process
from datalake import DatalakeClient, NotFoundError, ValidationError
from datalake.cli import app as cli
from datalake.curation import DEFAULT_THRESHOLD
from test_fingerprint import encoded, picture

TRAIN, VAL = "huggingface/train/ocr/v1", "huggingface/val/ocr/v1"
runner = CliRunner()


def sized(seed: int, size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    return encoded(picture(seed).resize(size), fmt)


A, B, C, D, E = (sized(1, (48, 32), "PNG"), sized(2, (64, 40), "PNG"), sized(3, (80, 60)),
                 sized(4, (96, 72), "PNG"), sized(5, (30, 30)))
F = sized(2, (32, 20))  # B, half size, as a JPEG


def upload(client: DatalakeClient, dataset: str, images: list[bytes], labels: list, meta: dict) -> None:
    client.upload_task(pd.DataFrame({"image": images, "label": labels}), provider="huggingface",
                       dataset=dataset, task="ocr", variant="v1", meta=meta)
    process(client)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[DatalakeClient, pd.DataFrame]:
    """The lake, built; and the mart as the first build left it (before the duplicate and the fingerprints)."""
    client = DatalakeClient(user_id="qa", base_path=tmp_path_factory.mktemp("stats") / "lake", create_dirs=True)
    upload(client, "train", [A, B, C], ["ab", "abcd", "abcdefgh"], {"lang": "ko", "src": "real"})
    upload(client, "val", [A, E, F], ["abc", None, "abcde"], {"lang": "en", "src": "synthetic"})
    client.build_db()
    first = client.sql("select * from dataset_stats order by partition_key")
    upload(client, "train", [A, D], ["ab", "x" * 16], {"lang": "ko", "src": "real"})
    assert client.index_fingerprints()["pairs"] == 1  # B and F
    client.build_db()
    return client, first


def bytes_of(*images: bytes) -> int:
    return sum(len(image) for image in images)


TRAIN_ROW = {"partition_key": TRAIN, "num_rows": 4, "num_assets": 4, "bytes": bytes_of(A, B, C, D), "image_assets": 4,
             "width_p5": 48, "width_p50": 64, "width_p95": 96, "height_p5": 32, "height_p50": 40, "height_p95": 72,
             "duplicate_rows": 1, "label_rows": 4, "label_length_p5": 2, "label_length_p50": 4,
             "label_length_p95": 16, "fingerprinted_assets": 4, "near_duplicate_assets": 1}
VAL_ROW = {"partition_key": VAL, "num_rows": 3, "num_assets": 3, "bytes": bytes_of(A, E, F), "image_assets": 3,
           "width_p5": 30, "width_p50": 32, "width_p95": 48, "height_p5": 20, "height_p50": 30, "height_p95": 32,
           "duplicate_rows": 0, "label_rows": 2, "label_length_p5": 3, "label_length_p50": 3,
           "label_length_p95": 5, "fingerprinted_assets": 3, "near_duplicate_assets": 1}


def test_the_mart_has_a_row_per_partition_that_follows_incremental_builds(lake):
    client, first = lake
    rows = client.sql("select * from dataset_stats order by partition_key").to_dict(orient="records")
    assert [{k: row[k] for k in TRAIN_ROW} for row in rows] == [TRAIN_ROW, VAL_ROW]
    assert [row["file_types"] for row in rows] == [{"png": 3, "jpg": 1}, {"png": 1, "jpg": 2}]
    assert client.sql(f"select file_types['png'] as png from dataset_stats where partition_key = '{TRAIN}'")[
        "png"].tolist() == [3]

    before = first.set_index("partition_key")  # the first build: 3 train rows, nothing dropped, no fingerprints
    assert before.loc[TRAIN, ["num_rows", "duplicate_rows", "width_p95", "label_length_p95", "fingerprinted_assets"]
                      ].tolist() == [3, 0, 80, 8, 0]
    assert before["near_duplicate_assets"].isna().all()

    client.build_db(full_refresh=True)  # the incremental builds left what a full build makes
    assert client.sql("select * from dataset_stats order by partition_key").to_dict(orient="records") == rows


def test_the_mart_counts_near_duplicates_at_the_default_threshold():
    project = yaml.safe_load((Path(__file__).resolve().parent.parent / "dbt_project.yml").read_text())
    assert project["vars"]["near_duplicate_threshold"] == DEFAULT_THRESHOLD


def test_stats_of_the_whole_lake(lake):
    client, _ = lake
    found = client.stats()
    assert json.loads(json.dumps(found)) == found  # plain JSON values
    assert {k: found[k] for k in ("rows", "assets", "bytes", "duplicate_rows")} == {
        "rows": 7, "assets": 6, "bytes": bytes_of(A, B, C, D, E, F), "duplicate_rows": 1}
    assert found["images"] == {"count": 6, "width": {"p5": 30, "p50": 48, "p95": 96},
                               "height": {"p5": 20, "p50": 32, "p95": 72}}
    assert list(found["file_types"].items()) == [("jpg", 3), ("png", 3)]
    assert found["meta"] == {"lang": {"distinct": 2, "top": {"ko": 4, "en": 3}},
                             "src": {"distinct": 2, "top": {"real": 4, "synthetic": 3}}}
    assert list(found["meta"]["lang"]["top"]) == ["ko", "en"]  # most frequent first
    assert found["labels"] == {"rows": 6, "length": {"p5": 2, "p50": 4, "p95": 16}}
    assert found["near_duplicates"] == {"threshold": 12, "fingerprinted": 6, "groups": 1, "images": 2}
    assert [{k: p[k] for k in TRAIN_ROW} for p in found["partitions"]] == [TRAIN_ROW, VAL_ROW]
    assert [p["file_types"] for p in found["partitions"]] == [{"png": 3, "jpg": 1}, {"jpg": 2, "png": 1}]


def test_stats_of_the_rows_a_search_matches(lake):
    client, _ = lake
    val = client.stats(providers=["hugging*"], tasks=["ocr"], meta={"lang": "en"})
    assert (val["rows"], val["assets"], val["bytes"], val["duplicate_rows"]) == (3, 3, bytes_of(A, E, F), 0)
    assert val["rows"] == client.count(providers=["hugging*"], tasks=["ocr"], meta={"lang": "en"})
    assert val["images"]["width"] == {"p5": 30, "p50": 32, "p95": 48}
    assert val["meta"]["src"] == {"distinct": 1, "top": {"synthetic": 3}}
    assert val["labels"] == {"rows": 2, "length": {"p5": 3, "p50": 3, "p95": 5}}
    assert val["near_duplicates"]["groups"] == 0  # F's near-duplicate, B, is not among these rows
    assert [p["partition_key"] for p in val["partitions"]] == [VAL]

    train = client.stats(datasets=["train"], threshold=0)
    assert (train["rows"], train["duplicate_rows"], train["near_duplicates"]["threshold"]) == (4, 1, 0)


def test_a_filter_matching_nothing_gives_zeros(lake):
    client, _ = lake
    assert client.stats(datasets=["nothing_*"]) == {
        "rows": 0, "assets": 0, "bytes": 0, "images": {"count": 0, "width": None, "height": None},
        "file_types": {}, "meta": {}, "labels": {"rows": 0, "length": None}, "duplicate_rows": 0,
        "near_duplicates": {"threshold": 12, "fingerprinted": 0, "groups": 0, "images": 0}, "partitions": []}
    result = runner.invoke(cli, ["--base-path", str(client.base_path), "stats", "--dataset", "nothing_*"])
    assert (result.exit_code, result.output) == (0, "(no rows)\n")


def test_bad_arguments_are_refused(lake):
    client, _ = lake
    with pytest.raises(ValidationError, match="threshold"):
        client.stats(threshold=15)
    with pytest.raises(ValidationError, match="meta field 'colour' is not a column of the catalog"):
        client.stats(meta={"colour": "red"})
    result = runner.invoke(cli, ["--base-path", str(client.base_path), "stats", "--format", "csv"])
    assert (result.exit_code, result.stderr) == (1, "Error: --format must be one of table, json\n")


def test_the_command_prints_a_summary_and_a_table_of_partitions(lake):
    client, _ = lake
    result = runner.invoke(cli, ["--base-path", str(client.base_path), "stats", "--task", "ocr"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:10] == [
        f"rows 7; assets 6; bytes {bytes_of(A, B, C, D, E, F):,}; duplicate rows dropped at upload 1",
        "images 6: width p5/p50/p95 30/48/96 px, height 20/32/72 px",
        "file types: jpg 3, png 3",
        "meta lang: ko 4, en 3",
        "meta src: real 4, synthetic 3",
        "labels 6 rows: length p5/p50/p95 2/4/16 characters",
        "near-duplicates within 12 bits: 1 group(s) of 2 image(s), among 6 fingerprinted",
        "licenses: none (huggingface/train, huggingface/val)",
        "",
        "Per partition (medians of image size and label length; near-dups: images with a near-duplicate within 12 bits):"]
    assert lines[10].split() == ["partition", "rows", "assets", "bytes", "size", "p50", "types", "dup", "rows",
                                "label", "p50", "near-dups"]
    assert lines[11].split() == [TRAIN, "4", "4", f"{bytes_of(A, B, C, D):,}", "64x40", "png", "3,", "jpg", "1",
                                 "1", "4", "1"]
    assert lines[12].split()[0] == VAL and len(lines) == 13 and all(len(line) <= 120 for line in lines)
    assert result.stderr == ""  # nothing was cut

    as_json = runner.invoke(cli, ["--base-path", str(client.base_path), "stats", "-t", "ocr", "-m", "lang=ko",
                                  "--threshold", "0", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == client.stats(tasks=["ocr"], meta={"lang": "ko"}, threshold=0)
    assert json.loads(as_json.stdout)["rows"] == 4


def test_a_lake_without_a_database_says_how_to_build_it(tmp_path):
    client = DatalakeClient(user_id="qa", base_path=tmp_path / "lake", create_dirs=True)
    with pytest.raises(NotFoundError, match="no database"):
        client.stats()
    result = runner.invoke(cli, ["--base-path", str(client.base_path), "stats"])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no database at {client.db_path} yet; build it with `datalake db update` "
                             "(or client.build_db())\n")


def test_an_overwrite_restarts_the_duplicate_count_and_a_lake_without_labels_has_none(client):
    def notes(texts: list[str], overwrite: bool = False) -> None:
        client.upload_raw(pd.DataFrame({"text": texts}), provider="test", dataset="notes", overwrite=overwrite)
        process(client)

    notes(["a", "b"])
    client.build_db()
    notes(["a"])  # a duplicate only: the upload writes no part file
    client.build_db()
    counts = ["num_rows", "num_assets", "bytes", "duplicate_rows", "label_rows", "label_length_p50", "file_types"]
    assert client.sql("select * from dataset_stats")[counts].to_dict(orient="records") == [
        {"num_rows": 2, "num_assets": 0, "bytes": 0, "duplicate_rows": 1, "label_rows": 0,
         "label_length_p50": None, "file_types": {}}]
    notes(["c", "d"], overwrite=True)  # drops the rows before it, and what its predecessors left out
    client.build_db()
    assert client.sql("select num_rows, duplicate_rows from dataset_stats").values.tolist() == [[2, 0]]
    found = client.stats()
    assert (found["rows"], found["assets"], found["duplicate_rows"], found["labels"]) == (
        2, 0, 0, {"rows": 0, "length": None})
    assert found["images"] == {"count": 0, "width": None, "height": None} and found["file_types"] == {}


def test_a_database_built_before_statistics_says_how_to_update_it(client):
    client.upload_raw(pd.DataFrame({"text": ["a"]}), provider="test", dataset="notes")
    process(client)
    client.build_db()
    with duckdb.connect(str(client.db_path)) as con:  # as a datalake without the mart left it
        con.execute("drop table dataset_stats")
    with pytest.raises(NotFoundError, match=r"no dataset_stats table yet .* update it with `datalake db update`"):
        client.stats()
    client.build_db()
    assert [p["num_rows"] for p in client.stats()["partitions"]] == [1]  # made whole by an update that read nothing new

"""Near-duplicates across a real lake: variants of a picture uploaded to two datasets are paired
by the indexer, reach the `near_duplicates` mart with the datasets on each side, and come back as
groups from `find_near_duplicates`; distinct pictures are never paired."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import ImageEnhance
from typer.testing import CliRunner

from conftest import process
from datalake import DatalakeClient, ValidationError
from datalake.cli import app
from datalake.curation import DEFAULT_THRESHOLD
from test_crash import finish, start_child
from test_curation_index import INDEXER_CHILD
from test_fingerprint import encoded, picture


def upload(client: DatalakeClient, images: list[bytes], dataset: str) -> None:
    client.upload_raw(pd.DataFrame({"image": images, "n": range(len(images))}), provider="test", dataset=dataset)
    assert process(client)["processed"] == 1


@pytest.fixture
def lake_with_variants(client: DatalakeClient) -> DatalakeClient:
    """train: pictures 0-5; test: a half-size copy of 0, a darker copy of 1, a re-encode of 2, and 3 new pictures."""
    originals = [picture(seed) for seed in range(6)]
    upload(client, [encoded(p, quality=90) for p in originals], "train")
    copies = [encoded(originals[0].resize((240, 180))), encoded(ImageEnhance.Brightness(originals[1]).enhance(0.85)),
              encoded(originals[2], quality=50)]
    upload(client, copies + [encoded(picture(seed)) for seed in range(50, 53)], "test")
    assert client.index_fingerprints()["pairs"] == 3
    client.build_db()
    return client


def test_variants_across_datasets_are_paired_and_grouped(lake_with_variants):
    client = lake_with_variants
    pairs = client.sql("select distance, datasets_a, datasets_b from near_duplicates order by distance")
    assert len(pairs) == 3 and (pairs["distance"] <= DEFAULT_THRESHOLD).all()
    assert all({a, b} == {"test/test", "test/train"} for a, b in zip(pairs["datasets_a"], pairs["datasets_b"]))

    groups = client.find_near_duplicates()
    assert sorted(groups.groupby("group")["datasets"].apply(sorted).tolist()) == [["test/test", "test/train"]] * 3
    assert list(groups.columns) == ["group", "hash", "distance", "path", "num_rows", "datasets"]

    train = client.search(datasets=["train"])
    assert client.find_near_duplicates(train).empty  # no pair has both sides in train
    exact_looking = client.find_near_duplicates(threshold=0)
    assert len(exact_looking) == 2 * (pairs["distance"] == 0).sum() and (exact_looking["distance"] == 0).all()


def test_the_cli_lists_groups_for_the_datasets_asked(lake_with_variants):
    runner, base = CliRunner(), ["--base-path", str(lake_with_variants.base_path)]
    everything = runner.invoke(app, [*base, "curate", "dupes", "--format", "json"])
    assert everything.exit_code == 0
    groups = json.loads(everything.stdout)
    assert len(groups) == 6 and sorted({g["group"] for g in groups}) == [1, 2, 3]
    assert {g["datasets"] for g in groups} == {"test/train", "test/test"}
    assert {g["hash"] for g in groups} == set(lake_with_variants.find_near_duplicates()["hash"])

    table = runner.invoke(app, [*base, "curate", "dupes", "--dataset", "t*", "--threshold", "14"])
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == ["group", "hash", "distance", "path", "num_rows", "datasets"]
    assert len(table.stdout.splitlines()) == 7 and "3 group(s) of near-duplicates, 6 image(s), threshold 14" in table.stderr

    only_train = runner.invoke(app, [*base, "curate", "dupes", "-d", "train", "--format", "csv"])
    assert (only_train.exit_code, only_train.stdout.strip()) == (0, "group,hash,distance,path,num_rows,datasets")
    refused = runner.invoke(app, [*base, "curate", "dupes", "--threshold", "15"])
    assert refused.exit_code == 1 and "threshold 15 is not allowed" in refused.stderr


def test_the_cli_says_when_nothing_is_indexed(client):
    upload(client, [encoded(picture(1))], "d")
    client.build_db()
    result = CliRunner().invoke(app, ["--base-path", str(client.base_path), "curate", "dupes"])
    assert (result.exit_code, result.stdout) == (0, "(no rows)\n")
    assert "run `datalake curate index`, then `datalake db update`" in result.stderr


def test_a_bad_threshold_or_results_without_hashes_are_refused(lake_with_variants):
    for threshold in (-1, 15, 2.5, "10", True):
        with pytest.raises(ValidationError, match="threshold"):
            lake_with_variants.find_near_duplicates(threshold=threshold)
    with pytest.raises(ValidationError, match="hash"):
        lake_with_variants.find_near_duplicates(pd.DataFrame({"n": [1]}))


def test_an_indexer_killed_before_recording_its_pairs_leaves_them_to_the_next_run(client):
    base = picture(7)
    upload(client, [encoded(base, quality=90), encoded(base.resize((240, 180)), quality=90)], "d")
    proc = start_child(INDEXER_CHILD, client.base_path, 1, "before", "ledger/near_pairs",
                       cwd=client.base_path.parent)
    proc.wait(timeout=120)
    assert proc.returncode < 0
    assert list((client.base_path / "ledger/fingerprints").glob("*.parquet"))
    assert not list((client.base_path / "ledger/near_pairs").glob("*.parquet"))

    done = json.loads(finish(start_child(INDEXER_CHILD, client.base_path, cwd=client.base_path.parent)))
    assert (done["to_index"], done["pairs"]) == (0, 1)
    assert [p.name for p in (client.base_path / "ledger/near_pairs").iterdir() if p.name.startswith(".")] == []
    client.build_db()
    assert len(client.find_near_duplicates()) == 2

"""Dataset cards: every export writes a Hugging Face dataset card that huggingface_hub reads back,
with the lake's licenses, languages, tasks, sizes and provenance; a collection mixing licenses
with and without commercial use says so at the top of its card, and freezing it warns."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import datasets
import pandas as pd
import pytest
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from conftest import image_bytes, process
from datalake import DatalakeClient
from datalake.cli import app as cli
from datalake.licenses import known_licenses
from datalake.schema import add_provider

HUB_LICENSES = {"cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
                "cc-by-nc-nd-4.0", "odc-by", "odbl", "pddl", "mit", "apache-2.0", "bsd-3-clause", "bsd-2-clause",
                "gpl-3.0", "cdla-permissive-2.0", "cdla-sharing-1.0", "openrail", "other"}  # the Hub's ids


def frame(seeds: list[int], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"image": [image_bytes(s) for s in seeds], "label": labels})


@pytest.fixture
def lake(client: DatalakeClient) -> DatalakeClient:
    """scans/receipts (ocr, en, the provider's CC-BY-4.0, one row twice), scans/forms (vqa, ko, uploaded
    under CC-BY-NC-4.0), built."""
    add_provider(client.lake, "scans", license="CC-BY-4.0")
    client.upload_task(frame([1, 2, 3], ["a", "b", "c"]), provider="scans", dataset="receipts", task="ocr",
                       variant="v1", meta={"lang": "en", "src": "real"})
    client.upload_task(frame([3, 4], ["c", "d"]), provider="scans", dataset="receipts", task="ocr",
                       variant="v1", meta={"lang": "en", "src": "real"})
    client.upload_task(frame([5, 6], ["q", "r"]), provider="scans", dataset="forms", task="vqa", variant="v1",
                       meta={"lang": "ko", "src": "synthetic"}, license="CC-BY-NC-4.0")
    process(client)
    client.build_db()
    return client


def test_a_dataset_download_carries_a_card_the_hub_library_reads(lake, tmp_path):
    rows = lake.search(datasets=["receipts"])
    lake.download(rows, tmp_path / "out", format="dataset")
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["license"] in HUB_LICENSES
    assert data["language"] == ["en"]
    assert data["task_categories"] == ["image-to-text"]
    assert data["size_categories"] == ["n<1K"] or data["size_categories"] == "n<1K"
    assert data["source_datasets"] == ["scans/receipts"]
    assert data["pretty_name"] == "datalake export"
    info = data["dataset_info"]
    assert info["splits"] == [{"name": "train", "num_bytes": info["dataset_size"], "num_examples": 4}]
    assert info["dataset_size"] == sum(p.stat().st_size for p in (tmp_path / "out").glob("data-*.arrow"))
    loaded = datasets.load_from_disk(str(tmp_path / "out"))
    assert {f["name"] for f in info["features"]} == set(loaded.features)
    uploads = lake.sql("select upload_id, uploaded_by, uploaded_at from uploads where dataset = 'receipts' "
                       "order by uploaded_at")
    for upload_id, by, at in uploads.itertuples(index=False):
        assert any(upload_id in line and f"| {by} |" in line for line in card.text.splitlines())
    assert "| scans | receipts | 4 | CC-BY-4.0 |" in card.text
    assert "A search of the lake: datasets=['receipts']" in card.text
    assert "- Duplicate rows their uploads left out (already in the partition): 1" in card.text
    name, url = known_licenses()["CC-BY-4.0"].name, known_licenses()["CC-BY-4.0"].url
    assert f"- CC-BY-4.0 ([{name}]({url})), commercial use allowed: scans/receipts" in card.text
    assert f'Attribution: "receipts" by scans, licensed under CC-BY-4.0 ({url})' in card.text
    assert "Mixed licenses" not in card.text


def test_a_parquet_download_has_its_card_beside_its_data(lake, tmp_path):
    lake.download(lake.search(datasets=["forms"]), tmp_path / "forms.parquet")
    data = DatasetCard.load(tmp_path / "forms.parquet" / "README.md").data.to_dict()
    assert (data["license"], data["language"], data["task_categories"]) == (
        "cc-by-nc-4.0", ["ko"], ["visual-question-answering"])
    assert data["dataset_info"]["splits"][0]["num_examples"] == 2
    assert data["dataset_info"]["dataset_size"] == (tmp_path / "forms.parquet" / "data.parquet").stat().st_size


def test_a_collection_mixing_commercial_and_non_commercial_licenses_warns_and_its_card_says_so(lake, tmp_path):
    with pytest.warns(UserWarning, match=r"collection mixed v1 mixes licenses \(commercial use allowed by "
                                         r"CC-BY-4.0; not allowed by CC-BY-NC-4.0\)"):
        meta = lake.import_collection(lake.search(), "mixed", description="Receipts and forms")
    lake.export_collection("mixed", output_path=tmp_path / "mixed")
    card = DatasetCard.load(tmp_path / "mixed" / "README.md")
    data = card.data.to_dict()
    assert (data["license"], data["license_name"], data["licenses"]) == ("other", "mixed",
                                                                         ["CC-BY-4.0", "CC-BY-NC-4.0"])
    assert data["language"] == ["en", "ko"] and data["pretty_name"] == "mixed v1"
    assert data["task_categories"] == ["image-to-text", "visual-question-answering"]
    assert card.text.lstrip().startswith("> **Mixed licenses: some rows may be used commercially, others may not**")
    assert "Receipts and forms" in card.text
    assert f"- Collection: `mixed`, version `v1`, fingerprint `{meta['fingerprint']}`" in card.text
    assert "- No license" not in card.text and "| scans | forms | 2 | CC-BY-NC-4.0 |" in card.text

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one license: no warning
        lake.import_collection(lake.search(datasets=["receipts"]), "single")


def test_the_command_line_prints_the_license_warning_when_freezing_a_download(lake, tmp_path):
    base = ["--base-path", str(lake.base_path)]
    result = CliRunner().invoke(cli, [*base, "download", "-o", str(tmp_path / "all"), "--as-collection", "all"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: collection all v1 mixes licenses")
    card = (tmp_path / "all" / "README.md").read_text()
    assert card.startswith("---\n") and "> **Mixed licenses" in card


def test_rows_without_a_license_are_named_in_the_card(client, tmp_path):
    client.upload_raw(frame([7], ["x"]), provider="test", dataset="loose")
    process(client)
    client.build_db()
    client.download(client.search(), tmp_path / "loose")
    card = DatasetCard.load(tmp_path / "loose" / "README.md")
    assert "license" not in card.data.to_dict()
    assert "- No license recorded: test/loose. Ask their provider before using them." in card.text
    assert json.loads((tmp_path / "loose" / "dataset_info.json").read_text())["features"]["image"]["_type"] == "Image"


def test_an_other_license_names_itself_in_the_card(client, tmp_path):
    client.upload_raw(frame([8], ["y"]), provider="test", dataset="terms", license="other",
                      license_name="Agency Data Terms 2.0", license_url="https://example.org/terms")
    process(client)
    client.build_db()
    client.download(client.search(), tmp_path / "terms")
    card = DatasetCard.load(tmp_path / "terms" / "README.md")
    data = card.data.to_dict()
    assert (data["license"], data["license_name"], data["license_link"]) == (
        "other", "agency-data-terms-2.0", "https://example.org/terms")
    assert ("- other ([Agency Data Terms 2.0](https://example.org/terms)), commercial use: see the license: "
            "test/terms") in card.text


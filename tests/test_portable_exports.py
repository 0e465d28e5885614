"""Exports that travel: a downloaded or exported folder holds no path into the lake, keeps the
original file names, can give labels as nested features, and uploads back as it is."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import image_bytes, process
from datalake import DatalakeClient
from datalake.cli import app
from datalake.errors import ValidationError

NAMES = ["cat 0.png", "cat 1.png", "dog.png"]  # the original files, in folder pets/ (the last one also in b/)
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
SHAPES = [(fmt, images) for fmt in ("dataset", "parquet") for images in (True, False)]
SHAPE_IDS = [f"{fmt}-{'images' if images else 'paths'}" for fmt, images in SHAPES]


def upload_files(client: DatalakeClient, folder: Path, names: list[str], dataset: str, labels: list[str]) -> None:
    """A parquet file naming image files relative to it (file_path), uploaded as a raw dataset."""
    pd.DataFrame({"file_path": [f"pets/{n}" for n in names], "label": labels}).to_parquet(folder / "rows.parquet")
    client.upload_raw(folder / "rows.parquet", provider="test", dataset=dataset)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A built lake: pets (three images from files, JSON labels of one shape), odd (an image with
    labels of two shapes and text), docs (a pdf) and frozen collection `pets` v1."""
    root = tmp_path_factory.mktemp("portable")
    (root / "pets").mkdir()
    for seed, name in enumerate(NAMES):
        (root / "pets" / name).write_bytes(image_bytes(seed))
    (root / "pets" / "report.pdf").write_bytes(PDF)
    client = DatalakeClient(user_id="alice", base_path=root / "lake", create_dirs=True)
    upload_files(client, root, NAMES, "pets",
                 [json.dumps({"text": f"pet {i}", "boxes": [[i, i + 1]]}) for i in range(3)])
    upload_files(client, root, NAMES[:2] + ["report.pdf"], "odd", [json.dumps({"text": "a"}), "1", "not json"])
    client.upload_raw(pd.DataFrame({"file_path": [str(root / "pets" / "report.pdf")]}), provider="test",
                      dataset="docs")
    process(client)
    client.build_db()
    client.import_collection(client.search(datasets=["pets"]), "pets", "v1", description="Three pets")
    return client.base_path


@pytest.fixture
def client(built: Path, tmp_path: Path) -> DatalakeClient:
    """A private copy of the built lake, free to move away."""
    return DatalakeClient(user_id="bob", base_path=shutil.copytree(built, tmp_path / "lake"))


def pets(client: DatalakeClient) -> pd.DataFrame:
    return client.search(datasets=["pets"]).sort_values("_source_name", ignore_index=True)


def stored_bytes(client: DatalakeClient, rows: pd.DataFrame) -> dict[str, bytes]:
    return {h: (client.base_path / "assets" / p).read_bytes() for h, p in zip(rows["hash"], rows["path"])}


def move(folder: Path, client: DatalakeClient, tmp_path: Path) -> Path:
    """The export moved to another folder, and the lake renamed away: nothing of it can be reached."""
    (tmp_path / "elsewhere").mkdir()
    moved = Path(shutil.move(str(folder), str(tmp_path / "elsewhere" / "export")))
    client.base_path.rename(tmp_path / "lake-gone")
    return moved


def load(folder: Path, fmt: str) -> datasets.Dataset:
    if fmt == "dataset":
        return datasets.load_from_disk(str(folder))
    return datasets.load_dataset("parquet", data_files=str(folder / "data.parquet"), split="train")


def files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("fmt,images", SHAPES, ids=SHAPE_IDS)
def test_a_moved_export_loads_and_every_image_gives_the_stored_bytes(client, tmp_path, monkeypatch, fmt, images):
    rows = pets(client)
    stored = stored_bytes(client, rows)
    client.download(rows, tmp_path / "out", format=fmt, include_images=images)
    moved = move(tmp_path / "out", client, tmp_path)
    monkeypatch.chdir(moved)  # paths in an export are relative to its folder
    loaded = load(moved, fmt)
    assert isinstance(loaded.features["image"], datasets.Image) and len(loaded) == 3
    raw = loaded.cast_column("image", datasets.Image(decode=False))
    for row, cell in zip(raw, raw["image"]):
        data = cell["bytes"] if images else (moved / cell["path"]).read_bytes()
        assert data == stored[row["hash"]]
        assert (cell["path"] if images else row["path"]) is not None
    assert [image.size for image in loaded["image"]] == [(24, 16)] * 3


@pytest.mark.parametrize("fmt,images", SHAPES, ids=SHAPE_IDS)
def test_no_file_of_an_export_holds_a_path_into_the_lake_nor_its_in_lake_columns(client, tmp_path, fmt, images):
    rows = client.search()
    assert {"_file", "_build"} <= set(rows.columns)
    client.download(rows, tmp_path / "out", format=fmt, include_images=images)
    lake_paths = {str(client.base_path).encode(), os.path.realpath(client.base_path).encode()}
    for name in files_of(tmp_path / "out"):
        data = (tmp_path / "out" / name).read_bytes()
        assert not any(path in data for path in lake_paths), name
    columns = load(tmp_path / "out", fmt).column_names
    assert not {"_file", "_build", "file_row_number"} & set(columns)
    assert {"hash", "row_id", "_upload_id", "_source_name", "path", "image"} <= set(columns)


def test_original_names_are_kept_as_image_path_and_as_the_asset_files(client, tmp_path):
    rows = client.search(datasets=["pets", "docs"])
    assert sorted(rows["_source_name"]) == ["pets/cat 0.png", "pets/cat 1.png", "pets/dog.png", "report.pdf"]
    client.download(rows, tmp_path / "embedded", format="dataset")
    embedded = datasets.load_from_disk(str(tmp_path / "embedded")).cast_column("image", datasets.Image(decode=False))
    assert sorted(c["path"] for c in embedded["image"] if c) == ["pets/cat 0.png", "pets/cat 1.png", "pets/dog.png"]
    assert files_of(tmp_path / "embedded") == ["README.md", "assets/report.pdf", "data-00000-of-00001.arrow",
                                               "dataset_info.json", "state.json"]  # a pdf is no image: copied
    client.download(rows, tmp_path / "paths", format="parquet", include_images=False)
    assert files_of(tmp_path / "paths") == ["README.md", "assets/cat_0.png", "assets/cat_1.png", "assets/dog.png",
                                            "assets/report.pdf", "data.parquet"]
    table = pq.read_table(tmp_path / "paths" / "data.parquet").to_pandas().sort_values("_source_name")
    assert list(table["path"]) == ["assets/cat_0.png", "assets/cat_1.png", "assets/dog.png", "assets/report.pdf"]
    assert [c["path"] if c else None for c in table["image"]] == list(table["path"][:3]) + [None]


def test_exported_asset_files_cannot_be_written_over_the_lake_s_own(client, tmp_path):
    """On one file system an exported asset is the store file itself (a hard link): both are made
    read-only, so a program writing over the export cannot change what the lake holds."""
    rows = client.search(datasets=["pets"])
    client.download(rows, tmp_path / "out", format="parquet", include_images=False)
    for path, name in zip(rows["path"], rows["_source_name"]):
        stored = client.base_path / "assets" / path
        exported = tmp_path / "out" / "assets" / Path(name).name.replace(" ", "_")
        assert os.path.samefile(stored, exported)
        assert os.stat(exported).st_mode & 0o222 == 0
    assert client.validate_assets(rows, deep=True)["integrity_rate"] == 1.0


def test_an_upload_keeps_the_file_name_of_image_paths_and_none_for_bare_bytes(client):
    cells = [{"bytes": image_bytes(7), "path": "/home/ana/photos/IMG 7.png"},
             {"bytes": image_bytes(8), "path": "./scans/p8.png"},
             {"bytes": image_bytes(9), "path": "https://example.org/x/nine.png"},
             {"bytes": image_bytes(10), "path": None}]
    client.upload_raw(pd.DataFrame({"image": cells, "n": range(4)}), provider="test", dataset="structs")
    process(client)
    client.build_db()
    names = client.sql("select coalesce(_source_name, '<none>') as name from catalog where dataset = 'structs' "
                       "order by n")["name"]
    assert names.tolist() == ["IMG 7.png", "scans/p8.png", "nine.png", "<none>"]


def test_rows_without_an_original_name_are_named_by_hash_and_equal_names_stay_apart(client, tmp_path):
    rows = pets(client)
    rows.loc[0, "_source_name"] = None
    rows.loc[1, "_source_name"] = "elsewhere/dog.png"  # another file of the same name as row 2's
    client.download(rows, tmp_path / "out", format="dataset", include_images=False)
    h0, h2 = rows["hash"][0], rows["hash"][2]  # the first row naming a file keeps its name
    assert files_of(tmp_path / "out" / "assets") == sorted([f"{h0}.png", "dog.png", f"dog-{h2[:8]}.png"])


def test_struct_labels_are_nested_features_with_their_values(client, tmp_path):
    rows = pets(client)
    client.download(rows, tmp_path / "ds", format="dataset", labels="struct")
    loaded = datasets.load_from_disk(str(tmp_path / "ds"))
    assert set(loaded.features["label"]) == {"text", "boxes"}
    assert [row["label"] for row in loaded] == [{"text": f"pet {i}", "boxes": [[i, i + 1]]} for i in range(3)]
    client.download(rows, tmp_path / "pq.parquet", labels="struct")
    labels = pq.read_table(tmp_path / "pq.parquet" / "data.parquet")["label"]
    assert labels.type.num_fields == 2 and labels.to_pylist()[2] == {"text": "pet 2", "boxes": [[2, 3]]}
    client.download(rows, tmp_path / "json", format="dataset")  # the default keeps the text
    assert datasets.load_from_disk(str(tmp_path / "json"))["label"] == list(rows["label"])
    in_memory = client.load_collection("pets", labels="struct")
    assert in_memory.features["label"] == loaded.features["label"]


@pytest.mark.parametrize("rows,problem", [
    ([0, 1], "do not share one JSON shape (row 0 holds keys text, row 1 a number)"),
    ([0, 2], "holds text that is not JSON in row 1 ('not json')"),
], ids=["two-shapes", "not-json"])
def test_labels_of_several_shapes_as_struct_are_refused_with_the_fix(client, tmp_path, rows, problem):
    odd = client.search(datasets=["odd"]).sort_values("_source_name", ignore_index=True).iloc[rows]
    with pytest.raises(ValidationError, match="labels='json'") as caught:
        client.download(odd, tmp_path / "out", format="dataset", labels="struct")
    assert problem in str(caught.value) and "column 'label'" in str(caught.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValidationError, match="labels must be one of json, struct"):
        client.download(odd, tmp_path / "out", labels="nested")


def test_the_cli_download_and_collection_export_write_the_same_shape(client, tmp_path):
    base = ["--base-path", str(client.base_path), "--user", "bob"]
    downloaded = CliRunner().invoke(app, [*base, "download", "--dataset", "pets", "--no-images", "--labels", "struct",
                                          "-o", str(tmp_path / "dl.parquet")])
    assert downloaded.exit_code == 0, downloaded.output
    exported = CliRunner().invoke(app, [*base, "collections", "export", "pets", "--no-images", "--labels", "struct",
                                        "-o", str(tmp_path / "col.parquet")])
    assert exported.exit_code == 0, exported.output
    assert files_of(tmp_path / "dl.parquet") == files_of(tmp_path / "col.parquet")
    read = [pq.read_table(tmp_path / name / "data.parquet") for name in ("dl.parquet", "col.parquet")]
    assert read[0].schema.names == read[1].schema.names and read[0]["label"].type == read[1]["label"].type
    about = json.loads(read[1].schema.metadata[b"datalake"])
    assert (about["collection"], about["version"], about["description"]) == ("pets", "v1", "Three pets")
    refused = CliRunner().invoke(app, [*base, "download", "--dataset", "odd", "--labels", "struct",
                                       "-o", str(tmp_path / "odd")])
    assert refused.exit_code == 1 and refused.output.count("Error: column 'label' holds text that is not JSON") == 1
    assert "(--labels json)" in refused.output


def test_a_collection_export_describes_itself_in_dataset_info(client, tmp_path):
    client.export_collection("pets", output_path=tmp_path / "pets")
    info = json.loads((tmp_path / "pets" / "dataset_info.json").read_text())
    metadata = client.collection_manager.info("pets")
    assert info["description"] == "Three pets"
    assert info["datalake"]["fingerprint"] == metadata["fingerprint"]
    assert (info["datalake"]["collection"], info["datalake"]["version"], info["datalake"]["rows"]) == ("pets", "v1", 3)
    assert datasets.load_from_disk(str(tmp_path / "pets")).info.description == "Three pets"


@pytest.mark.parametrize("fmt,images", SHAPES, ids=SHAPE_IDS)
def test_an_export_uploads_back_with_the_same_rows_assets_and_names(client, tmp_path, fmt, images):
    rows = pets(client)
    assets_before = sorted(p.name for p in (client.base_path / "assets").rglob("*.*"))
    client.export_collection("pets", output_path=tmp_path / "out", format=fmt, include_images=images)
    moved = Path(shutil.move(str(tmp_path / "out"), str(tmp_path / "moved")))
    client.upload_raw(moved, provider="test", dataset="back")
    (summary,) = process(client)["uploads"]
    assert (summary["rows_written"], summary["new_assets"], summary["reused_assets"]) == (3, 0, 3)
    client.build_db()
    back = client.search(datasets=["back"]).sort_values("_source_name", ignore_index=True)
    assert list(back["hash"]) == list(rows["hash"]) and list(back["label"]) == list(rows["label"])
    assert list(back["_source_name"]) == ["pets/cat 0.png", "pets/cat 1.png", "pets/dog.png"]
    assert sorted(p.name for p in (client.base_path / "assets").rglob("*.*")) == assets_before


@pytest.mark.parametrize("fmt", ["dataset", "parquet"])
def test_files_that_are_no_images_come_back_from_an_export_too(client, tmp_path, fmt):
    rows = client.search(datasets=["pets", "docs"])
    client.download(rows, tmp_path / "out", format=fmt)
    client.upload_raw(tmp_path / "out", provider="test", dataset="back")
    (summary,) = process(client)["uploads"]
    assert (summary["rows_written"], summary["new_assets"], summary["reused_assets"]) == (4, 0, 4)
    client.build_db()
    back = client.search(datasets=["back"])
    assert sorted(back["hash"]) == sorted(rows["hash"]) and set(back["variant"]) == {"mixed"}
    assert sorted(back["_source_name"]) == sorted(rows["_source_name"])


def test_a_loaded_export_uploads_back_into_a_new_lake_with_its_names(client, tmp_path):
    rows = pets(client)
    client.download(rows, tmp_path / "out", format="dataset")
    other = DatalakeClient(user_id="carol", base_path=tmp_path / "other", create_dirs=True)
    other.upload_raw(datasets.load_from_disk(str(tmp_path / "out")), provider="test", dataset="pets")
    process(other)
    other.build_db()
    landed = pets(other)
    assert list(landed["hash"]) == list(rows["hash"])
    assert list(landed["_source_name"]) == list(rows["_source_name"])
    assert stored_bytes(other, landed) == stored_bytes(client, rows)

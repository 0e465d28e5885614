"""Reading the store and writing outputs safely, and the README's calls as written, on a real built lake."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import datasets
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import image_bytes, process
from datalake import DatalakeClient
from datalake.cli import app
from datalake.errors import ConflictError, DatalakeError, ValidationError

runner = CliRunner()
SECRET = b"OUTSIDE-THE-LAKE-SECRET\n" * 8
README_TEXT = {"column": "label", "text": "영수증", "json_path": "$.elements[*].text"}


def label(text: str) -> str:
    return json.dumps({"elements": [{"text": "total"}, {"text": text}]}, ensure_ascii=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A built lake: 4 Korean receipts (one mentions 영수증 twice over) and 2 English pages, all OCR."""
    root = tmp_path_factory.mktemp("built")
    client = DatalakeClient(user_id="alice", base_path=root / "lake", create_dirs=True, num_proc=2)
    ko = pd.DataFrame({"image": [image_bytes(i) for i in range(4)],
                       "label": [label("영수증 합계"), label("영수증"), label("메뉴"), label("영수증 번호")]})
    en = pd.DataFrame({"image": [image_bytes(10 + i) for i in range(2)], "label": [label("receipt")] * 2})
    client.upload_task(ko, provider="huggingface", dataset="coco_2017", task="ocr", variant="base_ocr",
                       meta={"lang": "ko", "src": "real"})
    client.upload_task(en, provider="huggingface", dataset="coco_2017", task="ocr", variant="base_ocr",
                       meta={"lang": "en", "src": "real"})
    process(client)
    client.build_db()
    return client.base_path


@pytest.fixture
def client(built: Path, tmp_path: Path) -> DatalakeClient:
    """A client of a private copy of the built lake, free to damage."""
    return DatalakeClient(user_id="alice", base_path=shutil.copytree(built, tmp_path / "lake"))


def readme_search(client: DatalakeClient) -> pd.DataFrame:
    return client.search(providers=["huggingface"], datasets=["coco_*"], tasks=["ocr"], variants=["*"],
                         meta={"lang": "ko"}, text_search=README_TEXT, limit=1000)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stored(client: DatalakeClient, relpath: str) -> bytes:
    return (client.lake.assets / relpath).read_bytes()


def cli(client: DatalakeClient, *args: str):
    return runner.invoke(app, ["--base-path", str(client.base_path), *args])


def inside_message(output: Path, client: DatalakeClient) -> str:
    return (f"output {output} is inside the lake {client.base_path}, which holds only its own files; "
            "choose an output outside the lake")


# -- writes stay where they belong ----------------------------------------------------------------

def test_user_files_beside_the_outputs_survive_downloads_and_exports(client, tmp_path):
    dest = tmp_path / "dest"
    (dest / ".out.tmp").mkdir(parents=True)
    (dest / ".out.tmp" / "notes.txt").write_bytes(b"my notes\n")
    (dest / ".out.parquet.tmp").write_bytes(b"my own file\n")
    (dest / ".set.tmp").mkdir()
    (dest / ".set.tmp" / "keep.bin").write_bytes(b"\x00\x01")
    mine = tree(dest)
    rows = client.search(tasks=["ocr"])
    client.import_collection(rows, name="set", version="v1")

    assert client.download(rows, dest / "out", format="dataset")["rows"] == 6
    assert client.download(rows, dest / "out.parquet")["rows"] == 6
    assert client.export_collection("set", "v1", output_path=dest / "set", format="datasets")["rows"] == 6
    result = cli(client, "download", "--task", "ocr", "--output", str(dest / "cli.parquet"))
    assert (result.exit_code, result.stdout) == (0, f"Wrote 6 rows to {dest / 'cli.parquet'} (parquet)\n")
    with pytest.raises(ConflictError, match="already exists"):  # an export never replaces a folder
        client.download(rows, dest / "out.parquet")

    assert sorted(p.name for p in dest.iterdir()) == [".out.parquet.tmp", ".out.tmp", ".set.tmp",
                                                       "cli.parquet", "out", "out.parquet", "set"]
    assert {k: v for k, v in tree(dest).items() if k in mine} == mine
    assert len(datasets.load_from_disk(str(dest / "out"))) == 6
    assert len(pd.read_parquet(dest / "out.parquet" / "data.parquet")) == 6


def test_a_download_that_fails_midway_leaves_nothing_beside_its_output(client, tmp_path, monkeypatch):
    rows = client.search(tasks=["ocr"])
    asset = client.lake.assets / rows["path"][2]
    asset.unlink()
    monkeypatch.chdir(asset.parent)  # a socket's address must be short: bind it by its name in the folder
    with socket.socket(socket.AF_UNIX) as unreadable:
        unreadable.bind(asset.name)
        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "keep.txt").write_text("mine")
        with pytest.raises(DatalakeError, match=f"^cannot read asset {asset}: No such device or address$"):
            client.download(rows, dest / "out", format="dataset", include_images=True)
    assert tree(dest) == {"keep.txt": b"mine"}


def test_an_output_inside_the_lake_is_refused(client, tmp_path):
    rows = client.search(tasks=["ocr"])
    client.import_collection(rows, name="set", version="v1")
    before = tree(client.base_path)
    (tmp_path / "into").symlink_to(client.base_path / "catalog")
    (tmp_path / "file.parquet").symlink_to(client.base_path / "db" / "out.parquet")
    outputs = [client.base_path / "out", client.base_path / "assets" / "x.parquet", tmp_path / "into" / "out",
               tmp_path / "file.parquet", client.base_path]
    for output in outputs:
        with pytest.raises(ValidationError, match=f"^{re.escape(inside_message(output, client))}$"):
            client.download(rows, output)
        with pytest.raises(ValidationError, match=f"^{re.escape(inside_message(output, client))}$"):
            client.export_collection("set", "v1", output_path=output, format="parquet")
    output = tmp_path / "into" / "cli.parquet"
    for args in (["download", "--task", "ocr", "--output", str(output)],
                 ["collections", "export", "set", "--output", str(output)]):
        result = cli(client, *args)
        assert (result.exit_code, result.stdout, result.stderr) == (
            1, "", f"Error: {inside_message(output, client)}\n")
    assert tree(client.base_path) == before


# -- symlinks in the store are never followed -----------------------------------------------------

def plant_symlinks(client: DatalakeClient, outside: Path) -> list[str]:
    """Replace one store file by a symlink to an outside file, and the `ab` folders of a second and a
    third asset by symlinks to outside folders whose same-named files hold SECRET.
    The store paths of the three assets."""
    relpaths = sorted(set(client.search(tasks=["ocr"])["path"]))
    by_ab = {p[:2]: [q for q in relpaths if q[:2] == p[:2]] for p in relpaths}
    alone = [group[0] for group in by_ab.values() if len(group) == 1]  # assets alone in their `ab` folder
    first, second, third = alone[:3]
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET)
    (client.lake.assets / first).unlink()
    (client.lake.assets / first).symlink_to(outside / "secret.png")
    for relpath, shard in ((second, second[:2]), (third, third[:2])):
        copy = outside / shard
        shutil.copytree(client.lake.assets / shard, copy)
        (copy / relpath[len(shard) + 1:]).write_bytes(SECRET)
        shutil.rmtree(client.lake.assets / shard)
        (client.lake.assets / shard).symlink_to(copy, target_is_directory=True)
    return [first, second, third]


def test_symlinks_in_the_store_are_never_read(client, tmp_path):
    rows = client.search(tasks=["ocr"])
    unsafe = plant_symlinks(client, tmp_path / "outside")
    bad = rows["path"].isin(unsafe).tolist()
    assert sum(bad) == 3

    summary = client.download(rows, tmp_path / "ds", format="dataset", include_images=True)
    assert (summary["rows"], summary["missing_assets"]) == (6, sum(bad))
    client.download(rows, tmp_path / "paths", format="dataset", include_images=False)
    client.download(rows, tmp_path / "out.parquet")
    outputs = [*tree(tmp_path / "ds").values(), *tree(tmp_path / "paths").values(),
               *tree(tmp_path / "out.parquet").values()]
    assert not any(SECRET[:23] in data or str(tmp_path / "outside").encode() in data for data in outputs)
    raw = datasets.load_from_disk(str(tmp_path / "ds")).cast_column("image", datasets.Image(decode=False))
    assert [(r["image"], r["path"]) for r, is_bad in zip(raw, bad) if is_bad] == [(None, None)] * 3
    assert [r["image"]["bytes"] for r, is_bad in zip(raw, bad) if not is_bad] == \
        [stored(client, p) for p, is_bad in zip(rows["path"], bad) if not is_bad]
    assert pd.read_parquet(tmp_path / "out.parquet" / "data.parquet")["image"].isna().tolist() == bad

    with pytest.warns(UserWarning, match=f"{sum(bad)} row"):
        frame = client.to_pandas(rows, include_images=True)
    assert frame["image"].isna().tolist() == bad and frame["path"].isna().tolist() == bad
    with pytest.warns(UserWarning):
        ds = client.to_dataset(rows, include_images=True)
    assert all(SECRET[:23] not in (r["image"] or {}).get("bytes", b"") for r in
               ds.cast_column("image", datasets.Image(decode=False)))

    for deep in (False, True):
        report = client.validate_assets(deep=deep)
        assert (sorted(report["symlinks"]), report["symlink_count"], report["missing_count"],
                report["mismatch_count"]) == (sorted(unsafe), 3, 0, 0)
        assert report["integrity_rate"] == (report["checked"] - 3) / report["checked"]
    result = cli(client, "db", "validate", "--deep")
    assert result.exit_code == 1 and json.loads(result.stdout)["symlink_count"] == 3
    assert result.stderr.startswith(f"Error: 0 missing, 0 corrupt and 3 symlinked asset(s); never read, as they "
                                    f"(or their folders in {client.lake.assets}) are symlinks: ")
    assert sorted(result.stderr.split(": ")[-1].split("; ")[0].split(", ")) == sorted(unsafe)
    assert result.stderr.endswith("; replace each with the file itself\n")


def test_a_row_without_a_path_counts_as_missing(client, tmp_path):
    rows = client.search(tasks=["ocr"]).head(2)
    rows.loc[0, "path"] = None
    with pytest.warns(UserWarning, match="1 row"):
        frame = client.to_pandas(rows, include_images=True)
    assert frame["image"].isna().tolist() == [True, False]
    assert client.download(rows, tmp_path / "ds", include_images=True)["missing_assets"] == 1


def test_a_collection_with_a_symlinked_asset_does_not_verify(client, tmp_path):
    client.import_collection(client.search(tasks=["ocr"]), name="set", version="v1")
    unsafe = plant_symlinks(client, tmp_path / "outside")
    report = client.verify_collection("set", "v1")
    assert not report["ok"] and report["assets"]["symlink_count"] == 3
    assert report["problems"] == [f"3 member asset(s) are symlinks in the store, never read (first: "
                                  f"{report['assets']['symlinks'][0]}); replace each with the file itself"]
    assert report["assets"]["symlinks"][0] in unsafe
    result = cli(client, "collections", "verify", "set", "v1")
    assert (result.exit_code, result.stderr) == (1, f"Error: collection set v1 does not verify: "
                                                    f"{report['problems'][0]}\n")


# -- the README's calls ---------------------------------------------------------------------------

def test_readme_search_and_download_with_keywords_and_positionally(client, tmp_path):
    results = readme_search(client)
    texts = sorted(json.loads(x)["elements"][1]["text"] for x in results["label"])
    assert texts == ["영수증", "영수증 번호", "영수증 합계"]
    positional = client.search(["huggingface"], ["coco_*"], ["ocr"], ["*"], {"lang": "ko"}, README_TEXT, 1000)
    pd.testing.assert_frame_equal(positional, results)

    summary = client.download(search_results=results, output_path=str(tmp_path / "out"), format="datasets",
                              include_images=True)
    assert (summary["format"], summary["rows"], summary["missing_assets"]) == ("dataset", 3, 0)
    client.download(results, tmp_path / "again", "dataset", True)
    assert tree(tmp_path / "out") == tree(tmp_path / "again")
    raw = datasets.load_from_disk(str(tmp_path / "out")).cast_column("image", datasets.Image(decode=False))
    assert [r["image"]["bytes"] for r in raw] == [stored(client, p) for p in results["path"]]

    for ds in (client.to_dataset(search_results=results, include_images=True), client.to_dataset(results, True)):
        assert isinstance(ds.features["image"], datasets.Image) and len(ds) == 3
    with_paths = client.to_pandas(search_results=results)
    assert list(with_paths["path"]) == [str(client.lake.assets / p) for p in results["path"]]
    assert list(client.to_pandas(results, True)["image"]) == [stored(client, p) for p in results["path"]]

    result = cli(client, "download", "--meta", "lang=ko", "--output", str(tmp_path / "cli"), "--format", "datasets")
    assert (result.exit_code, result.stdout) == (0, f"Wrote 4 rows to {tmp_path / 'cli'} (dataset)\n")


def test_readme_collections_with_keywords_and_positionally(client, tmp_path):
    results = readme_search(client)
    meta = client.import_collection(data_source=results, name="korean_ocr_train", version="v1.0",
                                    description="Korean OCR training dataset")
    assert (meta["version"], meta["num_samples"], meta["description"]) == ("v1.0", 3, "Korean OCR training dataset")
    assert client.import_collection(results, "korean_ocr_train", "v2.0", "again")["num_samples"] == 3
    assert len(client.load_collection("korean_ocr_train", "v1.0")) == 3

    client.export_collection(name="korean_ocr_train", version="v1.0", output_path=tmp_path / "a", format="datasets")
    client.export_collection("korean_ocr_train", "v1.0", output_path=tmp_path / "b", format="datasets",
                             include_images=True)
    client.export_collection("korean_ocr_train", "v1.0", tmp_path / "c", "dataset", True)
    assert tree(tmp_path / "a") == tree(tmp_path / "b") == tree(tmp_path / "c")
    client.export_collection("korean_ocr_train", "v1.0", tmp_path / "d.parquet", "parquet", False)
    assert len(pd.read_parquet(tmp_path / "d.parquet" / "data.parquet")) == 3
    result = cli(client, "collections", "export", "korean_ocr_train", "v1.0", "--output", str(tmp_path / "e"),
                 "--format", "dataset")
    assert result.exit_code == 0 and tree(tmp_path / "e") == tree(tmp_path / "a")


# -- wrong arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, error, message", [
    ({"limit": "1; drop"}, TypeError,
     "limit must be a whole number of rows (int) or None for every row; got str '1; drop'"),
    ({"limit": -1}, ValueError, "limit must be 0 or more, or None for every row; got -1"),
    ({"limit": True}, TypeError, "limit must be a whole number of rows (int) or None for every row; got bool True"),
    ({"meta": [("lang", "ko")]}, TypeError, "meta must be a dict, e.g. {\"lang\": \"ko\"}; got list [('lang', 'ko')]"),
    ({"providers": 5}, TypeError,
     "providers must be a list of names or globs (or one as a str), e.g. ['coco_*']; got int 5"),
    ({"tasks": ["ocr", 3]}, TypeError,
     "tasks must be a list of names or globs (or one as a str), e.g. ['coco_*']; got list ['ocr', 3]"),
    ({"text_search": "영수증"}, TypeError,
     "text_search must be a dict, e.g. {\"column\": \"label\", \"text\": \"...\"}; got str '영수증'"),
])
def test_wrong_search_arguments_are_named(client, arguments, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        client.search(**arguments)


def test_an_unknown_format_lists_the_formats(client, tmp_path):
    rows = client.search(tasks=["ocr"])
    message = "format must be one of auto, parquet, dataset (or datasets, the same as dataset); got 'xls'"
    with pytest.raises(ValidationError, match=f"^{re.escape(message)}$"):
        client.download(rows, tmp_path / "out", format="xls")
    result = cli(client, "download", "--task", "ocr", "--output", str(tmp_path / "out"), "--format", "xls")
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]
    result = cli(client, "search", "--limit", "-1")
    assert result.exit_code == 2 and "--limit" in result.stderr

"""Export (parquet, save_to_disk datasets, pandas) and asset validation on a real, built lake."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import datasets
import pandas as pd
import pytest
import xxhash
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conftest import image_bytes, process
from datalake import DatalakeClient
from datalake.catalog.db import DuckDBClient, build_db
from datalake.catalog.validation import validate_assets
from datalake.errors import ConflictError, ValidationError
from datalake.export import download, to_dataset, to_pandas
from datalake.lake import Lake

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def tagged_png(seed: int) -> bytes:
    """A real PNG with a text chunk: decoding and saving it again would not give these bytes back."""
    info = PngInfo()
    info.add_text("source", f"camera {seed}")
    buffer = io.BytesIO()
    Image.open(io.BytesIO(image_bytes(seed))).save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def images_df(seeds, **extra) -> pd.DataFrame:
    return pd.DataFrame({"image": [tagged_png(s) for s in seeds], "n": list(seeds), **extra})


def make_lake(root: Path, image_seeds: list[int]) -> Path:
    """A processed and built lake: images in test/a, the last one again in test/b, one pdf in test/docs."""
    client = DatalakeClient(user_id="alice", base_path=root / "lake", create_dirs=True, num_proc=2)
    client.upload_raw(images_df(image_seeds), provider="test", dataset="a")
    client.upload_raw(images_df(image_seeds[-1:]), provider="test", dataset="b")
    (root / "doc.pdf").write_bytes(PDF)
    client.upload_raw(pd.DataFrame({"file_path": [str(root / "doc.pdf")], "n": [99]}), provider="test", dataset="docs")
    process(client)
    build_db(client.lake)
    return client.base_path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_lake(tmp_path_factory.mktemp("built"), [1, 2, 3])


@pytest.fixture
def lake(built: Path, tmp_path: Path) -> Lake:
    """A private copy of the built lake, free to damage."""
    return Lake(shutil.copytree(built, tmp_path / "lake"))


def catalog(lake: Lake) -> pd.DataFrame:
    with DuckDBClient(lake.db_path) as db:
        return db.execute_query("select * from catalog order by dataset, n")


def stored(lake: Lake, relpath: str) -> bytes:
    return (lake.assets / relpath).read_bytes()


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_catalog_fixture_has_images_a_shared_image_and_a_pdf(lake):
    rows = catalog(lake)
    assert list(rows["n"]) == [1, 2, 3, 3, 99]
    assert rows["path"].str.endswith(".pdf").sum() == 1 and rows["hash"].nunique() == 4


def test_parquet_download_is_a_folder_with_its_assets_and_keeps_the_rest(lake, tmp_path):
    rows = catalog(lake)
    summary = download(lake, rows, tmp_path / "out.parquet", include_images=False)
    total = sum(len(stored(lake, p)) for p in rows["path"])
    assert summary == {"output": str(tmp_path / "out.parquet"), "format": "parquet", "rows": 5,
                       "missing_assets": 0, "bytes": total}
    out = pd.read_parquet(tmp_path / "out.parquet" / "data.parquet")
    assert list(out.columns) == [c for c in rows.columns if c not in ("_file", "_build")] + ["image"]
    assert list(out["path"]) == [f"assets/{h}.png" for h in rows["hash"][:4]] + ["assets/doc.pdf"]
    assert all(xxhash.xxh3_128_hexdigest((tmp_path / "out.parquet" / p).read_bytes()) == h
               for p, h in zip(out["path"], out["hash"]))
    kept = [c for c in out.columns if c not in ("path", "image")]
    pd.testing.assert_frame_equal(out[kept], rows[kept], check_dtype=False)
    assert visible_files(tmp_path) == ["lake", "out.parquet"]
    assert visible_files(tmp_path / "out.parquet") == ["README.md", "assets", "data.parquet"]  # with its card


def test_dataset_download_embeds_the_exact_stored_bytes(lake, tmp_path):
    rows = catalog(lake)
    summary = download(lake, rows, tmp_path / "ds")
    assert (summary["format"], summary["rows"], summary["missing_assets"]) == ("dataset", 5, 0)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.column_names == [*(c for c in rows.columns if c not in ("_file", "_build")), "image"]
    assert ds[0]["image"].size == (24, 16)  # decodes as an image
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for row, relpath in zip(raw, rows["path"]):
        if relpath.endswith(".pdf"):
            assert row["image"] is None and row["path"] == "assets/doc.pdf"
        else:  # bytes uploaded without a file name: named by their hash
            assert row["image"] == {"bytes": stored(lake, relpath), "path": f"{row['hash']}.png"}
            assert row["path"] is None
    assert visible_files(tmp_path) == ["ds", "lake"]


def test_dataset_download_without_images_points_at_copies_of_the_files(lake, tmp_path, monkeypatch):
    rows = catalog(lake)
    download(lake, rows, tmp_path / "ds", include_images=False)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    raw = ds.cast_column("image", datasets.Image(decode=False))
    assert raw[0]["image"] == {"bytes": None, "path": f"assets/{rows['hash'][0]}.png"}
    assert (tmp_path / "ds" / raw[0]["image"]["path"]).read_bytes() == stored(lake, rows["path"][0])
    assert raw[4]["image"] is None and raw[4]["path"] == "assets/doc.pdf"  # the pdf
    monkeypatch.chdir(tmp_path / "ds")  # the paths are relative to the export's folder
    assert ds[1]["image"].size == (24, 16)  # decoded from the copied file


def test_format_is_picked_by_name_or_given(lake, tmp_path):
    rows = catalog(lake)
    assert download(lake, rows, tmp_path / "x.PARQUET")["format"] == "parquet"
    assert download(lake, rows, tmp_path / "y", format="parquet")["format"] == "parquet"
    assert len(pd.read_parquet(tmp_path / "y" / "data.parquet")) == 5
    assert download(lake, rows, tmp_path / "z.parquet", format="dataset")["format"] == "dataset"
    assert len(datasets.load_from_disk(str(tmp_path / "z.parquet"))) == 5
    with pytest.raises(ValidationError, match="format must be one of auto, parquet, dataset"):
        download(lake, rows, tmp_path / "w", format="csv")
    for empty in ("none", "none.parquet"):  # no rows: an error, and nothing written
        with pytest.raises(ValidationError, match="there are no rows to write"):
            download(lake, rows.head(0), tmp_path / empty)
        assert not (tmp_path / empty).exists()
    (tmp_path / "empty").mkdir()  # an empty folder may receive a dataset
    assert download(lake, rows.head(2), tmp_path / "empty")["rows"] == 2
    assert len(datasets.load_from_disk(str(tmp_path / "empty"))) == 2


def test_an_existing_dataset_folder_is_not_overwritten(lake, tmp_path):
    rows = catalog(lake)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(ConflictError, match="already exists"):
        download(lake, rows, tmp_path / "ds")
    assert visible_files(tmp_path / "ds") == ["keep.txt"]
    assert visible_files(tmp_path) == ["ds", "lake"]


def test_a_missing_asset_keeps_its_row_and_is_counted(lake, tmp_path):
    rows = catalog(lake)
    (lake.assets / rows["path"][1]).unlink()
    summary = download(lake, rows, tmp_path / "out.parquet")
    assert (summary["rows"], summary["missing_assets"]) == (5, 1)
    out = pd.read_parquet(tmp_path / "out.parquet" / "data.parquet")
    assert out["image"].isna().tolist() == [False, True, False, False, True]  # the pdf is no image
    assert out["path"].isna().tolist() == [True, True, True, True, False]
    assert list(out["hash"]) == list(rows["hash"]) and list(out["n"]) == [1, 2, 3, 3, 99]

    assert download(lake, rows, tmp_path / "ds")["missing_assets"] == 1
    raw = datasets.load_from_disk(str(tmp_path / "ds")).cast_column("image", datasets.Image(decode=False))
    assert raw[1]["image"] is None and raw[1]["path"] is None and raw[1]["n"] == 2
    assert raw[0]["image"]["bytes"] == stored(lake, rows["path"][0])

    with pytest.warns(UserWarning, match="1 row"):
        frame = to_pandas(lake, rows, include_images=True)
    assert frame["image"][1] is None and pd.isna(frame["path"][1]) and frame["hash"][1] == rows["hash"][1]


def test_to_dataset_and_to_pandas(lake):
    rows = catalog(lake)
    ds = to_dataset(lake, rows)
    assert isinstance(ds.features["image"], datasets.Image) and len(ds) == 5
    raw = ds.cast_column("image", datasets.Image(decode=False))
    assert [r["image"]["bytes"] if r["image"] else None for r in raw] == \
        [stored(lake, p) for p in rows["path"][:4]] + [None]
    paths_only = to_dataset(lake, rows, include_images=False).cast_column("image", datasets.Image(decode=False))
    assert paths_only[2]["image"] == {"bytes": None, "path": str(lake.assets / rows["path"][2])}

    frame = to_pandas(lake, rows, include_images=False)
    assert "image" not in frame.columns and list(frame.index) == list(rows.index)
    assert list(frame["path"]) == [str(lake.assets / p) for p in rows["path"]]
    assert rows["path"][0] == frame["path"][0].removeprefix(str(lake.assets) + "/")  # rows are not changed
    with_images = to_pandas(lake, rows)  # images are included unless asked otherwise, as in every export
    assert list(with_images["image"]) == [stored(lake, p) for p in rows["path"][:4]] + [None]


def test_validate_counts_distinct_assets_and_reports_missing_ones(lake):
    rows = catalog(lake)
    assert validate_assets(lake) == {"total": 4, "checked": 4, "missing": [], "missing_count": 0,
                                     "integrity_rate": 1.0, "mismatched": [], "mismatch_count": 0,
                                     "symlinks": [], "symlink_count": 0}
    assert validate_assets(lake, rows)["total"] == 4  # the shared image is one asset
    (lake.assets / rows["path"][0]).unlink()
    for report in (validate_assets(lake), validate_assets(lake, rows)):
        assert (report["checked"], report["missing"], report["missing_count"]) == (4, [rows["path"][0]], 1)
        assert report["integrity_rate"] == 0.75
    assert validate_assets(lake, rows[rows["dataset"] == "b"])["total"] == 1
    assert validate_assets(lake, rows[rows["dataset"] == "a"].head(1))["integrity_rate"] == 0.0


def test_deep_validation_detects_a_tampered_asset(lake):
    rows = catalog(lake)
    (lake.assets / rows["path"][2]).write_bytes(image_bytes(1000))
    assert validate_assets(lake)["integrity_rate"] == 1.0  # present: only rehashing tells
    report = validate_assets(lake, deep=True)
    assert (report["mismatched"], report["mismatch_count"], report["missing_count"]) == ([rows["path"][2]], 1, 0)
    assert report["integrity_rate"] == 0.75


def test_sampling_checks_about_the_given_share(tmp_path):
    lake = Lake(make_lake(tmp_path, list(range(1, 40))))  # 39 images and a pdf: 40 assets
    report = validate_assets(lake, sample_percent=25, seed=7)
    assert (report["total"], report["checked"]) == (40, 10)
    assert validate_assets(lake, sample_percent=1)["checked"] == 1
    rows = catalog(lake)
    for relpath in rows["path"][:20]:
        (lake.assets / relpath).unlink()
    first, again = (validate_assets(lake, sample_percent=50, seed=3) for _ in range(2))
    assert first == again and first["checked"] == 20
    assert first["missing_count"] == len(first["missing"]) and 0 < first["missing_count"] < 20
    assert set(first["missing"]) <= set(rows["path"][:20])
    with pytest.raises(ValidationError, match="sample_percent"):
        validate_assets(lake, sample_percent=0)


def test_paths_that_leave_the_store_or_disagree_with_the_hash_are_missing(lake, tmp_path):
    rows = catalog(lake)
    secret = b"root:x:0:0:root:/root:/bin/sh\n"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(secret)  # where ../../etc/passwd leads from <lake>/assets
    digest = xxhash.xxh3_128_hexdigest(secret)
    bad = rows.head(3).copy()
    bad["hash"] = [digest, digest, rows["hash"][0]]
    bad["path"] = ["../../etc/passwd", str(tmp_path / "etc" / "passwd"), rows["path"][1]]
    assert (lake.assets / bad["path"][0]).read_bytes() == secret

    report = validate_assets(lake, bad, deep=True)
    assert (report["total"], report["missing_count"], report["integrity_rate"]) == (3, 3, 0.0)
    assert set(report["missing"]) == set(bad["path"])
    summary = download(lake, bad, tmp_path / "ds")
    assert (summary["missing_assets"], summary["bytes"]) == (3, 0)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds["image"] == [None] * 3 and ds["path"] == [None] * 3
    with pytest.warns(UserWarning):
        assert to_pandas(lake, bad, include_images=True)["image"].isna().all()

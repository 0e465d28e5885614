"""Shared fixtures: a fresh lake under tmp_path and small real images."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from datalake import DatalakeClient

pytest_plugins = ["s3_util"]  # the S3 server and bucket fixtures


def image_bytes(seed: int, fmt: str = "PNG", size: tuple[int, int] = (24, 16)) -> bytes:
    """A small real image whose bytes differ for every seed below 24*16*256 (PNG)."""
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 11) % 256, (seed * 5) % 256))
    image.putpixel((seed % size[0], (seed // size[0]) % size[1]), (seed % 256, (seed // 384) % 256, 255))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def catalog_rows(lake: Path) -> list[dict]:
    """Every stored row with its partition, read straight from the part files."""
    rows = []
    for part in sorted((lake / "catalog").rglob("part-*.parquet")):
        keys = dict(p.split("=", 1) for p in part.parent.relative_to(lake / "catalog").parts)
        rows += [{**keys, **r} for r in pq.read_table(part).to_pylist()]
    return rows


def lake_files(lake: Path, folder: str) -> list[str]:
    return sorted(str(p.relative_to(lake / folder)) for p in (lake / folder).rglob("*") if p.is_file())


@pytest.fixture
def client(tmp_path: Path) -> DatalakeClient:
    return DatalakeClient(user_id="alice", base_path=tmp_path / "lake", create_dirs=True, num_proc=2)


def process(client: DatalakeClient) -> dict:
    return client.wait_for_job_completion(client.trigger_processing())


def lake_listing(lake: Path) -> list[str]:
    """Every file and folder of a lake but its lock files: what a refused or killed upload must not change."""
    return sorted(str(p.relative_to(lake)) + ("/" if p.is_dir() else "") for p in lake.rglob("*")
                  if p.relative_to(lake).parts[0] != "locks")


RECEIPTS = {"column": "label", "text": "영수증", "json_path": "$.elements[*].text"}  # the demo's collection v1
TOTALS = {"column": "label", "text": "합계", "json_path": "$.elements[*].text"}  # its version v2


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory) -> Path:
    """The lake `make demo` makes (scripts/demo.py: 24 document images, OCR labels with boxes, a
    download, collection demo_receipts v1 of the rows mentioning 영수증), plus demo_receipts v2 of
    the rows mentioning 합계, built. Shared by the page tests, which only read it."""
    lake = tmp_path_factory.mktemp("demo") / "lake"
    demo = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"
    made = subprocess.run([sys.executable, str(demo), "--lake", str(lake)], capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    client = DatalakeClient(user_id="demo", base_path=lake)
    client.import_collection(client.search(tasks=["ocr"], text_search=TOTALS), name="demo_receipts",
                             description="OCR rows mentioning 합계")
    client.build_db()
    return lake

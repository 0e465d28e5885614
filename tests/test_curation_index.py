"""Fingerprint indexing on real lakes: only assets without a fingerprint are done, images Pillow
cannot read are remembered as such, the database gets them at the next build, and a run killed at
any step leaves whole ledger parts only and is completed by the next run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import process
from datalake import DatalakeClient
from datalake.cli import app
from server_util import Server
from test_crash import KILL_AT_RENAME, finish, start_child

INDEXER_CHILD = KILL_AT_RENAME + r"""
import json
from datalake import DatalakeClient

client = DatalakeClient(user_id="bob", base_path=sys.argv[1], num_proc=2)
if len(sys.argv) > 2:
    kill_at_rename(os.path.join(sys.argv[1], sys.argv[4]), int(sys.argv[2]), sys.argv[3])
print("ready", flush=True)
print(json.dumps(client.index_fingerprints()), flush=True)
"""


def photo(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small JPEG of smooth noise, different for every seed."""
    rng = np.random.default_rng(seed)
    pixels = np.kron(rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def upload_images(client: DatalakeClient, seeds: range, dataset: str = "photos") -> None:
    client.upload_raw(pd.DataFrame({"image": [photo(s) for s in seeds]}), provider="test", dataset=dataset)
    assert process(client)["processed"] == 1


def ledger_rows(lake: Path) -> list[dict]:
    """Every row of the fingerprint ledger, and no hidden file left beside the parts."""
    folder = lake / "ledger" / "fingerprints"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    return [row for part in sorted(folder.glob("*.parquet")) for row in pq.read_table(part).to_pylist()]


def image_hashes(lake: Path) -> set[str]:
    facts = pq.read_table(lake / "ledger" / "assets").to_pylist() if any((lake / "ledger/assets").iterdir()) else []
    return {f["hash"] for f in facts if f["kind"] == "image"}


def test_only_assets_without_a_fingerprint_are_indexed_and_the_database_gets_them(client, tmp_path):
    upload_images(client, range(5))
    damaged = photo(99)[:300]  # a JPEG cut short: stored as an image, unreadable by Pillow
    (tmp_path / "notes.txt").write_text("not an image")
    client.upload_raw(pd.DataFrame({"image": [damaged, photo(1)]}), provider="test", dataset="more")
    client.upload_raw(pd.DataFrame({"file_path": [str(tmp_path / "notes.txt")]}), provider="test", dataset="docs")
    assert process(client)["processed"] == 2

    first = client.index_fingerprints()
    assert first == {"to_index": 6, "fingerprinted": 5, "not_images": 1, "missing": 0, "parts": 1, "pairs": 0}
    rows = ledger_rows(client.base_path)
    assert {r["hash"] for r in rows} == image_hashes(client.base_path) and len(rows) == 6
    assert [r["fingerprint"] is None for r in rows].count(True) == 1

    assert client.index_fingerprints()["to_index"] == 0  # nothing new: the damaged one is not tried again
    upload_images(client, range(5, 8), dataset="later")
    assert client.index_fingerprints() == {"to_index": 3, "fingerprinted": 3, "not_images": 0, "missing": 0,
                                           "parts": 1, "pairs": 0}
    assert len(ledger_rows(client.base_path)) == 9

    client.build_db()
    stored = client.sql("select hash, fingerprint, width, height, datasets from asset_fingerprints")
    readable = {r["hash"]: r["fingerprint"] for r in ledger_rows(client.base_path) if r["fingerprint"] is not None}
    assert dict(zip(stored["hash"], stored["fingerprint"])) == readable
    assert set(stored["width"]) == {64} and set(stored["height"]) == {48}
    shared = stored[stored["datasets"].str.contains(",")]["datasets"].tolist()
    assert shared == ["test/more,test/photos"]  # photo(1) came with both uploads


def test_the_cli_indexes_and_says_what_it_could_not(client, tmp_path):
    runner = CliRunner()
    base = ["--base-path", str(client.base_path)]
    result = runner.invoke(app, [*base, "curate", "index"])
    assert (result.exit_code, result.stdout) == (0, "Every image asset has a fingerprint already.\n")

    client.upload_raw(pd.DataFrame({"image": [photo(1), photo(2), photo(3)[:300]]}), provider="test", dataset="d")
    process(client)
    result = runner.invoke(app, [*base, "curate", "index"])
    assert result.exit_code == 0
    assert result.stdout == "Fingerprinted 2 image(s); run `datalake db update` to bring them into the database.\n"
    assert "1 image asset(s) could not be read as images" in result.stderr

    result = runner.invoke(app, [*base, "curate", "index", "--json"])
    assert json.loads(result.stdout)["to_index"] == 0


def test_an_asset_missing_from_the_store_is_left_for_a_later_run(client):
    upload_images(client, range(3))
    [gone] = [p for p in (client.base_path / "assets").rglob("*.jpg")][:1]
    gone.unlink()
    assert client.index_fingerprints() == {"to_index": 3, "fingerprinted": 2, "not_images": 0, "missing": 1,
                                           "parts": 1, "pairs": 0}
    assert len(ledger_rows(client.base_path)) == 2
    assert client.index_fingerprints()["missing"] == 1  # still missing, still not recorded


def test_a_server_indexes_as_a_job(client):
    upload_images(client, range(4))
    server = Server(client.base_path, env={"DATALAKE_TOKEN": "index-token"})
    try:
        remote = DatalakeClient(user_id="bob", base_path=client.base_path, server_url=server.url, token="index-token")
        assert remote.index_fingerprints()["fingerprinted"] == 4
        assert [j["kind"] for j in server.get("/jobs", "index-token")["jobs"]] == ["process", "index"]
        assert server.call("POST", "/index")[0] == 401
    finally:
        server.stop()
    assert len(ledger_rows(client.base_path)) == 4


@pytest.mark.parametrize("moment", ["before", "after"])
def test_an_indexer_killed_at_its_part_writes_leaves_whole_parts_and_a_rerun_completes(client, moment):
    upload_images(client, range(600))  # enough for worker processes
    images = image_hashes(client.base_path)

    proc = start_child(INDEXER_CHILD, client.base_path, 1, moment, "ledger/fingerprints", cwd=client.base_path.parent)
    proc.wait(timeout=120)
    assert proc.returncode < 0  # killed at its part's rename
    left = ledger_rows(client.base_path) if moment == "after" else []
    assert len(left) == (600 if moment == "after" else 0)

    done = json.loads(finish(start_child(INDEXER_CHILD, client.base_path, cwd=client.base_path.parent)))
    assert done["to_index"] == 600 - len(left)
    rows = ledger_rows(client.base_path)
    assert sorted(r["hash"] for r in rows) == sorted(images)  # each image once

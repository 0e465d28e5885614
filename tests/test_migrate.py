"""Bringing a lake made by datalake 0.1.0 (assets at `assets/ab/cd/<hash>.<ext>`) over to the
current layout (`assets/ab/<hash>.<ext>`): `datalake migrate`, and the same migration killed at
every step and run again.

The input is a real lake written by datalake 0.1.0 (`data/lake-layout1.tar.gz`, made by
`data/make_lake_layout1.py`): three datasets, a collection version, an upload waiting in staging
and one that failed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import xxhash
from typer.testing import CliRunner

from conftest import catalog_rows, lake_listing, process
from datalake import DatalakeClient, LayoutError, migrate_lake
from datalake.cli import app

LAYOUT1 = Path(__file__).parent / "data" / "lake-layout1.tar.gz"

# A migration in a child process that receives SIGKILL just before its n-th change to the lake's
# files (a link, rename, removal): the kill lands at that exact step however fast the machine is.
MIGRATE_CHILD = r"""
import os, signal, sys
from datalake import migrate_lake

changes = [0]

def hook(event, args):
    if event in ("os.link", "os.rename", "os.remove", "os.rmdir"):
        changes[0] += 1
        if changes[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
migrate_lake(sys.argv[1])
"""


def old_lake(folder: Path) -> Path:
    with tarfile.open(LAYOUT1) as tar:
        tar.extractall(folder, filter="data")
    return folder / "lake"


def store_files(lake: Path) -> dict[str, str]:
    """Every file of the store, relative to assets/, with the hash of its bytes."""
    return {str(p.relative_to(lake / "assets")): xxhash.xxh3_128_hexdigest(p.read_bytes())
            for p in sorted((lake / "assets").rglob("*")) if p.is_file()}


def parquet_rows(lake: Path, pattern: str) -> dict[str, list[dict]]:
    return {str(p.relative_to(lake)): pq.ParquetFile(p).read().to_pylist() for p in sorted(lake.glob(pattern))}


def lake_state(lake: Path) -> dict:
    """What a migration changes and a user can see: files, store, rows, ledger, staged uploads."""
    return {"listing": lake_listing(lake), "store": store_files(lake), "catalog": catalog_rows(lake),
            "ledger": parquet_rows(lake, "ledger/assets/*.parquet"),
            "staged": parquet_rows(lake, "staging/*/*/*.parquet"),
            "collections": parquet_rows(lake, "collections/*/*/members.parquet")}


def test_an_old_lake_is_refused_until_migrated_then_everything_works(tmp_path):
    lake = old_lake(tmp_path)
    members_before = (lake / "collections/shapes_train/v1/members.parquet").read_bytes()
    with pytest.raises(LayoutError, match=r"keeps its assets in the layout of datalake 0\.1; bring it over once "
                                          r"with `datalake migrate "):
        DatalakeClient(user_id="alice", base_path=lake)
    result = CliRunner().invoke(app, ["migrate", str(lake)])
    assert result.exit_code == 0, result.output
    assert result.output == (f"Lake at {lake} migrated: its 6 assets now live at assets/ab/<hash>.<ext>; "
                             "10 files of rows rewritten\n")

    store = store_files(lake)
    assert all(name.count("/") == 1 and name.split("/")[1].startswith(name[:2]) for name in store)
    assert all(name.split("/")[1].split(".")[0] == digest for name, digest in store.items())
    assert sorted(p.name for p in (lake / "assets").iterdir()) == [f"{i:02x}" for i in range(256)]
    rows = catalog_rows(lake)
    assert {r["path"] for r in rows} <= set(store) and len(rows) == 7
    assert (lake / "collections/shapes_train/v1/members.parquet").read_bytes() == members_before

    client = DatalakeClient(user_id="alice", base_path=lake)
    result = process(client)  # the upload that waited in staging lands; the failed one stays failed
    assert result["processed"] == 1
    assert {r["path"] for r in catalog_rows(lake)} <= set(store_files(lake))
    client.build_db()
    found = client.search(datasets=["shapes"])
    assert len(found) == 5 and all((lake / "assets" / p).is_file() for p in found["path"])
    assert client.verify_collection("shapes_train")["ok"]
    members = client.collection_manager.members("shapes_train")
    assert set(members["path"]) <= set(store_files(lake))
    out = client.export_collection("shapes_train", output_path=tmp_path / "export", format="parquet")
    assert out["rows"] == 4

    again = CliRunner().invoke(app, ["migrate", str(lake)])
    assert again.exit_code == 0 and again.output == f"Lake at {lake} is already at the current layout\n"


def test_a_migration_killed_at_any_step_finishes_when_run_again(tmp_path):
    reference = old_lake(tmp_path / "reference")
    migrate_lake(reference)
    expected = lake_state(reference)
    for nth in range(1, 100, 2):
        lake = old_lake(tmp_path / f"killed-{nth}")
        child = subprocess.run([sys.executable, "-c", MIGRATE_CHILD, str(lake), str(nth)])
        if child.returncode == 0:  # it makes fewer changes than nth: it ran to its end
            break
        assert child.returncode == -signal.SIGKILL
        with pytest.raises(LayoutError):  # a half-migrated lake is still refused
            DatalakeClient(user_id="alice", base_path=lake)
        assert migrate_lake(lake)["migrated"]
        assert lake_state(lake) == expected, f"killed before change {nth}"
    assert nth > 25, "the migration was never killed in its later steps"

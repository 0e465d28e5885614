"""Processing on a real small disk (a tmpfs) that fills up or turns read-only: clear errors, nothing
lost, and the next run after the fix lands everything."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, process
from datalake import DatalakeClient, DatalakeProcessor
from datalake.cli import app
from datalake.errors import StorageError
from server_util import Server

LEFT_FREE = 24 * 1024  # room for job records, not for a part of 3,000 rows


@pytest.fixture
def disk(tmp_path: Path):
    """A mounted 8 MB tmpfs, unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                              capture_output=True, text=True)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def rows(first: int, end: int) -> pd.DataFrame:
    """Rows whose text hardly compresses, so their part takes room on the disk."""
    return pd.DataFrame({"n": range(first, end),
                         "text": [hashlib.sha256(str(i).encode()).hexdigest() for i in range(first, end)]})


def expected(*uploads: tuple[str, int, int]) -> list[tuple]:
    return sorted((dataset, n, hashlib.sha256(str(n).encode()).hexdigest())
                  for dataset, first, end in uploads for n in range(first, end))


def landed(lake: Path) -> list[tuple]:
    return sorted((r["dataset"], r["n"], r["text"]) for r in catalog_rows(lake))


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the free space of `disk` but `leave` bytes."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * (stat.f_bavail * stat.f_frsize - leave))
    return filler


def snapshot(lake: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file of the lake with its bytes, but those under the `skip` folders."""
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*"))
            if p.is_file() and p.relative_to(lake).parts[0] not in skip}


def cli(lake: Path, *args: str):
    return CliRunner().invoke(app, ["--base-path", str(lake), "--user", "alice", *args])


def assert_clean_error(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and all(w in result.stderr for w in words), result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_a_full_disk_stops_processing_clearly_and_the_next_run_lands_everything(disk):
    lake = disk / "lake"
    client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=2)
    client.upload_raw(rows(0, 10), provider="test", dataset="a", variant="t")
    process(client)
    client.upload_raw(rows(10, 3010), provider="test", dataset="a", variant="t")
    client.upload_raw(rows(3010, 6010), provider="test", dataset="b", variant="t")
    filler = fill(disk, LEFT_FREE)
    before = snapshot(lake, skip=("locks", "jobs"))

    with pytest.raises(StorageError, match=r"no space left on the device; free some space, then run it again "
                                           r"\(2 upload\(s\) stay pending\)"):
        process(client)
    assert_clean_error(cli(lake, "process", "start"), "no space left on the device", "free some space")
    assert snapshot(lake, skip=("locks", "jobs")) == before
    assert [u["stage"] for u in client.list_uploads()] == ["pending", "pending"]
    listed = json.loads(cli(lake, "process", "list", "--json").stdout)
    assert [(j["status"], j["error_type"]) for j in listed["jobs"][1:]] == [("failed", "StorageError")] * 2
    with pytest.raises(StorageError, match="no space left on the device"):  # uploading meets it too
        client.upload_raw(rows(6010, 9010), provider="test", dataset="c", variant="t")

    filler.unlink()
    result = cli(lake, "process", "start")
    assert result.exit_code == 0, result.output
    assert landed(lake) == expected(("a", 0, 3010), ("b", 3010, 6010))
    assert client.list_uploads() == []


def test_a_read_only_disk_gives_a_clear_error_and_loses_nothing(disk):
    lake = disk / "lake"
    client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=2)
    client.upload_raw(rows(0, 10), provider="test", dataset="a", variant="t")
    process(client)
    pending = client.upload_raw(rows(10, 3010), provider="test", dataset="b", variant="t")
    before = snapshot(lake)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        with pytest.raises(StorageError, match=r"the file system is read-only \(.*\); mount it writable, then run it again"):
            process(client)
        assert_clean_error(cli(lake, "process", "start"), "the file system is read-only", "mount it writable")
        result = DatalakeProcessor(lake, num_proc=1).process_all_pending()
        assert (result["processed"], result["error_type"]) == (0, "StorageError")
        assert result["error"].startswith("processing stopped: the file system is read-only")
        assert result["error"].endswith("; mount it writable, then run it again (1 upload(s) stay pending)")
        listed = cli(lake, "process", "list")
        assert listed.exit_code == 0 and pending in listed.stdout
        assert snapshot(lake) == before
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert cli(lake, "process", "start").exit_code == 0
    assert landed(lake) == expected(("a", 0, 10), ("b", 10, 3010))


def test_through_the_server_a_full_disk_raises_storage_error_and_the_next_job_lands_everything(disk):
    lake = disk / "lake"
    DatalakeClient(user_id="alice", base_path=lake, create_dirs=True).upload_raw(
        rows(0, 3000), provider="test", dataset="a", variant="t")
    server = Server(lake)
    try:
        client = DatalakeClient(user_id="alice", base_path=lake, server_url=server.url)
        filler = fill(disk, LEFT_FREE)
        with pytest.raises(StorageError, match="no space left on the device"):
            client.wait_for_job_completion(client.trigger_processing(), polling_interval=0.1, timeout=60)
        assert [u["stage"] for u in client.list_uploads()] == ["pending"]
        filler.unlink()
        client.wait_for_job_completion(client.trigger_processing(), polling_interval=0.1, timeout=60)
        assert [j["error_type"] for j in server.get("/jobs")["jobs"]] == ["StorageError", None]
    finally:
        server.stop()
    assert landed(lake) == expected(("a", 0, 3000))

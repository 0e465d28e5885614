"""Processing faults: the lake-wide column rule, job records of killed processes, error classes of failed jobs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes, process
from datalake import DatalakeClient
from datalake.cli import app
from datalake.errors import NotFoundError
from datalake.jobs import JobStore


def failure(client: DatalakeClient, upload_id: str) -> str:
    return json.loads((client.base_path / "staging/failed" / upload_id / "error.json").read_text())["error"]


def test_a_column_keeps_one_type_and_one_spelling_across_the_lake_and_the_database_builds(client):
    client.upload_raw(pd.DataFrame({"score": [1, 2]}), provider="test", dataset="ints", variant="t")
    process(client)  # the first to land: the one the messages name
    client.upload_raw(pd.DataFrame({"score": [0.5]}), provider="test", dataset="reals", variant="t")
    client.upload_raw(pd.DataFrame({"x": [None, None]}), provider="test", dataset="nulls", variant="t")
    client.upload_raw(pd.DataFrame({"x": ["a"], "label": ["cat"]}), provider="test", dataset="strings", variant="t")
    assert process(client)["failed"] == 0
    when = client.upload_raw(pd.DataFrame({"score": pd.to_datetime(["2026-01-01"])}), provider="huggingface",
                             dataset="dates", variant="t")
    label = client.upload_raw(pd.DataFrame({"Label": ["dog"]}), provider="huggingface", dataset="caps", variant="t")
    result = process(client)
    assert (result["processed"], result["failed"]) == (0, 2)
    assert failure(client, when) == (
        "column 'score' is timestamp[us] in this upload but int64 in partition test/ints/raw/t; convert it to "
        "int64, or rename it: a column has one type across the lake (integers and floats may mix)")
    assert failure(client, label) == (
        "column 'Label' (string) in this upload is spelled 'label' in partition test/strings/raw/t (string); "
        "column names are told apart ignoring case across the lake: rename it to 'label' to share that column, "
        "or give it another name")
    client.build_db()
    assert sorted(client.sql("select score from catalog where score is not null")["score"]) == [0.5, 1, 2]
    assert sorted(client.sql("select x from catalog where x is not null")["x"]) == ["a"]


def test_the_rule_holds_when_the_registry_is_missing_and_is_rebuilt(client):
    client.upload_raw(pd.DataFrame({"score": [1]}), provider="test", dataset="a", variant="t")
    process(client)
    registry = client.base_path / "ledger/columns.json"
    registry.unlink()  # as in a lake processed before the registry existed
    bad = client.upload_raw(pd.DataFrame({"score": ["high"]}), provider="test", dataset="b", variant="t")
    assert process(client)["failed"] == 1
    assert "but int64 in partition test/a/raw/t" in failure(client, bad)
    assert json.loads(registry.read_text())["columns"]["score"][0]["type"] == "int64"


def test_a_column_of_an_upload_that_never_landed_refuses_nothing(client):
    broken = client.upload_raw(pd.DataFrame({"image": [image_bytes(1)], "score": ["high"]}),
                               provider="test", dataset="a", variant="t")
    data = client.base_path / "staging" / "pending" / broken / "data.parquet"
    damaged = bytearray(data.read_bytes())
    damaged[4:len(damaged) // 2] = bytes(len(damaged) // 2 - 4)  # its rows are lost, its footer is whole:
    data.write_bytes(bytes(damaged))                              # it fails after registering its columns
    assert process(client)["failed"] == 1
    assert failure(client, broken)
    client.upload_raw(pd.DataFrame({"score": [7]}), provider="test", dataset="b", variant="t")
    assert process(client)["failed"] == 0
    assert [(r["dataset"], r["score"]) for r in catalog_rows(client.base_path)] == [("b", 7)]


def test_an_overwrite_changes_a_type_only_where_no_other_partition_holds_it(client):
    client.upload_raw(pd.DataFrame({"score": [1]}), provider="test", dataset="a", variant="t")
    client.upload_raw(pd.DataFrame({"rank": [1]}), provider="test", dataset="b", variant="t")
    client.upload_raw(pd.DataFrame({"rank": [2]}), provider="test", dataset="c", variant="t")
    process(client)
    client.upload_raw(pd.DataFrame({"score": ["high"]}), provider="test", dataset="a", variant="t", overwrite=True)
    refused = client.upload_raw(pd.DataFrame({"rank": ["top"]}), provider="test", dataset="b", variant="t",
                                overwrite=True)
    assert process(client)["failed"] == 1
    assert failure(client, refused).startswith("column 'rank' is string in this upload but int64 in partition "
                                               "test/c/raw/t")
    later = client.upload_raw(pd.DataFrame({"score": [5]}), provider="test", dataset="d", variant="t")
    assert process(client)["failed"] == 1
    assert "but string in partition test/a/raw/t" in failure(client, later)
    assert sorted(str(r.get("score")) for r in catalog_rows(client.base_path) if "score" in r) == ["high"]


def run_cli(lake: Path, *args: str):
    return CliRunner().invoke(app, ["--base-path", str(lake), "--user", "alice", *args])


def test_a_killed_processing_job_reads_failed_everywhere_and_the_next_run_lands_its_upload(client):
    rows = 400_000
    client.upload_raw(pd.DataFrame({"n": range(rows), "text": [f"row {i}" for i in range(rows)]}),
                      provider="test", dataset="big", variant="t")
    lake = client.base_path
    child = subprocess.Popen([sys.executable, "-m", "datalake", "--base-path", str(lake), "--user", "alice",
                              "process", "start"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any((lake / "staging/processing").iterdir()):  # the upload is being landed
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    (record,) = (lake / "jobs").glob("*.json")
    assert json.loads(record.read_text())["status"] == "running"  # as the killed process left it
    listed = run_cli(lake, "process", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (job,) = json.loads(listed.stdout)["jobs"]
    assert (job["status"], job["error_type"]) == ("failed", "DatalakeError")
    assert job["error"].startswith("interrupted: the process running this job stopped before it finished")
    status = run_cli(lake, "process", "status", job["job_id"])
    assert json.loads(status.stdout)["status"] == "failed"
    with pytest.raises(Exception, match="interrupted: the process running this job") as raised:
        client.wait_for_job_completion(job["job_id"])
    assert type(raised.value).__name__ == "DatalakeError"
    started = run_cli(lake, "process", "start")
    assert started.exit_code == 0, started.output
    assert sorted(r["n"] for r in catalog_rows(lake)) == list(range(rows))


def test_a_running_job_whose_process_lives_stays_running(client):
    other = JobStore(client.lake)
    job = other.create("process")  # held by this process, as a job under way
    assert [j["status"] for j in client.list_server_jobs()] == ["running"]
    assert client.get_job_status(job["job_id"])["status"] == "running"
    other.finish(job, result={"processed": 0})
    assert client.get_job_status(job["job_id"])["status"] == "completed"


def test_a_failed_job_raises_the_class_of_its_error(client):
    store = JobStore(client.lake)

    def lost() -> None:
        raise NotFoundError("upload 'x' is gone")

    job = store.run(store.create("process"), lost)
    assert (job["status"], job["error"], job["error_type"]) == ("failed", "upload 'x' is gone", "NotFoundError")
    with pytest.raises(NotFoundError, match=f"job {job['job_id']} failed: upload 'x' is gone"):
        client.wait_for_job_completion(job["job_id"])

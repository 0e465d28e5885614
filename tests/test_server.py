"""datalake-server as a real subprocess on loopback: endpoints, auth, jobs, watch mode, kill and restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes, lake_files
from datalake import DatalakeClient, DatalakeError
from datalake.errors import AuthError
from datalake.cli import app as cli
from server_util import Server

TOKEN = "s3cret-token"


def stage(client: DatalakeClient, uploads: int, rows: int, dataset: str = "d", offset: int = 0) -> list[str]:
    ids = []
    for u in range(uploads):
        seeds = range(offset + u * rows, offset + (u + 1) * rows)
        df = pd.DataFrame({"image": [image_bytes(s) for s in seeds], "n": list(seeds)})
        ids.append(client.upload_raw(df, provider="test", dataset=f"{dataset}{u % 3}"))
    return ids


@pytest.fixture
def lake(tmp_path) -> Path:
    DatalakeClient(user_id="srv", base_path=tmp_path / "lake", create_dirs=True)
    return tmp_path / "lake"


@pytest.fixture
def server(lake):
    s = Server(lake)
    yield s
    s.stop()


def test_endpoints_and_single_flight_processing(lake, server):
    client = DatalakeClient(user_id="u", base_path=lake, server_url=server.url)
    stage(client, 12, 60)
    info = server.get("/info")
    assert info["num_proc"] == 2 and info["paths"]["base_path"] == str(lake) and info["version"]
    assert server.get("/status")["uploads"] == {"pending": 12, "processing": 0, "failed": 0}
    status, first = server.call("POST", "/process")
    assert status == 200 and first["status"] == "started"
    status, second = server.call("POST", "/process")
    assert second == {"job_id": first["job_id"], "status": "already_running"}
    status, body = server.call("DELETE", f"/jobs/{first['job_id']}")
    assert status == 400 and body["ok"] is False and "still running" in body["error"]
    result = client.wait_for_job_completion(first["job_id"], polling_interval=0.2, timeout=120)
    assert result["processed"] == 12
    job = server.get(f"/jobs/{first['job_id']}")
    assert job["status"] == "completed" and job["started_at"] and job["completed_at"]
    assert [j["job_id"] for j in server.get("/jobs")["jobs"]] == [first["job_id"]]
    assert server.get("/status")["uploads"] == {"pending": 0, "processing": 0, "failed": 0}
    assert server.call("DELETE", f"/jobs/{first['job_id']}")[0] == 200
    assert server.call("DELETE", "/jobs/process-unknown") == (
        404, {"ok": False, "error": "job 'process-unknown' is not known in this lake", "status": 404,
              "type": "NotFoundError"})
    assert server.call("GET", "/jobs/..%2F..%2Fetc")[0] == 400
    assert server.call("GET", "/nowhere")[0] == 404
    assert server.call("POST", "/process", data=b"x" * (2 * 1024 * 1024))[0] == 413


def test_client_scripts_run_the_same_with_and_without_a_server(lake, server):
    embedded = DatalakeClient(user_id="u", base_path=lake)
    remote = DatalakeClient(user_id="u", base_path=lake, server_url=server.url)
    shapes = []
    for i, client in enumerate((embedded, remote)):
        stage(client, 1, 3, offset=100 * i)
        job_id = client.trigger_processing()
        result = client.wait_for_job_completion(job_id, polling_interval=0.1, timeout=60)
        job = client.get_job_status(job_id)
        shapes.append((sorted(job), sorted(result), sorted(result["uploads"][0])))
        assert client.get_server_status()["uploads"] == {"pending": 0, "processing": 0, "failed": 0}
        assert job_id in [j["job_id"] for j in client.list_server_jobs()]
    assert shapes[0] == shapes[1]


def test_token_is_required_on_every_endpoint_but_health(lake):
    server = Server(lake, env={"DATALAKE_TOKEN": TOKEN})
    try:
        assert server.call("GET", "/health")[0] == 200
        for method, path in (("GET", "/status"), ("GET", "/info"), ("POST", "/process"), ("GET", "/jobs")):
            assert server.call(method, path)[0] == 401
            status, body = server.call(method, path, token="wrong")
            assert status == 401 and body["type"] == "AuthError"
        assert server.call("GET", "/status", token=TOKEN)[0] == 200
        with pytest.raises(AuthError, match="missing or wrong token"):
            DatalakeClient(user_id="u", base_path=lake, server_url=server.url, token="nope").get_server_status()
        good = DatalakeClient(user_id="u", base_path=lake, server_url=server.url, token=TOKEN)
        assert good.get_server_status()["state"] == "idle"
    finally:
        server.stop()


def test_a_non_loopback_bind_without_token_is_refused(lake, tmp_path):
    out = subprocess.run([sys.executable, "-c", "from datalake.server.main import main; main()",
                          "--base-path", str(lake), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert out.returncode == 1
    assert out.stderr == ("Error: binding 0.0.0.0 needs a token: give --token-file FILE or set DATALAKE_TOKEN "
                          "(or bind 127.0.0.1)\n")
    (tmp_path / "empty").write_text("\n")
    out = subprocess.run([sys.executable, "-c", "from datalake.server.main import main; main()",
                          "--base-path", str(lake), "--host", "0.0.0.0", "--token-file", str(tmp_path / "empty")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "is empty" in out.stderr


def test_a_down_or_silent_server_gives_a_clear_error_in_bounded_time(lake):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        client = DatalakeClient(user_id="u", base_path=lake, server_url=f"http://127.0.0.1:{port}", timeout=1)
        started = time.monotonic()
        with pytest.raises(DatalakeError, match=r"cannot reach the datalake server at .* within 1 s"):
            client.trigger_processing()
        assert time.monotonic() - started < 10
    with pytest.raises(DatalakeError, match="cannot reach the datalake server"):
        client.get_server_status()  # nothing listens any more


def test_wait_for_job_completion_times_out(lake, server):
    client = DatalakeClient(user_id="u", base_path=lake, server_url=server.url)
    stage(client, 6, 80)
    job_id = client.trigger_processing()
    with pytest.raises(DatalakeError, match=f"job {job_id} is still running after 0.05 s"):
        client.wait_for_job_completion(job_id, polling_interval=0.01, timeout=0.05)
    client.wait_for_job_completion(job_id, polling_interval=0.2, timeout=120)


def test_cli_against_the_server(lake, server):
    runner = CliRunner()
    client = DatalakeClient(user_id="u", base_path=lake)
    stage(client, 2, 3)
    result = runner.invoke(cli, ["--base-path", str(lake), "process", "start", "--server", server.url,
                                 "--wait", "--json"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["processed"] == 2
    status = runner.invoke(cli, ["--base-path", str(lake), "--server", server.url, "process", "status", job["job_id"]])
    assert json.loads(status.stdout)["status"] == "completed"
    result = runner.invoke(cli, ["--base-path", str(lake), "server", "status", "--server", server.url])
    assert json.loads(result.stdout)["state"] == "idle"
    stage(client, 1, 3, offset=50)
    result = runner.invoke(cli, ["--base-path", str(lake), "process", "start", "--server", server.url])
    assert result.exit_code == 0 and result.stdout.startswith("Job process-")


def test_watch_mode_lands_uploads_of_four_concurrent_clients_once(lake):
    server = Server(lake, "--watch")
    script = (
        "import sys, pandas as pd\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from conftest import image_bytes\n"
        "from datalake import DatalakeClient\n"
        "c = DatalakeClient(user_id=f'user{sys.argv[2]}', base_path=sys.argv[1], server_url=sys.argv[4])\n"
        "for u in range(5):\n"
        "    seeds = [int(sys.argv[2]) * 1000 + u * 10 + i for i in range(10)] + [99999]\n"
        "    c.upload_raw(pd.DataFrame({'image': [image_bytes(s) for s in seeds], 'n': seeds}),"
        " provider='test', dataset=f'w{u % 2}')\n"
        "    c.trigger_processing()\n"
    )
    try:
        procs = [subprocess.Popen([sys.executable, "-c", script, str(lake), str(k),
                                   str(Path(__file__).parent), server.url]) for k in range(4)]
        assert [p.wait(timeout=300) for p in procs] == [0] * 4
        deadline = time.monotonic() + 60
        while server.get("/status")["uploads"]["pending"] or server.get("/status")["running_jobs"]:
            assert time.monotonic() < deadline, "watch mode left uploads pending"
            time.sleep(0.3)
        rows = catalog_rows(lake)
        ns = sorted(r["n"] for r in rows)
        expected = sorted({k * 1000 + u * 10 + i for k in range(4) for u in range(5) for i in range(10)})
        # seed 99999 is in every upload: once per partition (w0, w1), never more
        assert [n for n in ns if n != 99999] == expected and ns.count(99999) == 2
        assert len(list((lake / "ledger/uploads").glob("*.parquet"))) == 20
        assert len(lake_files(lake, "assets")) == len(expected) + 1
        fingerprinted = {row["hash"] for part in (lake / "ledger/fingerprints").glob("*.parquet")
                         for row in pq.read_table(part).to_pylist()}
        assert fingerprinted == {r["hash"] for r in rows}  # each processing job is followed by indexing
    finally:
        server.stop()


def test_watch_mode_processes_what_is_pending_at_start(lake):
    client = DatalakeClient(user_id="u", base_path=lake)
    stage(client, 2, 2)
    server = Server(lake, "--watch")
    try:
        deadline = time.monotonic() + 30
        while len(catalog_rows(lake)) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        server.stop()


def clean_reference(lake: Path, tmp_path: Path) -> Path:
    import shutil

    from datalake import DatalakeProcessor

    ref = tmp_path / "reference"
    shutil.copytree(lake, ref)
    DatalakeProcessor(ref, num_proc=1).process_all_pending()
    return ref


def rows_without_paths(lake: Path) -> list:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in catalog_rows(lake))


def test_kill_9_mid_job_then_restart_leaves_the_lake_a_clean_run_would(lake, tmp_path):
    client = DatalakeClient(user_id="u", base_path=lake)
    stage(client, 12, 80)
    ref = clean_reference(lake, tmp_path)
    server = Server(lake)
    job_id = server.call("POST", "/process")[1]["job_id"]
    deadline = time.monotonic() + 60
    while not list((lake / "ledger/uploads").glob("*.parquet")):  # some uploads done, others not yet
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.kill()
    assert server.proc.returncode == -signal.SIGKILL
    restarted = Server(lake)
    try:
        job = restarted.get(f"/jobs/{job_id}")
        assert job["status"] == "failed" and job["error"].startswith("interrupted: the process running this job")
        deadline = time.monotonic() + 120
        while sum(restarted.get("/status")["uploads"].values()) or restarted.get("/status")["running_jobs"]:
            if not restarted.get("/status")["running_jobs"]:
                restarted.call("POST", "/process")
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        restarted.stop()
    assert rows_without_paths(lake) == rows_without_paths(ref)
    assert lake_files(lake, "assets") == lake_files(ref, "assets")
    assert not [p for p in (lake / "catalog").rglob("*") if p.is_file() and not p.name.startswith("part-")]


def test_sigterm_stops_cleanly(lake):
    client = DatalakeClient(user_id="u", base_path=lake)
    stage(client, 10, 60)
    server = Server(lake)
    job_id = server.call("POST", "/process")[1]["job_id"]
    time.sleep(0.3)
    assert server.stop() == 0
    job = json.loads((lake / "jobs" / f"{job_id}.json").read_text())
    assert job["status"] in ("completed", "failed") and job["completed_at"]
    if job["status"] == "failed":
        assert "stopped before the end" in job["error"]
    assert not any((lake / "staging" / "processing").iterdir())


def test_finished_job_records_are_bounded(lake):
    from datalake.jobs import JobStore
    from datalake.lake import Lake

    store = JobStore(Lake(lake))
    for _ in range(5):
        store.finish(store.create("process"), result={})
    running = store.create("process")
    assert store.prune(keep=2) == 3
    assert sorted(j["status"] for j in store.list()) == ["completed", "completed", "running"]
    assert store.get(running["job_id"])["status"] == "running"


def test_build_is_a_job_of_its_own_kind(lake, server):
    client = DatalakeClient(user_id="u", base_path=lake, server_url=server.url)
    stage(client, 2, 3)
    client.wait_for_job_completion(client.trigger_processing(), polling_interval=0.1, timeout=60)
    status, build = server.call("POST", "/build")
    assert status == 200 and build["status"] == "started" and build["job_id"].startswith("build-")
    status, process_job = server.call("POST", "/process")
    assert process_job["job_id"] != build["job_id"] and process_job["job_id"].startswith("process-")
    result = client.wait_for_job_completion(build["job_id"], polling_interval=0.2, timeout=120)
    assert result["tables"]["catalog"] == 6 and result["behind"] is False
    assert client.build_db()["tables"]["catalog"] == 6  # the client's build_db runs on the server

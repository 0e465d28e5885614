"""Retraction and garbage collection on a real datalake-server (a subprocess on loopback): token,
bodies checked before any job starts, jobs that remove rows and files, errors as their own classes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes
from datalake import DatalakeClient, config
from datalake.cli import app as cli
from datalake.lifecycle.retraction import RetractionBlocked
from server_util import Server
from test_server import lake  # noqa: F401  (the fixture: an empty lake)

TOKEN = "s3cret-token"
NO_REASON = "give the reason for the retraction (it is recorded in the retraction ledger)"


def upload(client: DatalakeClient, dataset: str, seeds: range, overwrite: bool = False) -> str:
    frame = pd.DataFrame({"image": [image_bytes(s) for s in seeds], "n": list(seeds)})
    return client.upload_raw(frame, provider="test", dataset=dataset, overwrite=overwrite)


def processed(client: DatalakeClient) -> None:
    client.wait_for_job_completion(client.trigger_processing(), polling_interval=0.1, timeout=120)


@pytest.fixture
def server(lake):
    s = Server(lake, env={"DATALAKE_TOKEN": TOKEN})
    yield s
    s.stop()


@pytest.fixture
def client(lake, server) -> DatalakeClient:
    """A client of the server, with datasets a (3 images) and b (2 images) processed there."""
    client = DatalakeClient(user_id="frank", base_path=lake, server_url=server.url, token=TOKEN)
    upload(client, "a", range(3))
    upload(client, "b", range(10, 12))
    processed(client)
    return client


def post(server: Server, path: str, body, token: str | None = TOKEN) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.call("POST", path, token=token, data=data)


def test_retraction_and_gc_need_the_token(client, server):
    for method, path in (("POST", "/retract"), ("POST", "/gc"), ("GET", "/retractions")):
        for token in (None, "wrong"):
            status, body = server.call(method, path, token=token, data=b"{}" if method == "POST" else None)
            assert (status, body["type"]) == (401, "AuthError")
    assert len(catalog_rows(client.base_path)) == 5
    assert [j["kind"] for j in server.get("/jobs", token=TOKEN)["jobs"]] == ["process"]
    status, started = post(server, "/retract", {"datasets": ["a"], "reason": "checking", "dry_run": True})
    assert status == 200 and started["status"] == "started"
    plan = client.wait_for_job_completion(started["job_id"], polling_interval=0.1)
    assert (plan["rows"], plan["dry_run"]) == (3, True)
    assert plan["retracted_by"] == config.resolve().user_id  # no `user` given: the one the server runs as
    assert len(catalog_rows(client.base_path)) == 5


@pytest.mark.parametrize("path, body, message", [
    ("/retract", b"{not json", "the request body is not valid JSON"),
    ("/retract", ["a"], "the request body must be a JSON object; a retraction takes providers, datasets, tasks, "
                        "variants, hashes, upload_id, reason, user, dry_run, force"),
    ("/retract", {"datasets": ["a"], "reason": "r", "dataset": ["b"]},
     "unknown key(s) dataset; a retraction takes providers, datasets, tasks, variants, hashes, upload_id, reason, "
     "user, dry_run, force"),
    ("/retract", {"datasets": "a", "reason": "r"}, "`datasets` must be a list of strings, not a string"),
    ("/retract", {"datasets": ["a"], "reason": "r", "dry_run": "yes"}, "`dry_run` must be true or false, not a string"),
    ("/retract", {"datasets": ["a"]}, NO_REASON),
    ("/retract", {"datasets": ["a"], "reason": " "}, NO_REASON),
    ("/retract", {"reason": "r"}, "name what to retract: datasets, providers, tasks, variants, asset hashes or an "
                                  "upload id (a retraction never takes the whole lake by default)"),
    ("/retract", {"datasets": ["../a"], "reason": "r"},
     "dataset name '../a' is not allowed: use letters, digits, '_', '.' and '-', not starting with '.', at most 128 "
     "characters"),
    ("/gc", {"dry_run": 1}, "`dry_run` must be true or false, not a number"),
    ("/gc", {"force": True}, "unknown key(s) force; a garbage collection takes dry_run"),
])
def test_a_bad_body_is_a_400_and_starts_no_job(client, server, path, body, message):
    status, answer = post(server, path, body)
    assert (status, answer["type"], answer["error"]) == (400, "ValidationError", message)
    assert [j["kind"] for j in server.get("/jobs", token=TOKEN)["jobs"]] == ["process"]
    assert len(catalog_rows(client.base_path)) == 5


def test_the_client_retracts_through_a_server_job(client, server):
    lake = client.base_path
    taken = sorted(r["hash"] for r in catalog_rows(lake) if r["dataset"] == "a")
    plan = client.retract(datasets=["a"], reason="license withdrawn", dry_run=True)
    assert (plan.dry_run, plan.rows, [a["hash"] for a in plan.assets]) == (True, 3, taken)
    assert len(catalog_rows(lake)) == 5
    done = client.retract(datasets=["a"], reason="license withdrawn")
    assert (done.dry_run, done.rows, done.retracted_by, done.database) == (False, 3, "frank", "absent")
    assert {r["dataset"] for r in catalog_rows(lake)} == {"b"}
    assert not [h for h in taken if list((lake / "assets" / h[:2]).glob(f"{h}.*"))]
    jobs = server.get("/jobs", token=TOKEN)["jobs"]
    assert [(j["kind"], j["status"]) for j in jobs] == [("process", "completed"), ("retract", "completed"),
                                                       ("retract", "completed")]
    assert jobs[-1]["result"]["retraction_id"] == done.retraction_id
    listed = server.get("/retractions", token=TOKEN)["retractions"]
    assert [(r["retraction_id"], r["rows"], r["reason"]) for r in listed] == [(done.retraction_id, 3, "license withdrawn")]


def test_a_blocked_retraction_fails_its_job_with_its_own_error(client, server):
    staged = upload(client, "a", range(20, 22))  # not processed: it would bring rows of a back
    with pytest.raises(RetractionBlocked, match=f"staged upload\\(s\\) hold rows this retraction takes: {staged}"):
        client.retract(datasets=["a"], reason="license withdrawn")
    assert len(catalog_rows(client.base_path)) == 5
    job = server.get("/jobs", token=TOKEN)["jobs"][-1]
    assert (job["kind"], job["status"], job["error_type"]) == ("retract", "failed", "RetractionBlocked")


def test_garbage_collection_through_a_server_job(client, server):
    lake = client.base_path
    upload(client, "a", range(1), overwrite=True)  # 2 of a's 3 images lose their rows
    processed(client)
    orphans = sorted(p for p in (lake / "assets").rglob("*.png")
                     if p.name.split(".")[0] not in {r["hash"] for r in catalog_rows(lake)})
    assert len(orphans) == 2
    plan = client.collect_garbage(dry_run=True)
    assert sorted(a["path"] for a in plan.assets) == [str(p.relative_to(lake / "assets")) for p in orphans]
    assert plan.bytes == sum(p.stat().st_size for p in orphans) and all(p.exists() for p in orphans)
    done = client.collect_garbage()
    assert (done.dry_run, done.bytes) == (False, plan.bytes) and not any(p.exists() for p in orphans)
    status, started = post(server, "/gc", b"")  # no body: a collection, as `{}`
    assert status == 200 and started["status"] == "started"
    assert client.wait_for_job_completion(started["job_id"], polling_interval=0.1)["bytes"] == 0


def test_the_cli_retracts_on_the_server(client, server):
    result = CliRunner().invoke(cli, ["--base-path", str(client.base_path), "--server", server.url, "--token", TOKEN,
                                      "--user", "gina", "retract", "-d", "b", "--reason", "asked by its owner", "--yes"])
    assert result.exit_code == 0, result.output
    assert "would remove 2 row(s)" in result.stdout and "removed 2 row(s)" in result.stdout
    assert {r["dataset"] for r in catalog_rows(client.base_path)} == {"a"}
    assert [r["retracted_by"] for r in client.list_retractions()] == ["gina"]

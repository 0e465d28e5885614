"""`datalake retract`, `datalake gc` and `datalake retractions list` through CliRunner on real lakes:
the plan shown, nothing changed until the answer is yes, rows and asset files gone after."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes, process
from datalake import DatalakeClient
from datalake.cli import app

runner = CliRunner()


def run(lake: Path, *args: str, input: str | None = None):
    return runner.invoke(app, ["--base-path", str(lake), "--user", "erin", *args], input=input)


def upload(client: DatalakeClient, dataset: str, seeds: range, overwrite: bool = False) -> str:
    frame = pd.DataFrame({"image": [image_bytes(s) for s in seeds], "n": list(seeds)})
    return client.upload_raw(frame, provider="test", dataset=dataset, overwrite=overwrite)


def contents(lake: Path) -> dict[str, str]:
    """Every file of the lake but its locks, with a digest of its bytes: what must not change."""
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(lake.rglob("*"))
            if p.is_file() and p.relative_to(lake).parts[0] != "locks"}


def store_file(lake: Path, digest: str) -> Path:
    return next((lake / "assets" / digest[:2]).glob(f"{digest}.*"))


@pytest.fixture
def lake(client: DatalakeClient) -> Path:
    """Datasets a (3 images) and b (2 images) processed; no database."""
    upload(client, "a", range(3))
    upload(client, "b", range(10, 12))
    process(client)
    return client.base_path


def hashes_of(lake: Path, dataset: str) -> list[str]:
    return sorted(r["hash"] for r in catalog_rows(lake) if r["dataset"] == dataset)


def test_a_dry_run_prints_the_plan_and_changes_nothing(lake):
    before = contents(lake)
    taken = hashes_of(lake, "a")
    size = sum(store_file(lake, h).stat().st_size for h in taken)
    result = run(lake, "retract", "--dataset", "a", "--reason", "license withdrawn", "--dry-run")
    assert result.exit_code == 0, result.output
    assert (f"(license withdrawn) would remove 3 row(s) from 1 part file(s) in 1 partition(s), and 3 asset file(s) "
            f"({size} bytes) that nothing else references.") in result.stdout
    assert "Part files (1):" in result.stdout and "test/a/raw/image  3" in result.stdout
    assert "Asset files (3):" in result.stdout
    for digest in taken:
        assert f"assets/{store_file(lake, digest).relative_to(lake / 'assets')}" in result.stdout
    assert "Retract this for good?" not in result.stdout
    plan = json.loads(run(lake, "retract", "-d", "a", "--reason", "license withdrawn", "--dry-run",
                          "--format", "json").stdout)
    assert (plan["dry_run"], plan["rows"], plan["bytes"]) == (True, 3, size)
    assert [a["hash"] for a in plan["assets"]] == taken and plan["selection"]["datasets"] == ["a"]
    assert contents(lake) == before


def test_declining_the_question_changes_nothing(lake):
    before = contents(lake)
    for answer in ("n\n", "\n", None):  # no, the default, and no answer at all (the input ends)
        result = run(lake, "retract", "-d", "a", "--reason", "license withdrawn", input=answer)
        assert result.exit_code == 1, result.output
        assert "would remove 3 row(s)" in result.stdout and "Retract this for good? [y/N]" in result.stdout
        assert result.stderr == "Nothing was changed.\n"
    result = run(lake, "retract", "-d", "a", "--reason", "license withdrawn", "--format", "json", input="n\n")
    assert result.exit_code == 1 and "{" not in result.stdout  # no JSON: the plan and question went to stderr
    assert "would remove 3 row(s)" in result.stderr and result.stderr.endswith("Nothing was changed.\n")
    assert contents(lake) == before


def test_yes_removes_the_rows_and_the_asset_files_only_they_reference(lake):
    taken, kept = hashes_of(lake, "a"), hashes_of(lake, "b")
    files = [store_file(lake, h) for h in taken]
    result = run(lake, "retract", "-d", "a", "--reason", "license withdrawn", input="y\n")
    assert result.exit_code == 0, result.output
    assert "removed 3 row(s) from 1 part file(s) in 1 partition(s), and 3 asset file(s)" in result.stdout
    assert result.stderr == ""  # no database: nothing to rebuild, nothing to warn about
    assert {r["dataset"] for r in catalog_rows(lake)} == {"b"}
    assert not any(f.exists() for f in files) and all(store_file(lake, h).exists() for h in kept)
    result = run(lake, "retract", "--hash", kept[0], "--reason", "asked by its owner", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert (done["dry_run"], done["rows"], [a["hash"] for a in done["assets"]]) == (False, 1, [kept[0]])
    assert done["completed_at"] and done["database"] == "absent" and done["retracted_by"] == "erin"
    assert hashes_of(lake, "b") == kept[1:]
    result = run(lake, "retract", "-d", "a", "--reason", "again", "--yes")
    assert (result.exit_code, result.stdout, result.stderr) == (
        1, "", "Error: nothing in the lake matches the retraction (dataset a); `datalake retractions list` shows "
               "what was retracted before\n")


def test_retractions_list(lake):
    assert run(lake, "retractions", "list").stdout == "No retractions.\n"
    assert run(lake, "retract", "-d", "a", "--reason", "license\nwithdrawn", "--yes").exit_code == 0
    assert run(lake, "retract", "-d", "b", "--reason", "duplicate source", "--yes").exit_code == 0
    listed = run(lake, "retractions", "list")
    assert listed.exit_code == 0, listed.output
    header, first, second = listed.stdout.splitlines()
    assert header.split() == ["retraction_id", "started_at", "retracted_by", "reason", "rows", "assets", "bytes",
                              "complete"]
    assert first.split()[2:] == ["erin", "license", "withdrawn", "3", "3", str(sum(image_sizes(range(3)))), "yes"]
    assert second.split()[2:] == ["erin", "duplicate", "source", "2", "2", str(sum(image_sizes(range(10, 12)))),
                                  "yes"]
    records = json.loads(run(lake, "retractions", "list", "--format", "json").stdout)
    assert [(r["reason"], r["rows"], r["retracted_by"]) for r in records] == [
        ("license\nwithdrawn", 3, "erin"), ("duplicate source", 2, "erin")]


def image_sizes(seeds: range) -> list[int]:
    return [len(image_bytes(s)) for s in seeds]


def test_a_collection_version_blocks_the_retraction_unless_forced(lake, client):
    client.build_db()
    client.import_collection(client.search(datasets=["b"]), name="bees")
    before = contents(lake)
    result = run(lake, "retract", "-d", "b", "--reason", "license withdrawn")
    assert result.exit_code == 1
    assert "would remove 2 row(s)" in result.stdout and "Collection bees v1 holds 2 of these row(s)." in result.stdout
    assert "Retract this for good?" not in result.stdout
    assert result.stderr == ("Error: collection version(s) hold rows this retraction takes: bees v1 (2 member(s)). "
                             "Versions never change, so the retraction stops here; retract with force (`--force`) to "
                             "remove them from those versions too (their metadata then records it), or delete the "
                             "versions first\n")
    assert contents(lake) == before
    result = run(lake, "retract", "-d", "b", "--reason", "license withdrawn", "--force", "--yes")
    assert result.exit_code == 0, result.output
    assert "removed 2 row(s)" in result.stdout and result.stderr == ""
    assert {r["dataset"] for r in catalog_rows(lake)} == {"a"}
    info = client.collection_manager.info("bees", "v1")
    assert info["num_samples"] == 0 and info["retractions"][0]["reason"] == "license withdrawn"
    assert client.count(datasets=["b"]) == 0  # the database was built again


def test_a_staged_upload_blocks_the_retraction(lake, client):
    staged, staged_c = upload(client, "a", range(20, 22)), upload(client, "c", range(30, 31))
    before = contents(lake)
    result = run(lake, "retract", "-d", "a", "--reason", "license withdrawn", "--yes")
    assert result.exit_code == 1
    assert f"Upload {staged} (pending) holds 2 of these row(s)" in result.stdout
    assert result.stderr == (f"Error: staged upload(s) hold rows this retraction takes: {staged} (pending, 2 row(s)). "
                             "Process them first (`datalake process start`; a failed one: `datalake process retry "
                             "<id>`, or remove its folder under staging/failed/), then retract again: a retraction "
                             "takes what the catalog holds, and they would bring the rows back\n")
    assert contents(lake) == before
    result = run(lake, "retract", "-d", "c", "--reason", "license withdrawn", "--yes")  # only staged rows
    assert result.exit_code == 1 and "would remove 0 row(s)" in result.stdout
    assert result.stderr.startswith(f"Error: staged upload(s) hold rows this retraction takes: {staged_c} (pending")
    assert contents(lake) == before


@pytest.mark.parametrize("args, message", [
    (["-d", "a"], "Error: give --reason TEXT: why this data goes (the retraction ledger records it)\n"),
    (["-d", "a", "--reason", "  "], "Error: give --reason TEXT: why this data goes (the retraction ledger records it)\n"),
    (["--reason", "why"], "Error: name what to retract: datasets, providers, tasks, variants, asset hashes or an "
                          "upload id (a retraction never takes the whole lake by default)\n"),
    (["-d", "../a", "--reason", "why"], "Error: dataset name '../a' is not allowed: use letters, digits, '_', '.' "
                                        "and '-', not starting with '.', at most 128 characters\n"),
    (["-d", "a", "--reason", "why", "--format", "csv"], "Error: --format must be one of table, json\n"),
])
def test_bad_retract_options_exit_1_with_the_exact_message(lake, args, message):
    before = contents(lake)
    result = run(lake, "retract", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", message)
    assert contents(lake) == before


@pytest.fixture
def orphans(client: DatalakeClient) -> tuple[Path, list[Path], Path]:
    """Dataset o uploaded with 3 images, then overwritten by 1 of them: 2 asset files no row references."""
    upload(client, "o", range(3))
    process(client)
    upload(client, "o", range(1), overwrite=True)
    process(client)
    lake = client.base_path
    (kept,) = hashes_of(lake, "o")
    files = sorted(p for p in (lake / "assets").rglob("*.png") if not p.name.startswith(kept))
    assert len(files) == 2
    return lake, files, store_file(lake, kept)


def test_gc_dry_run_lists_the_files_and_their_bytes(orphans):
    lake, files, _ = orphans
    before = contents(lake)
    size = sum(f.stat().st_size for f in files)
    result = run(lake, "gc", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Garbage collection would free {size} bytes: 2 asset file(s) no row or "
                                    "collection references, 0 leftover(s) of runs that ended early.\n")
    assert "Asset files (2):" in result.stdout
    for f in files:
        assert re.search(rf"^{f.name[:12]} +{f.stat().st_size} +assets/{f.parent.name}/{f.name}$", result.stdout, re.M)
    report = json.loads(run(lake, "gc", "--dry-run", "--format", "json").stdout)
    assert (report["dry_run"], report["bytes"]) == (True, size)
    assert sorted(a["path"] for a in report["assets"]) == [str(f.relative_to(lake / "assets")) for f in files]
    result = run(lake, "gc", input="n\n")
    assert result.exit_code == 1 and "Remove these files for good? [y/N]" in result.stdout
    assert result.stderr == "Nothing was changed.\n"
    assert contents(lake) == before


def test_gc_removes_the_asset_files_no_row_references(orphans):
    lake, files, kept = orphans
    size = sum(f.stat().st_size for f in files)
    rows = catalog_rows(lake)
    result = run(lake, "gc", input="y\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(f"Garbage collection freed {size} bytes: 2 asset file(s) no row or collection "
                                  "references, 0 leftover(s) of runs that ended early.\n")
    assert not any(f.exists() for f in files) and kept.exists()
    assert catalog_rows(lake) == rows
    result = run(lake, "gc")  # nothing left to remove: nothing is asked
    assert (result.exit_code, result.stdout) == (
        0, "Garbage collection freed 0 bytes: 0 asset file(s) no row or collection references, 0 leftover(s) of "
           "runs that ended early.\n")
    done = json.loads(run(lake, "gc", "--yes", "--format", "json").stdout)
    assert (done["dry_run"], done["bytes"], done["assets"]) == (False, 0, [])

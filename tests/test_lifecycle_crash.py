"""Retraction and garbage collection with real processes: killed at many points and run again,
racing an upload that names an orphan asset, and running while others upload, process, build and
search.

A clean, uninterrupted run on a copy of the same lake is the reference: after a kill and a rerun
the lake must be that lake (rows, store, thumbnails, ledger, collection members and metadata, one
completed retraction record, no temporary file, no empty partition folder).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datalake import DatalakeClient, DatalakeProcessor
from datalake.browse.thumbnails import thumbnail
from test_crash import (KILL_AT_RENAME, OCR_META, asset_digests, copy_lake, digest, files_under, finish,
                        hf_images, rel_files, rows_by_partition, start_child, wait_for, write_parquet)

TESTS = Path(__file__).resolve().parent
ONE, TWO = range(0, 10), range(5, 15)  # images of datasets one and two: 5..9 in both
SCRATCH = (20, 21, 22)  # uploaded to dataset scratch, then overwritten by the first alone: 21, 22 orphans

# A retraction or a garbage collection in a child; with a stop point (stop_at's arguments, as
# JSON) it is killed, or paused, there. Prints what it did as JSON.
LIFECYCLE_CHILD = KILL_AT_RENAME + r"""
import json
from datalake import DatalakeClient

client = DatalakeClient(user_id="carol", base_path=sys.argv[1], num_proc=1)
if len(sys.argv) > 3:
    stop_at(*json.loads(sys.argv[3]))
print("ready", flush=True)
if sys.argv[2] == "retract":
    done = client.retract(datasets=["one"], force=True, reason="consent withdrawn").to_dict()
else:
    done = client.collect_garbage().to_dict()
print(json.dumps(done), flush=True)
"""

# A task upload to scratch/ocr/v1 of a parquet file, paused just before it enters staging/pending
# (its rows and asset facts written, the store lock held shared) until a line comes on stdin.
PAUSED_UPLOADER_CHILD = KILL_AT_RENAME + r"""
from datalake import DatalakeClient

client = DatalakeClient(user_id="bob", base_path=sys.argv[1], num_proc=1)
stop_at("os.rename", os.path.join(sys.argv[1], "staging", "pending"), 1, "before", False, True)
print("ready", flush=True)
print(client.upload_task(sys.argv[2], provider="test", dataset="scratch", task="ocr", variant="v1",
                         meta={"lang": "ko", "src": "real"}), flush=True)
"""

# Work that goes on while a retraction or a collection runs: rounds of `upload` (five new images
# to dataset three, then processing), `build` or `search` (every row, and those whose asset file is
# missing), until the file `phase` beside the lake says "stop". One JSON line per round, with the
# phase when it began and when it ended. Uploads and builds let a retraction or collection that
# waits for their lock (`store`, `build`) have it before they take it again, as a user would not
# hammer it: otherwise they could keep it waiting for many rounds.
WORKER_CHILD = r"""
import json, os, sys, time
from pathlib import Path

sys.path.insert(0, sys.argv[3])
from test_crash import hf_images, write_parquet
from datalake import DatalakeClient, DatalakeProcessor

lake, work = Path(sys.argv[1]), sys.argv[2]
client = DatalakeClient(user_id="dave", base_path=lake, num_proc=1)
lock = client.lake.lake_lock({"upload": "store", "build": "build"}.get(work, "store"))


def phase():
    return (lake.parent / "phase").read_text()


def waited_for():
    try:
        inode = f":{os.stat(lock).st_ino}"
    except FileNotFoundError:
        return False
    return any(f[1] == "->" and f[4] == "WRITE" and f[6].endswith(inode)
               for f in map(str.split, Path("/proc/locks").read_text().splitlines()))


print("ready", flush=True)
n = 0
while phase() != "stop":
    while work != "search" and waited_for():
        time.sleep(0.01)
    out = {"began": phase()}
    if work == "upload":
        seeds = range(1000 + 5 * n, 1005 + 5 * n)
        source = write_parquet(lake.parent / "src" / f"three{n}.parquet", image=hf_images(seeds),
                               caption=[f"three {s}" for s in seeds])
        client.upload_raw(source, provider="test", dataset="three")
        result = DatalakeProcessor(lake, num_proc=1).process_all_pending()
        assert result["processed"] == 1 and not result["failed"], result
    elif work == "build":
        client.build_db()
    else:
        rows = client.search()
        out["datasets"] = sorted(set(rows["dataset"]))
        out["missing"] = [[r.dataset, r.hash] for r in rows.itertuples()
                          if isinstance(r.hash, str) and not (lake / "assets" / r.path).exists()]
    out["ended"] = phase()
    print(json.dumps(out), flush=True)
    n += 1
"""


# -- the lake -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory) -> Path:
    """Datasets one (raw images, and OCR labels naming five of them by hash) and two (raw images,
    five shared with one), scratch (two orphan assets), fingerprints and near pairs, thumbnails of
    every stored image, collection `picked` of rows of one and two, and a database."""
    root = tmp_path_factory.mktemp("lifecycle")
    lake, src = root / "lake", root / "src"
    client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=1)
    client.upload_raw(write_parquet(src / "one.parquet", image=hf_images(ONE), caption=[f"one {s}" for s in ONE]),
                      provider="test", dataset="one")
    client.upload_raw(write_parquet(src / "two.parquet", image=hf_images(TWO), caption=[f"two {s}" for s in TWO]),
                      provider="test", dataset="two")
    client.upload_raw(write_parquet(src / "scratch.parquet", image=hf_images(SCRATCH), caption=["s"] * 3),
                      provider="test", dataset="scratch")
    process(lake)
    client.upload_task(write_parquet(src / "ocr.parquet", hash=[digest(s) for s in ONE[:5]],
                                     text=[f"text {s}" for s in ONE[:5]]),
                       provider="test", dataset="one", task="ocr", variant="v1", meta=OCR_META)
    client.upload_raw(write_parquet(src / "again.parquet", image=hf_images(SCRATCH[:1]), caption=["s"]),
                      provider="test", dataset="scratch", overwrite=True)
    process(lake)
    assert client.index_fingerprints()["fingerprinted"] == len(set(ONE) | set(TWO) | set(SCRATCH))
    for rel in asset_digests(lake):
        assert thumbnail(client.lake, rel.split("/")[1].split(".")[0], rel) is not None
    client.build_db()
    rows = client.search()
    picked = rows["caption"].isin(["one 1", "one 7", "two 8", "two 12"]) | (rows["task"] == "ocr")
    client.import_collection(rows[picked], name="picked")
    return lake


@pytest.fixture(scope="module")
def plain_lake(built_lake, tmp_path_factory) -> Path:
    """The same lake without its database (most cases: a build costs seconds)."""
    lake = tmp_path_factory.mktemp("plain") / "lake"
    copy_lake(built_lake, lake)
    DatalakeClient(user_id="alice", base_path=lake).lake.db_path.unlink()
    return lake


def process(lake: Path) -> None:
    result = DatalakeProcessor(lake, num_proc=1).process_all_pending()
    assert result["failed"] == 0 and result["processed"], result


def run_child(lake: Path, action: str) -> dict:
    return json.loads(finish(start_child(LIFECYCLE_CHILD, lake, action, cwd=lake.parent)))


def kill_child_at(lake: Path, action: str, event: str, folder: str, nth: int, moment: str,
                  deep: bool = False) -> None:
    """Run `action` in a child on `lake` and SIGKILL it at the stop point (stop_at's arguments)."""
    point = json.dumps([event, str(lake / folder), nth, moment, deep])
    proc = start_child(LIFECYCLE_CHILD, lake, action, point, cwd=lake.parent)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, \
        f"the child ended ({proc.returncode}) before {event} {nth} in {folder}:\n{err}"


# -- reading a lake ---------------------------------------------------------------------------


def table_rows(path: Path) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, default=repr) for row in pq.read_table(path).to_pylist())


def store_hashes(lake: Path) -> set[str]:
    return {Path(rel).name.split(".")[0] for rel in asset_digests(lake)}


def lake_state(lake: Path) -> dict:
    """What a user sees of the lake after a retraction or collection, the ids and times of
    retractions left out."""
    ledger = {f: table_rows(lake / "ledger" / f) for f in rel_files(lake, "ledger") if f.endswith(".parquet")}
    collections = {}
    for f in rel_files(lake, "collections"):
        path = lake / "collections" / f
        if f.endswith(".parquet"):
            collections[f] = table_rows(path)
        elif f.endswith("metadata.json"):
            metadata = json.loads(path.read_text())
            for entry in metadata.get("retractions", []):
                del entry["retraction_id"], entry["retracted_at"]
            collections[f] = metadata
    records = [json.loads(p.read_text()) for p in files_under(lake / "ledger" / "retractions")]
    for record in records:
        for key in ("retraction_id", "started_at", "completed_at", "database"):
            record.pop(key)
    return {
        "rows": rows_by_partition(lake),
        "catalog files": rel_files(lake, "catalog"),
        "store": asset_digests(lake),
        "thumbnails": [f for f in rel_files(lake, "cache/thumbnails") if not f.startswith(".")],
        "ledger": ledger,
        "collections": collections,
        "retraction records": records,
        "staging": sorted(str(p.relative_to(lake)) for p in (lake / "staging").glob("*/*")),
    }


def assert_tidy(lake: Path) -> None:
    """No hidden temporary file (but lock files), no empty partition folder, every retraction complete."""
    hidden = [str(p.relative_to(lake)) for p in lake.rglob(".*")
              if p.relative_to(lake).parts[0] != "locks" and p.name != ".lock"]
    assert hidden == [], f"temporary files left behind: {hidden}"
    empty = [str(d.relative_to(lake)) for d in (lake / "catalog").rglob("*") if d.is_dir() and not any(d.iterdir())]
    assert empty == [], f"empty partition folders: {empty}"
    records = [json.loads(p.read_text()) for p in files_under(lake / "ledger" / "retractions")]
    assert all(r["completed_at"] for r in records), records


# -- 1. a retraction killed at any point, then run again --------------------------------------


@pytest.fixture(scope="module")
def retracted_reference(plain_lake, tmp_path_factory) -> Path:
    """The lake after a clean retraction of dataset one in a child."""
    lake = tmp_path_factory.mktemp("retracted") / "lake"
    copy_lake(plain_lake, lake)
    done = run_child(lake, "retract")
    assert done["database"] == "absent" and done["completed_at"]
    return lake


def test_clean_retraction_removes_dataset_one_and_only_its_own_assets(retracted_reference, plain_lake):
    lake = retracted_reference
    assert_tidy(lake)
    assert [k.split("/")[1] for k in rows_by_partition(lake)] == ["dataset=scratch", "dataset=two"]
    only_one = {digest(s) for s in ONE} - {digest(s) for s in TWO}
    assert store_hashes(plain_lake) - store_hashes(lake) == only_one
    assert not any(h in f for f in rel_files(lake, "cache/thumbnails") for h in only_one)
    state = lake_state(lake)
    (record,) = state["retraction records"]
    assert (record["rows"], sorted(a["hash"] for a in record["assets"])) == (15, sorted(only_one))
    members = state["collections"]["picked/v1/members.parquet"]
    assert sorted(json.loads(m)["caption"] for m in members) == ["two 12", "two 8"]
    (entry,) = state["collections"]["picked/v1/metadata.json"]["retractions"]
    assert (entry["members"], entry["reason"]) == (7, "consent withdrawn")
    ledger_hashes = {json.loads(row).get("hash") for rows in state["ledger"].values() for row in rows}
    assert not ledger_hashes & only_one and ledger_hashes >= {digest(s) for s in TWO}


# name -> (stop_at arguments with the folder under the lake, whether the lake has a database).
# The steps in order: the record, the part files (those of dataset one lose every row: removed),
# the collection's members, the ledger, the database, the store files and thumbnails, the record
# completed.
RETRACTION_KILLS = {
    "before-the-record": (("os.rename", "ledger/retractions", 1, "before"), False),
    "after-the-record": (("os.rename", "ledger/retractions", 1, "after"), False),
    "after-the-first-part": (("os.remove", "catalog", 1, "after", True), True),
    "after-the-members": (("os.rename", "collections/picked/v1", 1, "after"), False),
    "after-a-ledger-file": (("os.rename", "ledger/assets", 1, "after"), False),
    "during-store-deletion": (("os.remove", "assets", 2, "after", True), True),
    "before-completion": (("os.rename", "ledger/retractions", 2, "before"), False),
}


@pytest.mark.parametrize("kill_point", list(RETRACTION_KILLS))
def test_killed_retraction_then_rerun_gives_the_clean_lake(kill_point, built_lake, plain_lake,
                                                           retracted_reference, tmp_path):
    point, with_db = RETRACTION_KILLS[kill_point]
    lake = tmp_path / "lake"
    copy_lake(built_lake if with_db else plain_lake, lake)
    kill_child_at(lake, "retract", *point)
    client = DatalakeClient(user_id="carol", base_path=lake, num_proc=1)
    done = client.retract(datasets=["one"], force=True, reason="consent withdrawn")

    assert done.completed_at and done.database == ("rebuilt" if with_db else "absent")
    assert_tidy(lake)
    got, want = lake_state(lake), lake_state(retracted_reference)
    for key in want:
        assert got[key] == want[key], f"{key} differ from the clean retraction's"
    if with_db:
        assert sorted(set(client.search()["dataset"])) == ["scratch", "two"]


# -- 2. a garbage collection killed mid-way, then run again -----------------------------------


def add_leftover_upload(lake: Path) -> None:
    """What a killed uploader leaves: a folder in staging/incoming whose upload lock nobody holds."""
    folder = lake / "staging" / "incoming" / "20260101T000000000Z-deadbeef"
    folder.mkdir()
    (folder / "data.parquet").write_bytes(b"half")


@pytest.fixture(scope="module")
def collected_reference(plain_lake, tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("collected") / "lake"
    copy_lake(plain_lake, lake)
    add_leftover_upload(lake)
    report = run_child(lake, "gc")
    assert sorted(a["hash"] for a in report["assets"]) == sorted(digest(s) for s in SCRATCH[1:])
    assert [x["what"] for x in report["leftovers"]] == ["an upload that never completed"]
    return lake


GC_KILLS = {
    "after-a-ledger-file": ("os.rename", "ledger/assets", 1, "after"),
    "after-the-first-store-file": ("os.remove", "assets", 1, "after", True),
}


@pytest.mark.parametrize("kill_point", list(GC_KILLS))
def test_killed_collection_then_rerun_gives_the_clean_lake(kill_point, plain_lake, collected_reference, tmp_path):
    lake = tmp_path / "lake"
    copy_lake(plain_lake, lake)
    add_leftover_upload(lake)
    kill_child_at(lake, "gc", *GC_KILLS[kill_point])
    DatalakeClient(user_id="carol", base_path=lake).collect_garbage()

    assert_tidy(lake)
    got, want = lake_state(lake), lake_state(collected_reference)
    for key in want:
        assert got[key] == want[key], f"{key} differ from the clean collection's"
    assert not {digest(s) for s in SCRATCH[1:]} & store_hashes(lake)


# -- 3. a garbage collection racing an upload that names an orphan asset ----------------------


def lock_state(pid: int, lock: Path) -> str | None:
    """Whether process `pid` "holds" the flock of `lock`, "waits" for it, or neither (None), as
    /proc/locks says (waiters are marked `->`)."""
    inode = f":{os.stat(lock).st_ino}"
    for fields in map(str.split, Path("/proc/locks").read_text().splitlines()):
        waiting = fields[1] == "->"
        if fields[5 if waiting else 4] == str(pid) and fields[6 if waiting else 5].endswith(inode):
            return "waits" if waiting else "holds"
    return None


def waits_for_lock(pid: int, lock: Path) -> bool:
    return lock_state(pid, lock) == "waits"


@pytest.mark.parametrize("carries", ["hash", "bytes"])
def test_collection_waits_for_an_upload_naming_an_orphan_and_keeps_it(carries, plain_lake, tmp_path):
    lake = tmp_path / "lake"
    copy_lake(plain_lake, lake)
    named, other = digest(SCRATCH[1]), digest(SCRATCH[2])
    columns = {"hash": [named]} if carries == "hash" else {"image": hf_images(SCRATCH[1:2])}
    source = write_parquet(tmp_path / "labels.parquet", **columns, text=["relabelled"])
    uploader = start_child(PAUSED_UPLOADER_CHILD, lake, source, cwd=tmp_path)
    assert uploader.stdout.readline() == "paused\n"
    assert len(os.listdir(lake / "staging" / "incoming")) == 1, "the upload is staged, not yet pending"

    collector = start_child(LIFECYCLE_CHILD, lake, "gc", cwd=tmp_path)
    store_lock = DatalakeClient(user_id="carol", base_path=lake).lake.lake_lock("store")
    wait_for(collector, lambda: waits_for_lock(collector.pid, store_lock), "the collection waits for the store lock")
    uploader.stdin.write("go\n")
    uploader.stdin.flush()
    upload_id = finish(uploader).strip()
    report = json.loads(finish(collector))

    assert [a["hash"] for a in report["assets"]] == [other]
    assert named in store_hashes(lake) and other not in store_hashes(lake)
    result = DatalakeProcessor(lake, num_proc=1).process_all_pending()
    assert [u["upload_id"] for u in result["uploads"] if u["status"] == "processed"] == [upload_id]
    (part,) = (lake / "catalog" / "provider=test/dataset=scratch/task=ocr/variant=v1").glob("part-*.parquet")
    (row,) = pq.read_table(part).to_pylist()
    assert row["hash"] == named and asset_digests(lake)[row["path"]] == named


# -- 4. work going on meanwhile never fails ---------------------------------------------------


# A database build, paused once it has read the lake, just before it puts the new database in
# place (holding the `build` lock) until a line comes on stdin; then prints the datasets it holds.
PAUSED_BUILDER_CHILD = KILL_AT_RENAME + r"""
import json
from datalake import DatalakeClient

client = DatalakeClient(user_id="erin", base_path=sys.argv[1])
stop_at("os.rename", os.path.join(sys.argv[1], "db"), 1, "before", False, True)
print("ready", flush=True)
client.build_db()
print(json.dumps(sorted(set(client.search()["dataset"]))), flush=True)
"""


def test_a_retraction_changes_no_file_while_a_build_is_under_way(built_lake, tmp_path):
    lake = tmp_path / "lake"
    copy_lake(built_lake, lake)
    build_lock = DatalakeClient(user_id="carol", base_path=lake).lake.lake_lock("build")
    builder = start_child(PAUSED_BUILDER_CHILD, lake, cwd=tmp_path)
    assert builder.stdout.readline() == "paused\n"
    assert lock_state(builder.pid, build_lock) == "holds"
    retraction = start_child(LIFECYCLE_CHILD, lake, "retract", cwd=tmp_path)

    wait_for(retraction, lambda: waits_for_lock(retraction.pid, build_lock), "the retraction waits for the build")
    assert len(os.listdir(lake / "ledger" / "retractions")) == 1  # it is under way: its record is written
    assert sorted(os.listdir(lake / "catalog" / "provider=test")) == ["dataset=one", "dataset=scratch", "dataset=two"]
    builder.stdin.write("go\n")
    builder.stdin.flush()
    assert json.loads(finish(builder)) == ["one", "scratch", "two"]
    done = json.loads(finish(retraction))
    assert done["database"] == "rebuilt" and done["completed_at"]
    assert sorted(set(DatalakeClient(user_id="carol", base_path=lake).search()["dataset"])) == ["scratch", "two"]


# Processing every pending upload in a child; prints the processed upload ids.
PROCESSOR_CHILD = r"""
import json, sys
from datalake.processing.processor import DatalakeProcessor

print("ready", flush=True)
result = DatalakeProcessor(sys.argv[1], num_proc=1).process_all_pending()
print(json.dumps([u["upload_id"] for u in result["uploads"] if u["status"] == "processed"]), flush=True)
"""


def test_an_overwrite_replaces_no_part_while_a_build_is_under_way(built_lake, tmp_path):
    lake = tmp_path / "lake"
    copy_lake(built_lake, lake)
    client = DatalakeClient(user_id="carol", base_path=lake)
    scratch = lake / "catalog" / "provider=test" / "dataset=scratch" / "task=raw" / "variant=image"
    before = sorted(os.listdir(scratch))
    upload_id = client.upload_raw(write_parquet(tmp_path / "new.parquet", image=hf_images(SCRATCH[1:]),
                                                caption=["n"] * 2), provider="test", dataset="scratch", overwrite=True)
    build_lock = client.lake.lake_lock("build")
    builder = start_child(PAUSED_BUILDER_CHILD, lake, cwd=tmp_path)
    assert builder.stdout.readline() == "paused\n"
    processor = start_child(PROCESSOR_CHILD, lake, cwd=tmp_path)

    wait_for(processor, lambda: waits_for_lock(processor.pid, build_lock), "the overwrite waits for the build")
    # the parts the build listed are all still there; the new one waits under its temporary name
    assert [n for n in sorted(os.listdir(scratch)) if not n.startswith(".")] == before
    builder.stdin.write("go\n")
    builder.stdin.flush()
    assert "scratch" in json.loads(finish(builder))
    assert json.loads(finish(processor)) == [upload_id]
    assert sorted(os.listdir(scratch)) == [f"part-{upload_id}.parquet"]
    client.build_db()
    assert sorted(client.search(datasets=["scratch"])["caption"]) == ["n", "n"]


def round_until(worker, rounds: list[dict], key: str, phase: str) -> None:
    """Read the worker's rounds into `rounds` until one whose `key` ("began" or "ended") is `phase`."""
    while not rounds or rounds[-1][key] != phase:
        line = worker.stdout.readline()
        assert line, f"a worker stopped:\n{worker.stderr.read()[-3000:]}"
        rounds.append(json.loads(line))


def set_phase(path: Path, phase: str) -> None:
    """Tell the workers the phase (renamed into place: a worker never reads it half written)."""
    path.with_name(".phase").write_text(phase)
    os.replace(path.with_name(".phase"), path)


# where the retraction or collection pauses: the first store file removed (a retraction has rebuilt
# the database; a collection holds the `build` lock)
PAUSE = ("os.remove", "assets", 1, "after", True, True)


@pytest.mark.parametrize("action", ["retract", "gc"])
def test_uploads_builds_and_searches_during_a_retraction_or_collection_never_fail(action, built_lake, tmp_path):
    lake = tmp_path / "lake"
    copy_lake(built_lake, lake)
    phase = tmp_path / "phase"
    set_phase(phase, "before")
    workers = {work: start_child(WORKER_CHILD, lake, work, TESTS, cwd=tmp_path)
               for work in ("upload", "build", "search")}
    rounds: dict[str, list[dict]] = {work: [] for work in workers}
    try:
        for work in ("upload", "search"):  # under way before (a build takes seconds: it need not be)
            round_until(workers[work], rounds[work], "ended", "before")
        event, folder, *rest = PAUSE
        lifecycle = start_child(LIFECYCLE_CHILD, lake, action, json.dumps([event, str(lake / folder), *rest]),
                                cwd=tmp_path)
        assert lifecycle.stdout.readline() == "paused\n"
        set_phase(phase, "paused")
        # meanwhile an upload waits for the store lock, a build ends (unless a collection holds the
        # build lock) and a search runs
        store_lock = DatalakeClient(user_id="carol", base_path=lake).lake.lake_lock("store")
        wait_for(lifecycle, lambda: waits_for_lock(workers["upload"].pid, store_lock), "an upload waits")
        if action == "retract":
            round_until(workers["build"], rounds["build"], "ended", "paused")
        round_until(workers["search"], rounds["search"], "began", "paused")
        lifecycle.stdin.write("go\n")
        lifecycle.stdin.flush()
        done = json.loads(lifecycle.stdout.readline())
        finish(lifecycle)
        set_phase(phase, "done")
        for work in ("upload", "search"):  # each does a whole round after
            round_until(workers[work], rounds[work], "began", "done")
    finally:
        set_phase(phase, "stop")
    for work, worker in workers.items():
        rounds[work] += [json.loads(line) for line in finish(worker, timeout=120).splitlines()]

    missing = [m for r in rounds["search"] for m in r["missing"]]
    if action == "retract":
        assert done["database"] == "rebuilt" and done["rows"] == 15
        assert {dataset for dataset, _ in missing} <= {"one"}, "a search found a row whose asset is gone"
        after_rebuild = [r for r in rounds["search"] if r["began"] in ("paused", "done")]
        assert after_rebuild and all(r["missing"] == [] and "one" not in r["datasets"] for r in after_rebuild)
    else:
        assert sorted(a["hash"] for a in done["assets"]) == sorted(digest(s) for s in SCRATCH[1:])
        assert missing == [], "a search found a row whose asset the collection removed"
    assert_tidy(lake)
    stored = asset_digests(lake)
    catalog = [json.loads(row) for rows in rows_by_partition(lake).values() for row in rows]
    assert all(stored.get(r["path"]) == r["hash"] for r in catalog if r.get("hash")), "a row lost its asset"
    uploads = len(rounds["upload"])
    assert len(rows_by_partition(lake)["provider=test/dataset=three/task=raw/variant=image"]) == 5 * uploads

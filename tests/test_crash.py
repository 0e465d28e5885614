"""Crash safety and concurrency with real processes: processors killed by SIGKILL at many points
and run again, two processors on one lake at once, and uploaders killed half-way.

A clean, uninterrupted run is the reference: after any kill and a rerun the lake must be that same
lake (rows, part files, assets and their bytes, ledger), and every invariant a reader relies on
must hold (no temporary file visible, nothing stuck in staging, every `path` holding bytes that
hash to its `hash`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

from conftest import image_bytes
from datalake import DatalakeClient, DatalakeProcessor

OCR_META = {"lang": "ko", "src": "real"}
LINEAGE = ("_upload_id", "_uploaded_by", "_uploaded_at")
BIG = 800  # images in the largest upload: long enough to kill the processor in its middle

# For a child process: given a kill point (a folder of the lake, n, "before" or "after"), it
# receives SIGKILL just before, or just after, its n-th rename of an entry into that folder: the
# kill lands at that exact step of the real work, however fast or loaded the machine is.
# `stop_at` is the general form: the n-th `event` ("os.rename" counts targets, "os.remove" the
# files removed) in `folder` (or, `deep`, anywhere under it), and, with `pause`, instead of the
# kill the child prints "paused" and waits for a line on its stdin.
KILL_AT_RENAME = r"""
import os, signal, sys, threading


def stop_at(event_name, folder, nth, moment, deep=False, pause=False):
    folder, seen, lock, armed = os.path.realpath(folder), [0], threading.Lock(), set()

    def stop():
        if not pause:
            os.kill(os.getpid(), signal.SIGKILL)
        print("paused", flush=True)
        sys.stdin.readline()

    def hook(event, args):
        if event == "os.kill":
            return
        if threading.get_ident() in armed:  # that thread's next step: the event is done
            armed.discard(threading.get_ident())
            stop()
        if event != event_name:
            return
        target = os.fspath(args[1] if event == "os.rename" else args[0])
        where = os.path.dirname(target)
        if not (where == folder or deep and where.startswith(folder + os.sep)) \
                or os.path.basename(target).startswith("."):
            return  # elsewhere, or a hidden temporary name
        with lock:
            seen[0] += 1
            reached = seen[0] == nth
        if reached and moment == "before":
            stop()
        if reached and moment == "after":
            armed.add(threading.get_ident())

    sys.addaudithook(hook)


def kill_at_rename(folder, nth, moment):
    stop_at("os.rename", folder, nth, moment)
"""
# A processor in a child process: prints "ready" once imported, optionally waits for a line on
# stdin (to start two at the same moment), then prints the ids of the uploads it processed.
PROCESSOR_CHILD = KILL_AT_RENAME + r"""
import json
from datalake import DatalakeProcessor

processor = DatalakeProcessor(sys.argv[1], num_proc=int(sys.argv[2]))
if len(sys.argv) > 4:
    kill_at_rename(os.path.join(sys.argv[1], sys.argv[4]), int(sys.argv[5]), sys.argv[6])
print("ready", flush=True)
if sys.argv[3] == "wait":
    sys.stdin.readline()
result = processor.process_all_pending()
print(json.dumps([u["upload_id"] for u in result["uploads"] if u["status"] == "processed"]), flush=True)
"""

# An uploader of the bulk data in a child; with a third argument it is killed just before its
# upload's folder would move to staging/pending (every file of the upload written).
UPLOADER_CHILD = KILL_AT_RENAME + r"""
from datalake import DatalakeClient
client = DatalakeClient(user_id="bob", base_path=sys.argv[1], num_proc=1)
if len(sys.argv) > 3:
    kill_at_rename(os.path.join(sys.argv[1], "staging", "pending"), 1, "before")
print("ready", flush=True)
print(client.upload_raw(sys.argv[2], provider="test", dataset="bulk"), flush=True)
"""


# -- data -------------------------------------------------------------------------------------


def digest(seed: int) -> str:
    return xxhash.xxh3_128_hexdigest(image_bytes(seed))


def write_parquet(path: Path, **columns) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def hf_images(seeds) -> list[dict]:
    return [{"bytes": image_bytes(s), "path": f"img_{s}.png"} for s in seeds]


def image_files(folder: Path, seeds) -> list[str]:
    """Write one PNG file per seed into `folder`; their names relative to `folder`'s parent."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        (folder / f"{s}.png").write_bytes(image_bytes(s))
    return [f"{folder.name}/{s}.png" for s in seeds]


# -- reading a lake ---------------------------------------------------------------------------


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def rel_files(lake: Path, folder: str) -> list[str]:
    return [str(p.relative_to(lake / folder)) for p in files_under(lake / folder)]


def stage_contents(lake: Path, stage: str) -> list[str]:
    return sorted(os.listdir(lake / "staging" / stage))


def rows_by_partition(lake: Path, lineage: bool = True) -> dict[str, list[str]]:
    """Each partition's rows as sorted canonical JSON (with or without the lineage columns)."""
    out: dict[str, list[str]] = {}
    for part in files_under(lake / "catalog"):
        if not part.name.startswith("part-"):
            continue
        key = str(part.parent.relative_to(lake / "catalog"))
        for row in pq.read_table(part).to_pylist():
            if not lineage:
                row = {k: v for k, v in row.items() if k not in LINEAGE}
            out.setdefault(key, []).append(json.dumps(row, sort_keys=True, default=repr))
    return {k: sorted(v) for k, v in sorted(out.items())}


def asset_digests(lake: Path) -> dict[str, str]:
    """Every stored asset (relative to assets/) with the xxh3-128 of its bytes."""
    return {str(p.relative_to(lake / "assets")): xxhash.xxh3_128_hexdigest(p.read_bytes())
            for p in files_under(lake / "assets") if not p.name.startswith(".")}


def ledger_uploads(lake: Path, drop: tuple[str, ...] = ("processed_at",)) -> dict[str, dict]:
    rows = {}
    for path in files_under(lake / "ledger" / "uploads"):
        (row,) = pq.read_table(path).to_pylist()
        rows[path.name] = {k: v for k, v in row.items() if k not in drop}
    return rows


def processed_lake(lake: Path) -> dict:
    """What a user sees of a processed lake, for comparing two lakes."""
    return {
        "catalog files": rel_files(lake, "catalog"),
        "rows": rows_by_partition(lake),
        "assets": asset_digests(lake),
        "ledger files": rel_files(lake, "ledger"),
        "failed uploads": stage_contents(lake, "failed"),
    }


def assert_lake_invariants(lake: Path) -> None:
    """What every reader may rely on once no processor is running."""
    for stage in ("incoming", "pending", "processing", "trash"):
        assert stage_contents(lake, stage) == [], f"staging/{stage} is not empty"
    stray = [str(p.relative_to(lake)) for top in ("catalog", "assets", "ledger")
             for p in files_under(lake / top) if p.name.startswith(".")]
    assert stray == [], f"temporary files left behind: {stray}"
    not_parts = [f for f in rel_files(lake, "catalog")
                 if not (Path(f).name.startswith("part-") and f.endswith(".parquet"))]
    assert not_parts == [], f"files in catalog/ that are not part files: {not_parts}"
    assets = asset_digests(lake)
    for rel, content_hash in assets.items():
        assert Path(rel).name.split(".", 1)[0] == content_hash, f"asset {rel} holds other bytes"
        assert rel == f"{content_hash[:2]}/{Path(rel).name}", rel
    for part in files_under(lake / "catalog"):
        upload_id = part.name[len("part-"):-len(".parquet")]
        rows = pq.read_table(part).to_pylist()
        assert rows, f"{part} is empty"
        assert {r["_upload_id"] for r in rows} == {upload_id}, f"{part} holds rows of other uploads"
        for row in rows:
            if row.get("hash") is not None:
                assert assets.get(row["path"]) == row["hash"], f"row of {part.name} points at {row['path']}"
    for key, rows in rows_by_partition(lake, lineage=False).items():
        assert len(rows) == len(set(rows)), f"duplicate rows in {key}"


def assert_ledger_counts_match_the_store(lake: Path) -> None:
    """The ledger's per-upload figures add up to what the store and the catalog hold."""
    ledger = ledger_uploads(lake)
    assets = [p for p in files_under(lake / "assets") if not p.name.startswith(".")]
    assert sum(r["new_assets"] for r in ledger.values()) == len(assets), "ledger new_assets != assets stored"
    assert sum(r["new_bytes"] for r in ledger.values()) == sum(p.stat().st_size for p in assets)
    for part in files_under(lake / "catalog"):
        upload_id = part.name[len("part-"):-len(".parquet")]
        assert pq.read_metadata(part).num_rows == ledger[f"{upload_id}.parquet"]["rows_written"]


ATTRIBUTION = ("new_assets", "reused_assets", "new_bytes")


def assert_same_ledger(lake: Path, reference: Path, attribution: bool = True) -> None:
    """The ledger of `lake` says what the reference's says, but for when uploads were processed
    (and, unless `attribution`, which upload brought an asset first)."""
    drop = ("processed_at",) + (() if attribution else ATTRIBUTION)
    got, want = ledger_uploads(lake, drop), ledger_uploads(reference, drop)
    assert sorted(got) == sorted(want)
    differences = {name: {k: (v, want[name][k]) for k, v in row.items() if v != want[name][k]}
                   for name, row in got.items()}
    differences = {name: d for name, d in differences.items() if d}
    assert differences == {}, f"ledger/uploads rows differ from the clean run's, as (got, clean): {differences}"
    for name in rel_files(reference, "ledger/assets"):
        assert (lake / "ledger/assets" / name).read_bytes() == (reference / "ledger/assets" / name).read_bytes()


# -- processes --------------------------------------------------------------------------------


def start_child(script: str, *args: object, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALAKE_")}
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=cwd, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    assert line == "ready\n", f"child did not start: {line!r} {proc.stderr.read() if not line else ''}"
    return proc


def start_processor(lake: Path, num_proc: int = 1, wait: bool = False,
                    kill_point: tuple = ()) -> subprocess.Popen:
    """A processor child on `lake`; with a kill point (folder, n, moment) it is killed there."""
    return start_child(PROCESSOR_CHILD, lake, num_proc, "wait" if wait else "go", *kill_point,
                       cwd=lake.parent)


def finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The rest of a child's output once it ends (killed after `timeout` s), checked it succeeded.

    Read through the same buffers as `readline` (communicate with a timeout reads the pipes
    themselves and would lose a line the buffer already holds); stderr in a thread, so that a
    child writing much there never blocks."""
    proc.stdin.close()
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))
    timer = threading.Timer(timeout, proc.kill)
    reader.start()
    timer.start()
    try:
        out = proc.stdout.read()
        proc.wait()
        reader.join()
    finally:
        timer.cancel()
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{''.join(err)}"
    return out


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def kill_after(proc: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    assert proc.poll() is None, "the child finished before it could be killed: the workload is too small"
    kill(proc)


def wait_for(proc: subprocess.Popen, reached: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Return as soon as `reached()` sees the lake in the wanted state while the child still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if reached():
                return
        except FileNotFoundError:  # the child renamed something while we looked
            pass
    proc.kill()
    proc.communicate()
    pytest.fail(f"the child ended (or {timeout} s passed) before {what}")


def kill_when(proc: subprocess.Popen, reached: Callable[[], bool], what: str) -> None:
    """SIGKILL the child as soon as the lake is in the state `reached()` looks for."""
    wait_for(proc, reached, what)
    kill(proc)


def copy_lake(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=shutil.copyfile)  # no copystat: twice as fast


def run_processor_in_process(lake: Path, num_proc: int = 1) -> dict:
    return DatalakeProcessor(lake, num_proc=num_proc).process_all_pending()


# -- the staged lake that processors are killed on --------------------------------------------


def stage_crash_scenario(root: Path) -> Path:
    """A lake with processed data and ten pending uploads of every kind; its path."""
    lake = root / "lake"
    src = root / "src"
    client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=1)
    # already landed before the processor runs: raw images a task upload names by hash,
    # and a partition an overwrite=True upload will replace
    client.upload_raw(write_parquet(src / "base.parquet", image=hf_images(range(40)),
                                    caption=[f"base {i}" for i in range(40)]),
                      provider="test", dataset="base")
    run_processor_in_process(lake)

    scans = write_parquet(src / "scans.parquet", image=hf_images(range(1000, 1000 + BIG)),
                          caption=[f"scan {i}" for i in range(1000, 1000 + BIG)])
    client.upload_raw(scans, provider="test", dataset="scans")  # -> test/scans/raw/image
    # the same partition by file paths: 100 images (and rows) are also in `scans`
    seeds = range(1000 + BIG - 100, 1000 + BIG + 150)
    client.upload_raw(write_parquet(src / "files.parquet", image_path=image_files(src / "imgs", seeds),
                                    caption=[f"scan {i}" for i in seeds]), provider="test", dataset="scans")
    # documents and images by path -> test/scans/raw/mixed
    docs = src / "docs"
    docs.mkdir()
    for i in range(120):
        (docs / f"doc{i}.txt").write_text(f"document {i}\n" * (i + 1))
    mixed = [f"docs/doc{i}.txt" for i in range(120)] + image_files(src / "more", range(3000, 3080))
    client.upload_raw(write_parquet(src / "mixed.parquet", file=mixed, n=list(range(len(mixed)))),
                      provider="test", dataset="scans")
    # task labels carrying the raw images' bytes (same hashes), then more labels to the same
    # partition, half of them identical to the first ones
    client.upload_task(write_parquet(src / "ocr1.parquet", image=hf_images(range(1000, 1300)),
                                     text=[f"text {i}" for i in range(1000, 1300)]),
                       provider="test", dataset="scans", task="ocr", variant="v1", meta=OCR_META)
    client.upload_task(write_parquet(src / "ocr2.parquet", image=hf_images(range(1150, 1450)),
                                     text=[f"text {i}" for i in range(1150, 1450)]),
                       provider="test", dataset="scans", task="ocr", variant="v1", meta=OCR_META)
    # relabelling assets already in the lake by hash
    client.upload_task(write_parquet(src / "kie.parquet", hash=[digest(s) for s in range(40)],
                                     fields=[json.dumps({"total": s}) for s in range(40)]),
                       provider="test", dataset="base", task="kie", variant="by_hash", meta=OCR_META)
    # the same data again: lands nothing
    client.upload_raw(src / "files.parquet", provider="test", dataset="scans")
    # a column type clash with test/scans/raw/image: ends in staging/failed
    client.upload_raw(write_parquet(src / "clash.parquet", image=hf_images(range(5000, 5050)),
                                    caption=list(range(50))), provider="test", dataset="scans")
    # replaces the partition that was landed before
    client.upload_raw(write_parquet(src / "replace.parquet", image=hf_images(range(6000, 6100)),
                                    caption=[f"new {i}" for i in range(100)]),
                      provider="test", dataset="base", overwrite=True)
    # and a row added to the replaced partition afterwards
    client.upload_raw(write_parquet(src / "after.parquet", image=hf_images([6100]), caption=["after"]),
                      provider="test", dataset="base")
    assert len(stage_contents(lake, "pending")) == 10
    return lake


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    return stage_crash_scenario(tmp_path_factory.mktemp("staged"))


@pytest.fixture(scope="module")
def reference(staged, tmp_path_factory) -> Path:
    """The staged lake processed cleanly in-process."""
    lake = tmp_path_factory.mktemp("reference") / "lake"
    copy_lake(staged, lake)
    result = run_processor_in_process(lake)
    assert (result["processed"], result["failed"]) == (9, 1)
    return lake


@pytest.fixture(scope="module")
def reference_view(reference) -> dict:
    return processed_lake(reference)


@pytest.fixture(scope="module")
def child_clean(staged, tmp_path_factory) -> Path:
    """The staged lake processed cleanly by a child process."""
    lake = tmp_path_factory.mktemp("child-clean") / "lake"
    copy_lake(staged, lake)
    finish(start_processor(lake))
    return lake


def test_reference_lake_is_what_the_uploads_describe(reference):
    lake = reference
    rows = rows_by_partition(lake)
    assert {k: len(v) for k, v in rows.items()} == {
        "provider=test/dataset=base/task=kie/variant=by_hash": 40,
        "provider=test/dataset=base/task=raw/variant=image": 101,  # 40 replaced by 100, then 1 more
        "provider=test/dataset=scans/task=ocr/variant=v1": 450,  # 300 + 300 - 150 identical
        "provider=test/dataset=scans/task=raw/variant=image": BIG + 150,  # the re-upload adds nothing
        "provider=test/dataset=scans/task=raw/variant=mixed": 200,
    }
    (failed,) = stage_contents(lake, "failed")
    error = json.loads((lake / "staging" / "failed" / failed / "error.json").read_text())
    assert "column 'caption'" in error["error"]
    assert len(asset_digests(lake)) == 40 + BIG + 150 + 200 + 101
    assert_lake_invariants(lake)
    assert_ledger_counts_match_the_store(lake)


def test_clean_run_in_a_child_process_gives_the_reference_lake(child_clean, reference, reference_view):
    assert processed_lake(child_clean) == reference_view
    assert_same_ledger(child_clean, reference)


# -- 1. a processor killed at any point, then run again ---------------------------------------


def _upload_dirs(lake: Path) -> list[Path]:
    return list((lake / "staging" / "processing").iterdir())


def assets_half_stored(lake: Path, new_assets: dict[str, list[Path]]) -> Callable[[], bool]:
    """An upload in staging/processing whose new assets are partly in the store."""
    def reached() -> bool:
        for folder in _upload_dirs(lake):
            wanted = new_assets.get(folder.name, [])
            if 0 < sum(p.exists() for p in wanted) < len(wanted):
                return True
        return False
    return reached


def pending_facts(lake: Path) -> dict[str, list[Path]]:
    """Per pending upload: the store paths of the assets it brings that the lake lacks."""
    new_assets = {}
    for folder in (lake / "staging" / "pending").iterdir():
        carried = pq.read_table(folder / "assets.parquet")["path"].to_pylist()  # the upload's asset facts
        targets = [lake / "assets" / relpath for relpath in carried]
        new_assets[folder.name] = [t for t in targets if not t.exists()]
    return new_assets


# Folders whose entries the processor renames, one step of an upload each (the kill points'
# anchors): an upload is claimed (pending -> processing), its part file takes its name in its
# partition, its ledger entry takes its name (it has landed), its staging folder is set aside in
# trash/ for removal.
CLAIMED = "staging/processing"
SCANS_PART = "catalog/provider=test/dataset=scans/task=raw/variant=image"
LEDGER = "ledger/uploads"
TRASH = "staging/trash"

# name -> (workers of the killed processor, its kills in a row, each by a new processor). A kill
# is either an exact step, (folder, n, "before" or "after"): the processor's n-th rename into that
# folder (counted from its start, so an upload it lands again counts too), or a state of the lake
# the test watches for, and a delay after it: "start" (the child has imported and begins),
# "assets-half-stored" (an upload's new assets are partly in the store). With one worker the
# uploads go in a fixed order: test/base/kie, replace, after, ocr1, ocr2, scans, files,
# files-again (lands no part), clash (fails), mixed.
KILLS = {
    "at-start": (1, [("start", 0.0)]),
    "50ms-in": (1, [("start", 0.05)]),
    "after-2-uploads": (1, [(CLAIMED, 3, "after")]),
    "after-4-uploads": (1, [(TRASH, 4, "after")]),
    "after-8-uploads": (1, [(LEDGER, 8, "before")]),
    "two-workers-after-3-uploads": (2, [(LEDGER, 3, "after")]),
    # the 1st upload's ledger entry in place, its staging folder not yet gone; then an upload's
    # ledger entry written but not renamed into place; then ocr2's staging folder in trash/ with
    # its copies of assets that ocr1 stored first
    "three-kills-in-a-row": (1, [(LEDGER, 1, "after"), (LEDGER, 2, "before"), (TRASH, 4, "after")]),
    "assets-half-stored": (1, [("assets-half-stored", 0.0)]),
    "part-landed-upload-unfinished": (1, [(SCANS_PART, 1, "after")]),
}


def kill_processor(lake: Path, num_proc: int, kill_at: tuple) -> None:
    """Run a processor child on `lake` and SIGKILL it at `kill_at` (see KILLS)."""
    if kill_at[0] == "start":
        kill_after(start_processor(lake, num_proc), kill_at[1])
    elif kill_at[0] == "assets-half-stored":
        new_assets = pending_facts(lake)
        proc = start_processor(lake, num_proc)
        wait_for(proc, assets_half_stored(lake, new_assets), f"the kill point {kill_at}")
        kill(proc)
    else:
        proc = start_processor(lake, num_proc, kill_point=kill_at)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, \
            f"the processor ended ({proc.returncode}) without reaching the kill point {kill_at}:\n{err}"


@pytest.fixture(scope="module", params=list(KILLS))
def crashed(request, staged, tmp_path_factory) -> Path:
    """The staged lake, its processor killed as KILLS says, then run again to completion."""
    num_proc, kills = KILLS[request.param]
    lake = tmp_path_factory.mktemp(f"crash-{request.param}") / "lake"
    copy_lake(staged, lake)
    for kill_at in kills:
        kill_processor(lake, num_proc, kill_at)
    assert stage_contents(lake, "pending") or stage_contents(lake, "processing"), "nothing was left to redo"
    run_processor_in_process(lake)
    return lake


def test_killed_processor_then_rerun_gives_the_clean_lake(crashed, reference_view):
    assert_lake_invariants(crashed)
    got, want = processed_lake(crashed), reference_view
    for key in want:
        assert got[key] == want[key], f"{key} differ from the clean run's"


def test_killed_processor_then_rerun_keeps_the_ledger_of_the_clean_run(request, crashed, reference):
    # which upload brings an asset first is a race between workers; one worker has one order
    one_worker = KILLS[request.node.callspec.params["crashed"]][0] == 1
    assert_same_ledger(crashed, reference, attribution=one_worker)
    assert_ledger_counts_match_the_store(crashed)


# -- 2. two processors at once ----------------------------------------------------------------


def stage_concurrent_scenario(root: Path) -> tuple[Path, list[str]]:
    """Twelve pending uploads over three partitions, with shared images and identical rows."""
    lake = root / "lake"
    client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=1)
    ids = []
    for k in range(12):
        seeds = range(k * 30, k * 30 + 120)  # images shared with the next 3 uploads, rows with the 3rd next
        data = write_parquet(root / "src" / f"u{k}.parquet", image=hf_images(seeds),
                             label=[f"label {s}" for s in seeds])
        if k % 3 == 2:
            ids.append(client.upload_task(data, provider="test", dataset="shared", task="ocr",
                                          variant="v1", meta=OCR_META))
        else:
            ids.append(client.upload_raw(data, provider="test", dataset=f"set{k % 3}"))
    return lake, ids


@pytest.fixture(scope="module")
def concurrent_staged(tmp_path_factory) -> tuple[Path, list[str]]:
    return stage_concurrent_scenario(tmp_path_factory.mktemp("concurrent"))


@pytest.fixture(scope="module")
def concurrent_reference(concurrent_staged, tmp_path_factory) -> Path:
    staged, ids = concurrent_staged
    lake = tmp_path_factory.mktemp("concurrent-ref") / "lake"
    copy_lake(staged, lake)
    assert run_processor_in_process(lake)["processed"] == len(ids)
    return lake


@pytest.mark.parametrize("num_proc", [1, 2], ids=["1-worker-each", "2-workers-each"])
def test_two_processors_at_once_land_every_upload_exactly_once(concurrent_staged, concurrent_reference,
                                                               tmp_path, num_proc):
    staged, ids = concurrent_staged
    lake = tmp_path / "lake"
    copy_lake(staged, lake)
    first, second = start_processor(lake, num_proc, wait=True), start_processor(lake, num_proc, wait=True)
    for proc in (first, second):
        proc.stdin.write("go\n")
        proc.stdin.flush()
    landed = [json.loads(finish(proc)) for proc in (first, second)]

    assert sorted(landed[0] + landed[1]) == sorted(ids), "every upload is processed by exactly one processor"
    assert_lake_invariants(lake)
    parts = [p.name for p in files_under(lake / "catalog")]
    assert len(parts) == len(set(parts)), "an upload's part file is in two partitions"
    assert sorted(f.removesuffix(".parquet") for f in os.listdir(lake / "ledger" / "uploads")) == sorted(ids)
    assert rows_by_partition(lake, lineage=False) == rows_by_partition(concurrent_reference, lineage=False)
    assert asset_digests(lake) == asset_digests(concurrent_reference)
    assert_ledger_counts_match_the_store(lake)


# -- 3. uploaders killed half-way -------------------------------------------------------------


BULK = 1500


@pytest.fixture(scope="module")
def bulk_source(tmp_path_factory) -> Path:
    """A parquet file naming BULK image files beside it."""
    root = tmp_path_factory.mktemp("bulk")
    seeds = range(10000, 10000 + BULK)
    return write_parquet(root / "bulk.parquet", image_path=image_files(root / "files", seeds),
                         caption=[f"bulk {s}" for s in seeds])


@pytest.fixture
def small_lake(tmp_path) -> Path:
    """A lake with one processed upload, which nothing below may disturb."""
    lake = tmp_path / "lake"
    client = DatalakeClient(user_id="alice", base_path=lake, create_dirs=True, num_proc=1)
    client.upload_raw(write_parquet(tmp_path / "first.parquet", image=hf_images(range(20)),
                                    caption=[str(i) for i in range(20)]), provider="test", dataset="first")
    run_processor_in_process(lake)
    return lake


def staged_files(lake: Path, at_least: int) -> Callable[[], bool]:
    """An upload in staging/incoming that has written `at_least` files."""
    def reached() -> bool:
        return any(len(files_under(folder)) >= at_least for folder in (lake / "staging" / "incoming").iterdir())
    return reached


@pytest.mark.parametrize("at_least", [0, 300, None],
                         ids=["folder-just-made", "300-files-staged", "all-files-and-data-staged"])
def test_killed_uploader_leaves_nothing_pending_and_the_next_run_cleans_up(small_lake, bulk_source, at_least):
    lake = small_lake
    before = processed_lake(lake)
    if at_least is None:  # killed by its own hook, its last step left: the move to pending
        uploader = start_child(UPLOADER_CHILD, lake, bulk_source, "kill", cwd=lake.parent)
        uploader.communicate(timeout=120)
        assert uploader.returncode == -signal.SIGKILL
        assert len(files_under(lake / "staging" / "incoming")) >= BULK  # the data and every image
    else:
        uploader = start_child(UPLOADER_CHILD, lake, bulk_source, cwd=lake.parent)
        kill_when(uploader, staged_files(lake, at_least), f"{at_least} files were staged")

    assert stage_contents(lake, "pending") == []
    assert len(stage_contents(lake, "incoming")) == 1  # the kill did land mid-upload
    assert processed_lake(lake) == before

    result = run_processor_in_process(lake)
    assert result["uploads"] == []
    assert_lake_invariants(lake)
    assert processed_lake(lake) == before

    # the user uploads again and everything lands
    DatalakeClient(user_id="bob", base_path=lake, num_proc=1).upload_raw(bulk_source, provider="test",
                                                                          dataset="bulk")
    run_processor_in_process(lake)
    assert len(rows_by_partition(lake)["provider=test/dataset=bulk/task=raw/variant=image"]) == BULK
    assert_lake_invariants(lake)


def test_processor_started_during_an_upload_leaves_that_upload_alone(small_lake, bulk_source):
    """A processor (e.g. the server's job) that starts while someone is uploading must not
    take the live upload for the leftover of a dead one."""
    lake = small_lake
    uploader = start_child(UPLOADER_CHILD, lake, bulk_source, cwd=lake.parent)
    wait_for(uploader, staged_files(lake, 200), "200 files were staged")
    run_processor_in_process(lake)
    out, err = uploader.communicate(timeout=60)
    assert uploader.returncode == 0, f"the upload failed:\n{err[-2000:]}"
    assert stage_contents(lake, "pending") == [out.strip()]
    run_processor_in_process(lake)
    assert len(rows_by_partition(lake)["provider=test/dataset=bulk/task=raw/variant=image"]) == BULK
    assert_lake_invariants(lake)

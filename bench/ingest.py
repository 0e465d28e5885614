"""Ingest benchmark: upload + process N distinct real-looking JPEGs and compare with `cp -r`.

The workload is N distinct JPEG files of about --kb KB (noisy gradients, boxes and text, each
one stamped with its own number so no two files share pixels or bytes) in one folder, listed in
a parquet file (`image_path` relative to it, `label` a dict with the OCR text), plus a second
dataset whose rows reuse --dup-fraction of the same images, to show cross-dataset dedup. The
files are cached in --workdir and made again only when the count or size changes.

The two uploads (`upload_raw` with provider `test`) and `trigger_processing` run in a fresh
lake inside a child process, so that image generation does not count towards its peak RSS (read
from the child's /proc/self/status VmHWM: `ru_maxrss` of a spawned child also counts the pages
of the parent it was forked from); its worker processes' VmHWM is read likewise. Its time is
compared with `cp -r` of the image folder to a fresh folder on the same file system. Caches are
warm for both: every image file is read once before the measurements, and `sync` runs before
each one, so neither pays for the other's write-back. Each run copies and uploads into new
folders and nothing is deleted until the end:
on ext4 without a journal (this VM's file system) file creation is several times slower for up
to six minutes after many deletes, so the benchmark also waits out its own recent deletes.

The floor is the file work the lake's contract asks of any ingest of the same files, alone: read,
hash, write under a hidden name in the store's `ab/` folder and rename, in as many processes as
datalake uses, with no rows or checks. It shows how far datalake is from what the layout itself
costs.

`--memory-check GB` instead builds an upload of GB gigabytes of big images (about 4 MB each
unless --kb is given) to check peak RSS on a large upload; everything it writes stays in
--workdir and is removed afterwards unless --keep.

Usage: python bench/ingest.py [--images 10000] [--kb 40] [--dup-fraction 0.1] [--num-proc N]
       python bench/ingest.py --memory-check 5
Sizes are in MB of 2**20 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import others_cpu_s

MB = 1024 * 1024
GENERATOR_VERSION = 1  # bump when the generated images change, so caches are rebuilt
MEMORY_CHECK_KB = 4096
SETTLE_S = 370  # ext4's recently_deleted(): 60 s, plus 300 s while the inode's table block is dirty
DELETED_STAMP = ".deleted-at"
TARGET_RATIO, AIM_RATIO, TARGET_RSS_MB = 1.5, 1.2, 1024
WORDS = ("invoice", "receipt", "total", "amount", "date", "tax", "qty", "price", "customer", "order",
         "address", "Seoul", "payment", "due", "subtotal", "discount", "VAT", "item", "No.", "KRW")


@dataclass
class Workload:
    """A generated image folder and the parquet files that upload it."""

    folder: Path
    images: int
    image_bytes: int
    generated_s: float | None  # None: taken from the cache

    @property
    def image_dir(self) -> Path:
        return self.folder / "images"

    @property
    def main_parquet(self) -> Path:
        return self.folder / "docs.parquet"

    @property
    def dup_parquet(self) -> Path:
        return self.folder / "docs_relabelled.parquet"


# -- generating the images --------------------------------------------------------------------


def base_image(seed: int, scale: float) -> tuple[Any, list[str]]:
    """A document-like picture (gradient, sensor noise, boxes, lines of text) and its text lines."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rnd = random.Random(seed)
    width, height = int(rnd.randint(360, 560) * scale), int(rnd.randint(280, 440) * scale)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [rnd.uniform(170, 255) + rnd.uniform(-80, 0) * (x / width if c % 2 else y / height)
                for c in range(3)]
    pixels = np.stack(channels, axis=-1)
    pixels += np.random.default_rng(seed).normal(0, rnd.uniform(4, 14), pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rnd.randint(3, 8)):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        box = [x0, y0, x0 + rnd.randint(20, width // 2), y0 + rnd.randint(10, height // 3)]
        draw.rectangle(box, outline=tuple(rnd.randrange(256) for _ in range(3)), width=max(1, int(2 * scale)))
    font = ImageFont.load_default(size=int(rnd.randint(12, 20) * scale))
    lines = []
    line_height = height // 14
    for row in range(rnd.randint(4, 12)):
        text = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 5))) + f" {rnd.randint(1, 99999):,}"
        draw.text((rnd.randrange(8, width // 3), line_height * (row + 1)), text, fill=(rnd.randrange(90),) * 3,
                  font=font)
        lines.append(text)
    return image, lines


def jpeg(image: Any, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def quality_for(image: Any, target_bytes: int) -> int:
    """The JPEG quality whose file size comes closest to `target_bytes` (binary search)."""
    low, high = 20, 97
    while low < high:
        mid = (low + high) // 2
        if len(jpeg(image, mid)) < target_bytes:
            low = mid + 1
        else:
            high = mid
    return low


def generate_images(folder: Path, count: int, kb: int) -> list[dict[str, Any]]:
    """Write `count` distinct JPEGs of about `kb` KB to `folder`; one row (path, id, label) per image.

    A pool of base pictures is drawn once each; every file is its base with its own number
    stamped on it, encoded at a quality jittered around the one that gives the target size.
    Bases are handled one at a time, so memory stays at one base picture whatever the size.
    """
    import xxhash
    from PIL import ImageDraw, ImageFont

    scale = math.sqrt(kb / 40)
    pool = max(1, min(400, count // 25))
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any] | None] = [None] * count
    digests: set[str] = set()
    for b in range(pool):
        base, lines = base_image(GENERATOR_VERSION * 100_003 + b, scale)
        quality = quality_for(base, kb * 1024)
        font = ImageFont.load_default(size=int(14 * scale))
        rnd = random.Random(b)
        for i in range(b, count, pool):
            image = base.copy()
            stamp = f"#{i:06d}"
            x, y = rnd.randrange(base.width * 2 // 3), rnd.randrange(base.height - int(24 * scale))
            ImageDraw.Draw(image).text((x, y), stamp, fill=(200, 30, 30), font=font)
            data = jpeg(image, max(20, min(97, quality + rnd.randint(-3, 3))))
            while xxhash.xxh3_128_hexdigest(data) in digests:  # never seen; keeps the bytes distinct
                data += b"\0"  # bytes after the JPEG end marker are ignored by decoders
            digests.add(xxhash.xxh3_128_hexdigest(data))
            name = f"doc_{i:06d}.jpg"
            (folder / name).write_bytes(data)
            rows[i] = {"image_path": f"images/{name}", "doc_id": f"doc_{i:06d}",
                       "label": {"text": "\n".join([*lines, stamp]), "lang": "en", "source": "generated"}}
    return [r for r in rows if r is not None]


def prepare_workload(folder: Path, count: int, kb: int, dup_fraction: float, workdir: Path) -> Workload:
    """The cached workload in `folder`, made again if its count or size differs; the parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta_path = folder / "workload.json"
    meta = {"version": GENERATOR_VERSION, "images": count, "kb": kb}
    generated_s = None
    cached = meta_path.is_file() and json.loads(meta_path.read_text()) == meta
    if not cached:
        remove(folder, workdir)
        start = time.perf_counter()
        rows = generate_images(folder / "images", count, kb)
        pq.write_table(pa.Table.from_pylist(rows), folder / "docs.parquet")
        generated_s = time.perf_counter() - start
        meta_path.write_text(json.dumps(meta))
    workload = Workload(folder, count, 0, generated_s)
    workload.image_bytes = sum(e.stat().st_size for e in os.scandir(workload.image_dir))

    # The second dataset: some of the same images again, relabelled (made anew each run, it is cheap).
    rows = pq.read_table(workload.main_parquet).to_pylist()
    reused = random.Random(1).sample(rows, round(dup_fraction * len(rows)))
    for row in reused:
        row["label"] = {**row["label"], "source": "relabelled"}
    workload.dup_parquet.unlink(missing_ok=True)
    if reused:
        pq.write_table(pa.Table.from_pylist(reused), workload.dup_parquet)
    return workload


# -- measuring -------------------------------------------------------------------------------


def warm_cache(folder: Path) -> None:
    """Read every file once, so both measurements start with the sources in the page cache."""
    for entry in os.scandir(folder):
        with open(entry.path, "rb") as f:
            while f.read(8 * MB):
                pass


def sync() -> None:
    """Flush dirty pages, so a measurement does not pay for the previous one's write-back."""
    os.sync()


def remove(path: Path, workdir: Path) -> None:
    """Delete a folder tree and note the time, so that the next measurement waits (see `settle`)."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        (workdir / DELETED_STAMP).touch()


def settle(workdir: Path) -> None:
    """Flush dirty pages, then wait until SETTLE_S seconds have passed since the last big delete.

    ext4 without a journal (as on this VM) looks at every free inode it passes when it allocates
    one and skips those freed in the last 60 s, or 360 s when their inode-table block is dirty
    (which new files in the same block make it). After deleting a lake, creating files is several
    times slower for minutes, which would slow whichever measurement came next.
    """
    sync()
    stamp = workdir / DELETED_STAMP
    wait = stamp.stat().st_mtime + SETTLE_S - time.time() if stamp.exists() else 0
    if wait > 0:
        print(f"  (waiting {wait:.0f} s: creating files is slow for minutes after deleting many)")
        time.sleep(wait)


def time_cp(source: Path, dest: Path) -> float:
    """Seconds of `cp -r source dest`, dest a new folder on the same file system."""
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(source), str(dest)], check=True)
    return time.perf_counter() - start


def time_floor(source: Path, store: Path, workers: int) -> float:
    """Seconds of the file work the lake's contract asks of any ingest, and nothing else: each file
    read, hashed (xxh3-128), written under a hidden name in the store's `ab/` folder (the 256 of
    them made beforehand, as `init` does) and renamed to `<hash>.jpg`, split over `workers`
    processes started beforehand."""
    names = sorted(os.listdir(source))
    for i in range(256):
        (store / f"{i:02x}").mkdir(parents=True)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(time.sleep, [0.1] * workers))  # started and imported before the clock starts
        start = time.perf_counter()
        list(pool.map(floor_share, [(str(source), str(store), names[i::workers]) for i in range(workers)]))
        return time.perf_counter() - start


def floor_share(job: tuple[str, str, list[str]]) -> None:
    import xxhash

    source, store, names = job
    for name in names:
        fd = os.open(f"{source}/{name}", os.O_RDONLY)
        data = os.read(fd, os.fstat(fd).st_size + 1)
        os.close(fd)
        digest = xxhash.xxh3_128_hexdigest(data)
        folder = f"{store}/{digest[:2]}"
        fd = os.open(f"{folder}/.{digest}.jpg.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.close(fd)
        os.rename(f"{folder}/.{digest}.jpg.tmp", f"{folder}/{digest}.jpg")


def time_ingest(lake: Path, uploads: list[tuple[str, str]], num_proc: int | None, tmp: Path) -> dict[str, Any]:
    """Upload + process into a new lake, in a spawned child process (see run_ingest)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        run = child.submit(run_ingest, str(lake), uploads, num_proc, str(tmp)).result()
    failed = [s for s in run["result"]["uploads"] if s["status"] != "processed"]
    if failed:
        raise SystemExit(f"processing failed: {failed}")
    run["assets_stored"] = count_files(lake / "assets")
    return run


def peak_rss_kb() -> int:
    """This process's peak resident set size in KB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_ingest(lake: str, uploads: list[tuple[str, str]], num_proc: int | None, tmp: str) -> dict[str, Any]:
    """In a child process: upload each (dataset, parquet) to a fresh lake, then process; times, summary, RSS."""
    os.environ["TMPDIR"] = tmp  # anything spilled stays in the workdir
    from datalake import DatalakeClient

    client = DatalakeClient(user_id="bench", base_path=lake, num_proc=num_proc, create_dirs=True)
    children = ChildrenPeakRss()
    start = time.perf_counter()
    for dataset, parquet in uploads:
        client.upload_raw(parquet, provider="test", dataset=dataset)
    uploaded = time.perf_counter()
    result = client.wait_for_job_completion(client.trigger_processing(), polling_interval=0.05)
    processed = time.perf_counter()
    return {"upload_s": uploaded - start, "process_s": processed - uploaded, "result": result,
            "peak_rss_kb": peak_rss_kb(), "num_proc": client.num_proc, "child_peak_rss_kb": children.stop()}


class ChildrenPeakRss:
    """The highest VmHWM of this process's children (the upload's worker processes), read from /proc every
    0.1 s. Not RUSAGE_CHILDREN: that counts the pages a child shared with this process before exec."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak_kb

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            for pid in (e.name for e in os.scandir("/proc") if e.name.isdigit()):
                with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
                    with open(f"/proc/{pid}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) != os.getpid():
                            continue
                    with open(f"/proc/{pid}/status") as f:
                        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
                    self.peak_kb = max(self.peak_kb, hwm)


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


# -- the run ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="distinct images (default 10000)")
    parser.add_argument("--kb", type=int, default=None,
                        help=f"target image size in KB (default 40; {MEMORY_CHECK_KB} with --memory-check)")
    parser.add_argument("--dup-fraction", type=float, default=0.1,
                        help="share of the images uploaded again by a second dataset (default 0.1)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-work"), help="default ./bench-work")
    parser.add_argument("--num-proc", type=int, default=None, help="datalake workers (default: CPU count)")
    parser.add_argument("--runs", type=int, default=None,
                        help="measurements of each (cp -r, then upload + process); medians are shown "
                             "(default 5; 1 with --memory-check)")
    parser.add_argument("--keep", action="store_true",
                        help="keep each run's lake and copy in WORKDIR/runs (and a --memory-check workload)")
    parser.add_argument("--memory-check", type=float, default=None, metavar="GB",
                        help="upload GB gigabytes of big images instead of --images, to check peak RSS")
    args = parser.parse_args()
    if args.kb is None:
        args.kb = MEMORY_CHECK_KB if args.memory_check else 40
    if args.runs is None:
        args.runs = 1 if args.memory_check else 5
    if args.memory_check:
        args.images = math.ceil(args.memory_check * 1024 * MB / (args.kb * 1024))
    if args.images < 1 or args.kb < 1 or args.runs < 1 or not 0 <= args.dup_fraction <= 1:
        parser.error("--images, --kb and --runs must be positive and --dup-fraction within 0..1")
    return args


def floor_figures(floor_times: list[float], cp_s: float, total_s: float) -> list[tuple[str, str]]:
    if not floor_times:
        return []
    floor_s = statistics.median(floor_times)
    return [("floor s (the contract's file work)", f"{floor_s:.2f}"), ("floor / cp -r", f"{floor_s / cp_s:.2f}"),
            ("total / floor", f"{total_s / floor_s:.2f}")]


def print_figures(workload: Workload, cp_times: list[float], floor_times: list[float], runs: list[dict[str, Any]],
                  memory_check: bool) -> None:
    """The figure table (medians over the runs, peak RSS the highest) and the verdict on the targets."""
    upload_s = statistics.median(r["upload_s"] for r in runs)
    process_s = statistics.median(r["process_s"] for r in runs)
    total_s = statistics.median(r["upload_s"] + r["process_s"] for r in runs)
    cp_s = statistics.median(cp_times)
    # each run against the cp -r taken just before it: the disk's speed drifts between runs
    ratio = statistics.median((r["upload_s"] + r["process_s"]) / cp for r, cp in zip(runs, cp_times))
    peak_mb = max(r["peak_rss_kb"] for r in runs) / 1024
    child_mb = max(r["child_peak_rss_kb"] for r in runs) / 1024
    all_mb = peak_mb + runs[-1]["num_proc"] * child_mb  # at most: the peaks need not coincide
    summaries = runs[-1]["result"]["uploads"]
    assets_stored = runs[-1]["assets_stored"]
    figures = [
        ("images (distinct files)", f"{workload.images}"),
        ("rows uploaded", f"{sum(s['rows_in'] for s in summaries)} in {len(summaries)} datasets"),
        ("MB", f"{workload.image_bytes / MB:.1f}"),
        ("workers (num_proc)", f"{runs[-1]['num_proc']}"),
        ("upload s", f"{upload_s:.2f}"),
        ("process s", f"{process_s:.2f}"),
        ("total s", f"{total_s:.2f}"),
        ("images/s", f"{workload.images / total_s:.0f}"),
        ("MB/s", f"{workload.image_bytes / MB / total_s:.1f}"),
        ("cp -r s", f"{cp_s:.2f}"),
        ("ratio (total / cp -r, run by run)", f"{ratio:.2f}"),
        *floor_figures(floor_times, cp_s, total_s),
        ("peak RSS MB, uploading process", f"{peak_mb:.0f}"),
        ("peak RSS MB, a worker process", f"{child_mb:.0f}"),
        ("peak RSS MB, all (at most)", f"{all_mb:.0f}"),
        ("asset files stored", f"{assets_stored}"),
        ("duplicate assets reused", f"{sum(s['reused_assets'] for s in summaries)}"),
    ]
    width = max(len(k) for k, _ in figures)
    print(f"\nfigures (median of {len(runs)} run(s); peak RSS: the highest):")
    for key, value in figures:
        print(f"  {key:<{width}}  {value:>12}")
    print()
    if assets_stored != workload.images:
        print(f"WARNING: {assets_stored} asset files stored for {workload.images} distinct images")
    if memory_check:
        verdict = "ok" if all_mb < TARGET_RSS_MB else "OVER TARGET"
        print(f"target: peak RSS under {TARGET_RSS_MB} MB for this {workload.image_bytes / 1024 / MB:.1f} GB "
              f"upload: {all_mb:.0f} MB (the uploading process and its worker processes), {verdict}")
    else:
        verdict = "ok" if ratio <= AIM_RATIO else "within target" if ratio <= TARGET_RATIO else "OVER TARGET"
        print(f"target: upload + process within {TARGET_RATIO}x cp -r (aim {AIM_RATIO}x): {ratio:.2f}x, {verdict}")
        if floor_times:
            over = sum(floor > TARGET_RATIO * cp for floor, cp in zip(floor_times, cp_times))
            print(f"  the contract's file work alone (floor) took more than {TARGET_RATIO}x cp -r in {over} of "
                  f"{len(floor_times)} run(s)")


def main() -> None:
    args = parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    runs_dir = workdir / "runs"  # each run's lake and copy; deleted only after the last run
    workload_dir = workdir / ("memory-workload" if args.memory_check else "workload")
    remove(runs_dir, workdir)  # left by an interrupted run

    print(f"workload: {args.images} images of ~{args.kb} KB, {args.dup_fraction:.0%} reused by a second "
          f"dataset, in {workload_dir}")
    workload = prepare_workload(workload_dir, args.images, args.kb, args.dup_fraction, workdir)
    made = "cached" if workload.generated_s is None else f"generated in {workload.generated_s:.1f} s"
    print(f"  {workload.images} files, {workload.image_bytes / MB:.1f} MB ({made})")
    uploads = [("bench_docs", str(workload.main_parquet))]
    if workload.dup_parquet.is_file():
        uploads.append(("bench_docs_relabelled", str(workload.dup_parquet)))

    cp_times: list[float] = []
    floor_times: list[float] = []
    runs: list[dict[str, Any]] = []
    try:
        (runs_dir / "tmp").mkdir(parents=True)
        warm_cache(workload.image_dir)
        print("caches: warm for both (every image read once first); sync before each measurement;\n"
              "each run copies and uploads into new folders, nothing is deleted until the end")
        print("(CPU used outside the benchmark, by other work or kernel threads, makes the figures noisy)")
        for n in range(1, args.runs + 1):
            settle(workdir)
            other = others_cpu_s()
            cp_times.append(time_cp(workload.image_dir, runs_dir / f"cp-{n}"))
            settle(workdir)
            runs.append(time_ingest(runs_dir / f"lake-{n}", uploads, args.num_proc, runs_dir / "tmp"))
            if not args.memory_check:
                settle(workdir)
                floor_times.append(time_floor(workload.image_dir, runs_dir / f"floor-{n}", runs[-1]["num_proc"]))
            other = others_cpu_s() - other
            r = runs[-1]
            floor = f"floor {floor_times[-1]:.2f} s ({floor_times[-1] / cp_times[-1]:.2f}x); " if floor_times else ""
            print(f"  run {n}: cp -r {cp_times[-1]:.2f} s; {floor}upload {r['upload_s']:.2f} s + process "
                  f"{r['process_s']:.2f} s ({(r['upload_s'] + r['process_s']) / cp_times[-1]:.2f}x cp -r); "
                  f"peak RSS {r['peak_rss_kb'] / 1024:.0f} MB "
                  f"(a worker process {r['child_peak_rss_kb'] / 1024:.0f} MB); "
                  f"CPU used meanwhile outside the benchmark {other:.1f} s")
    finally:
        if not args.keep:
            remove(runs_dir, workdir)
            if args.memory_check:
                remove(workload_dir, workdir)
    print_figures(workload, cp_times, floor_times, runs, bool(args.memory_check))


if __name__ == "__main__":
    main()

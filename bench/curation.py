"""Near-duplicate benchmark: how well the perceptual fingerprint finds variants of real photos, and
how fast it is computed, each beside a baseline.

Workload: the photos scikit-image and scikit-learn ship, cut into distinct, non-overlapping
tiles at four scales (each resized to 640 px wide, saved as a JPEG of about 40 KB). For every
--variants-th tile, its variants: resized to 50% and 150%, JPEG quality 50, PNG (and back from
PNG to JPEG), cropped by 5% at one edge (right, bottom, left, top in turn), brightness +15% and
-15%, a 1-pixel border. Figures:

- recall (variant pairs within DEFAULT_THRESHOLD) overall and per kind of variant, and
  precision (pairs found that are true variants), by brute force over every pair; then the same
  at other thresholds, with the chance pairs among distinct tiles (what grows with a lake);
- fingerprints per second of the 40 KB JPEGs (the tiles, read --speed-files times in all), in
  one process and in a pool of 2 worker processes, vs Pillow decoding each whole image to grey
  (what a fingerprint that decodes everything costs);
- the lake's pairing (datalake_py/curation/pairs.py: faiss's binary flat index, every fingerprint
  against all, within 14 bits) over ledger parts of --search-sizes random fingerprints in a
  scratch lake under --workdir, with the process's peak memory, and 10,000 new ones against the
  largest size, vs the same pairs in DuckDB SQL (a join on bit_count(xor(a, b))) over 20,000
  fingerprints.

Needs the `bench` extra (scikit-image, scikit-learn; their photos ship with them, nothing is
downloaded): .venv/bin/pip install -e '.[bench]'
Usage: python bench/curation.py [--variants 4] [--speed-files 4000] [--search-sizes 100000 1000000]
       [--workdir bench-work/curation] [--only quality speed search]
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance, ImageOps

from datalake.curation import DEFAULT_THRESHOLD, MAX_DISTANCE
from datalake.curation.fingerprint import distance, fingerprint
from datalake.curation.index import CHUNK, PART_SCHEMA
from datalake.curation.pairs import pair_new_fingerprints
from datalake.lake import Lake
from datalake.schema import init_lake
from machine import others_cpu_s

WIDTH, QUALITY = 640, 90
KINDS = ("resize50", "resize150", "jpeg_q50", "png", "png_to_jpeg", "crop5", "brighter15", "darker15", "border1")
RECALL_TARGET, PRECISION_TARGET, SPEED_TARGET = 0.95, 0.99, 500
PARTS = ("quality", "speed", "search")


def photos() -> list[Image.Image]:
    """The real photos the two libraries ship, in RGB."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
             "motorcycle_left", "retina", "camera", "moon", "page", "text", "grass", "gravel", "brick",
             "colorwheel", "cell", "coins", "horse", "clock", "microaneurysms")
    images = [Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB") for name in names
              if hasattr(data, name)]
    return images + [Image.fromarray(image) for image in load_sample_images().images]


def tiles(images: list[Image.Image]) -> list[Image.Image]:
    """Distinct, non-overlapping tiles of each photo at four scales, each 640 px wide."""
    out = []
    for image in images:
        for parts in (1, 2, 3, 4):
            w, h = image.width // parts, image.height // parts
            if min(w, h) < 96:
                continue
            for i in range(parts):
                for j in range(parts):
                    tile = image.crop((i * w, j * h, (i + 1) * w, (j + 1) * h))
                    out.append(tile.resize((WIDTH, max(1, round(tile.height * WIDTH / tile.width)))))
    return out


def encoded(image: Image.Image, fmt: str = "JPEG", quality: int = QUALITY) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()


def variant(original: Image.Image, kind: str, n: int) -> bytes:
    """The variant `kind` of the n-th tile (n chooses the edge a crop takes)."""
    w, h = original.size
    if kind == "resize50":
        return encoded(original.resize((w // 2, h // 2)))
    if kind == "resize150":
        return encoded(original.resize((w * 3 // 2, h * 3 // 2)))
    if kind == "jpeg_q50":
        return encoded(original, quality=50)
    if kind == "png":
        return encoded(original, "PNG")
    if kind == "png_to_jpeg":
        return encoded(Image.open(io.BytesIO(encoded(original, "PNG"))))
    if kind == "crop5":
        dw, dh = w // 20, h // 20
        return encoded(original.crop([(0, 0, w - dw, h), (0, 0, w, h - dh), (dw, 0, w, h), (0, dh, w, h)][n % 4]))
    if kind in ("brighter15", "darker15"):
        return encoded(ImageEnhance.Brightness(original).enhance(1.15 if kind == "brighter15" else 0.85))
    return encoded(ImageOps.expand(original, border=1, fill="black"))


def fingerprint_file(path: str) -> int | None:
    found = fingerprint(Path(path))
    return None if found is None else found.value


def full_decode(path: str) -> None:
    with Image.open(path) as image:
        image.convert("L")


def write_workload(folder: Path, every: int) -> tuple[list[Path], dict[Path, tuple[Path, str]]]:
    """The originals, and each variant's (original, kind)."""
    folder.mkdir(parents=True, exist_ok=True)
    originals, variants = [], {}
    for n, tile in enumerate(tiles(photos())):
        path = folder / f"{n:04d}.jpg"
        path.write_bytes(encoded(tile))
        originals.append(path)
        if n % every == 0:
            for kind in KINDS:
                vpath = folder / f"{n:04d}-{kind}.{'png' if kind == 'png' else 'jpg'}"
                vpath.write_bytes(variant(tile, kind, n // every))
                variants[vpath] = (path, kind)
    return originals, variants


def quality(originals: list[Path], variants: dict[Path, tuple[Path, str]]) -> None:
    paths = originals + list(variants)
    values = np.array([fingerprint_file(str(p)) for p in paths], dtype=np.int64).view(np.uint64)
    apart = np.bitwise_count(values[:, None] ^ values[None, :])  # every pair's distance
    group = np.array([originals.index(variants[p][0]) if p in variants else i for i, p in enumerate(paths)])
    kinds = np.array([variants[p][1] if p in variants else "" for p in paths])
    is_variant = kinds != ""
    of_original = apart[is_variant, group[is_variant]]  # each variant's distance to its original
    upper = np.triu(np.ones(apart.shape, dtype=bool), 1)
    same = group[:, None] == group[None, :]
    distinct = apart[:len(originals), :len(originals)][upper[:len(originals), :len(originals)]]
    print(f"{len(originals)} distinct images, {len(variants)} variants; threshold {DEFAULT_THRESHOLD} of 64 bits")
    for kind in KINDS:
        print(f"  recall {kind:12} {np.mean(of_original[kinds[is_variant] == kind] <= DEFAULT_THRESHOLD):.3f}")
    found = upper & (apart <= DEFAULT_THRESHOLD)
    pairs, true_pairs = int(found.sum()), int((found & same).sum())
    print(f"recall    {np.mean(of_original <= DEFAULT_THRESHOLD):.3f}  (target >= {RECALL_TARGET})")
    print(f"precision {true_pairs / max(pairs, 1):.3f}  ({pairs - true_pairs} of {pairs} pairs found are not "
          f"variants of one image; target >= {PRECISION_TARGET})")
    print(f"other thresholds (chance pairs: of the {len(distinct):,} pairs of distinct images, those within it):")
    print("  threshold  recall  5% crops  precision  chance pairs")
    for threshold in range(8, MAX_DISTANCE + 3, 2):
        found = upper & (apart <= threshold)
        crops = of_original[kinds[is_variant] == "crop5"]
        print(f"  {threshold:9}  {np.mean(of_original <= threshold):6.3f}  {np.mean(crops <= threshold):8.3f}  "
              f"{(found & same).sum() / max(found.sum(), 1):9.4f}  {np.sum(distinct <= threshold):12}"
              + ("  (default)" if threshold == DEFAULT_THRESHOLD else ""))


def speed(originals: list[Path], count: int) -> None:
    files = [str(originals[i % len(originals)]) for i in range(count)]
    size = sum(p.stat().st_size for p in originals) / len(originals)
    rates = {}
    busy = others_cpu_s()
    for what, fn, processes in (("fingerprint, 1 process", fingerprint_file, 1),
                                ("fingerprint, pool of 2 processes", fingerprint_file, 2),
                                ("baseline: full decode to grey, 1 process", full_decode, 1),
                                ("baseline: full decode to grey, pool of 2", full_decode, 2)):
        start = time.perf_counter()
        if processes == 1:
            for f in files:
                fn(f)
        else:
            with ProcessPoolExecutor(processes) as pool:  # started within the time: a run starts one
                list(pool.map(fn, files, chunksize=100))
        rates[what] = len(files) / (time.perf_counter() - start)
    print(f"speed over {len(files)} reads of {len(originals)} JPEGs of {size / 1000:.0f} KB on average "
          f"(target >= {SPEED_TARGET} images/s); other work on the machine meanwhile: {others_cpu_s() - busy:.1f} CPU s")
    for what, rate in rates.items():
        print(f"  {what:42} {rate:7.0f} images/s")


def search_speed(sizes: list[int], workdir: Path) -> None:
    """The lake's own pairing (`pair_new_fingerprints`) over ledger parts of random fingerprints in
    a scratch lake: every part at first, then two more parts (10,000 new fingerprints) against the
    largest size; beside DuckDB SQL pairing 20,000."""
    print(f"pair search within {MAX_DISTANCE} bits (faiss binary flat index, the lake's ledger parts of {CHUNK:,}):")
    rng = np.random.default_rng(0)
    for n in sizes:
        shutil.rmtree(workdir / f"pairs-{n}", ignore_errors=True)  # a lake of an earlier run is paired already
        lake = init_lake(workdir / f"pairs-{n}")
        made = _random_parts(lake, rng, n, "base")
        start = time.perf_counter()
        pairs = pair_new_fingerprints(lake, made)
        print(f"  {n:>9,} against themselves  {time.perf_counter() - start:8.1f} s  {pairs:>9,} pairs  "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    added = _random_parts(lake, rng, 10_000, "new")
    start = time.perf_counter()
    pair_new_fingerprints(lake, made + added)
    print(f"     10,000 new against {n:,}  {time.perf_counter() - start:8.1f} s")
    with duckdb.connect() as con:
        con.execute("create table f as select i, (hash(i)::hugeint - 9223372036854775808)::bigint as v "
                    "from range(20000) t(i)")
        start = time.perf_counter()
        con.execute("select count(*) from f a join f b on a.i < b.i and bit_count(xor(a.v, b.v)) <= ?",
                    [MAX_DISTANCE]).fetchall()
        print(f"  baseline: DuckDB SQL join over 20,000  {time.perf_counter() - start:8.1f} s")


def _random_parts(lake: Lake, rng: np.random.Generator, n: int, run: str) -> list[str]:
    """Write `n` random fingerprints of made-up hashes as fingerprint parts of CHUNK; their paths."""
    paths = []
    for part, first in enumerate(range(0, n, CHUNK)):
        count = min(CHUNK, n - first)
        hashes = [f"{run}{first + i:0{32 - len(run)}x}" for i in range(count)]
        table = pa.table({"hash": hashes, "fingerprint": rng.integers(-2**63, 2**63 - 1, count, dtype=np.int64),
                          "fingerprinted_at": [""] * count}, schema=PART_SCHEMA)
        path = lake.fingerprint_record(run, part)
        pq.write_table(table, path)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=int, default=4, help="variants for every N-th image")
    parser.add_argument("--speed-files", type=int, default=4000, help="JPEGs read to measure speed")
    parser.add_argument("--search-sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("bench-work/curation"))
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="the parts to run (default: all)")
    args = parser.parse_args()
    if {"quality", "speed"} & set(args.only):
        originals, variants = write_workload(args.workdir / "images", args.variants)
        if "quality" in args.only:
            quality(originals, variants)
        if "speed" in args.only:
            speed(originals, args.speed_files)
    if "search" in args.only:
        search_speed(args.search_sizes, args.workdir)


if __name__ == "__main__":
    main()

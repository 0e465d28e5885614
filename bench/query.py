"""Query benchmark: build, search and export on a lake of --rows rows, each beside a baseline.

The lake is a real one, made through the client: --images distinct small PNG/JPEG images (Pillow)
uploaded once as raw data, then task rows (`ocr` and `kie`, two variants each) over 5 providers x
20 datasets that reference those images by `hash`, with synthetic JSON labels
({"elements": [{"text": ..., "bbox": [...]}, ...]}, Korean and English words), all processed in
process, and built once. It is kept in --workdir/lake-<rows>-<images> and reused by later runs with
the same sizes (each run adds one 1,000-row upload to it); --fresh makes it again.

Figures, each beside its baseline:

- full build: `client.build_db(full_refresh=True)`, with the peak memory (RSS) of the build, vs
  pandas making what a build makes: every part file read with its partition columns and row ids,
  concatenated; the partitions, assets and uploads tables; the same checks (keys, hashes, task
  meta rules); all written as parquet (the time to concatenate and write the catalog alone is
  printed too);
- build after one 1,000-row upload: `client.build_db()` vs pandas doing the same from the catalog
  it wrote and the new part (pandas has no incremental update);
- hierarchy search and JSON text search returning 1,000 rows, warm (median of --runs after 2
  warm-ups): `client.search(...)` vs the same SQL run directly in DuckDB on the client's
  connection (and pandas: `pd.read_parquet(<catalog>)` then boolean filtering, `json.loads` per
  row with `apply`; the filter alone on a DataFrame already in memory is shown too);
- export of 10,000 rows with images: `client.download(rows, out, format="dataset")` vs pandas
  reading each row's image bytes into a column and writing parquet (rows/s).

Usage: python bench/query.py [--rows 1000000] [--images 2000] [--workdir bench-work/query] [--fresh]
       python bench/query.py --rows 10000000 --images 20000     # the 10M-row run (about 30 min the first time)
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from machine import children_peak_rss, others_cpu_s, reset_children_peak_rss
from datalake import DatalakeClient
from datalake.catalog.search import build_query, catalog_columns
from datalake.schema import add_provider, load_schema

LAKE_VERSION = 1  # bump when the generated lake changes, so cached lakes are rebuilt
PROVIDERS = [f"p{i}" for i in range(1, 6)]
DATASETS = [f"d{i}" for i in range(1, 21)]
TASKS = {"ocr": ("v1", "v2"), "kie": ("v1", "v2")}
META = {"v1": {"lang": "ko", "src": "real"}, "v2": {"lang": "multi", "src": "synthetic"}}
KO_WORDS = ("영수증", "합계", "금액", "날짜", "부가세", "수량", "단가", "고객", "주문", "주소", "서울", "결제",
            "할인", "품목", "사업자", "대표", "전화", "카드")
EN_WORDS = ("invoice", "receipt", "total", "amount", "date", "tax", "qty", "price", "customer", "order",
            "address", "payment", "due", "subtotal", "discount", "VAT", "item", "KRW")
KIE_KEYS = ("store", "date", "total", "tax", "card", "phone")

HIERARCHY = {"providers": ["p1"], "datasets": ["d1*"], "tasks": ["ocr"], "limit": 1000}
TEXT = {"tasks": ["ocr"], "limit": 1000,
        "text_search": {"column": "label", "text": "영수증", "json_path": "$.elements[*].text"}}
INCREMENT_ROWS, EXPORT_ROWS, PANDAS_RUNS = 1_000, 10_000, 3
BUILD_TARGETS = {1_000_000: (5.0, 2.0), 10_000_000: (30.0, 3.0)}  # rows: (full build, after one upload) s
SEARCH_TARGET = 2.0  # client.search within this many times the same SQL run directly in DuckDB


# -- the lake ------------------------------------------------------------------------------


def make_images(count: int, seed: int = 7) -> list[bytes]:
    """`count` distinct small document-like images, PNG and JPEG alternately, each stamped with its number."""
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    images = []
    for i in range(count):
        image = Image.new("RGB", (rnd.randint(160, 320), rnd.randint(120, 240)),
                          tuple(rnd.randint(200, 255) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(rnd.randint(2, 6)):
            x, y = rnd.randrange(image.width - 20), rnd.randrange(image.height - 10)
            draw.rectangle([x, y, x + rnd.randint(10, 80), y + rnd.randint(5, 30)],
                           outline=tuple(rnd.randrange(200) for _ in range(3)))
        for line in range(rnd.randint(2, 6)):
            draw.text((8, 10 + 16 * line), " ".join(rnd.choice(EN_WORDS) for _ in range(3)), fill=(30, 30, 30))
        draw.text((image.width - 60, image.height - 16), f"#{i:06d}", fill=(200, 20, 20))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if i % 2 else "JPEG", quality=85)
        images.append(buffer.getvalue())
    return images


def make_label(rnd: random.Random, task: str, multi: bool) -> str:
    """A synthetic JSON label: 2-6 elements with text (Korean, or Korean and English) and a bbox."""
    words = KO_WORDS + EN_WORDS if multi else KO_WORDS
    elements = []
    for _ in range(rnd.randint(2, 6)):
        x, y = rnd.randrange(600), rnd.randrange(800)
        element: dict[str, Any] = {"text": f"{rnd.choice(words)} {rnd.randint(1, 99999):,}",
                                   "bbox": [x, y, x + rnd.randint(20, 200), y + rnd.randint(10, 40)]}
        if task == "kie":
            element = {"key": rnd.choice(KIE_KEYS), **element}
        elements.append(element)
    return json.dumps({"elements": elements}, ensure_ascii=False)


def task_rows(rnd: random.Random, hashes: list[str], task: str, variant: str, count: int, prefix: str) -> pd.DataFrame:
    """`count` distinct task rows naming existing assets by hash."""
    return pd.DataFrame({
        "doc_id": [f"{prefix}-{n:07d}" for n in range(count)],
        "hash": [rnd.choice(hashes) for _ in range(count)],
        "label": [make_label(rnd, task, variant == "v2") for _ in range(count)],
    })


def partitions() -> list[tuple[str, str, str, str]]:
    return [(p, d, t, v) for p in PROVIDERS for d in DATASETS for t, variants in TASKS.items() for v in variants]


def process(client: DatalakeClient) -> dict[str, Any]:
    result = client.wait_for_job_completion(client.trigger_processing(), polling_interval=0.05)
    if result["failed"]:
        raise SystemExit(f"processing failed: {[u for u in result['uploads'] if u['status'] != 'processed']}")
    return result


def build_lake(path: Path, rows: int, images: int) -> DatalakeClient:
    """A fresh lake of `images` raw images and `rows` task rows spread over every partition."""
    import xxhash

    shutil.rmtree(path, ignore_errors=True)
    client = DatalakeClient(user_id="bench", base_path=path, create_dirs=True)
    for provider in PROVIDERS:
        add_provider(client.lake, provider, "benchmark provider")

    start = time.perf_counter()
    data = make_images(images)
    client.upload_raw(pd.DataFrame({"doc_id": [f"img-{i:06d}" for i in range(images)], "image": data}),
                      provider="p1", dataset="shared_images")
    process(client)
    hashes = [xxhash.xxh3_128_hexdigest(d) for d in data]  # the store's content address of each image
    print(f"  {images} images made, uploaded and processed in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    rnd = random.Random(11)
    cells = partitions()
    for n, (provider, dataset, task, variant) in enumerate(cells):
        count = rows // len(cells) + (1 if n < rows % len(cells) else 0)
        if count:
            frame = task_rows(rnd, hashes, task, variant, count, f"{provider}-{dataset}-{task}-{variant}")
            client.upload_task(frame, provider=provider, dataset=dataset, task=task, variant=variant,
                               meta=META[variant])
    uploaded = time.perf_counter()
    process(client)
    print(f"  {rows:,} task rows in {len(cells)} partitions: uploaded in {uploaded - start:.1f} s, "
          f"processed in {time.perf_counter() - uploaded:.1f} s")
    seconds = timed(client.build_db)[0]  # also leaves dbt's parse cache, as on any lake built before
    print(f"  first database build (dbt parses the project from scratch) in {seconds:.1f} s")
    return client


def open_lake(workdir: Path, rows: int, images: int, fresh: bool) -> DatalakeClient:
    """The lake made earlier with the same sizes, unless `fresh`; else a new one."""
    path, stamp = workdir / f"lake-{rows}-{images}", workdir / f"lake-{rows}-{images}.json"
    wanted = {"version": LAKE_VERSION, "rows": rows, "images": images}
    if not fresh and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        print(f"lake: reusing {path}")
        return DatalakeClient(user_id="bench", base_path=path)
    print(f"lake: building {rows:,} rows in {path}")
    stamp.unlink(missing_ok=True)
    client = build_lake(path, rows, images)
    stamp.write_text(json.dumps(wanted))
    return client


def part_files(client: DatalakeClient) -> list[Path]:
    return sorted(client.lake.catalog.glob("provider=*/dataset=*/task=*/variant=*/*.parquet"))


# -- timing --------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_time(fn: Callable[[], Any], runs: int, warmups: int = 2) -> float:
    for _ in range(warmups):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(runs))


def target_text(seconds: float | None) -> str:
    return f"< {seconds:.0f} s" if seconds is not None else "none at this size"


def direct_search(client: DatalakeClient, filters: dict[str, Any]) -> Callable[[], pd.DataFrame]:
    """The SQL `client.search(**filters)` runs, run directly on the client's connection."""
    con = client._connection()
    sql, params = build_query(catalog_columns(con), **filters)
    return lambda: con.execute(sql, params).df()


def catalog_rows(client: DatalakeClient) -> int:
    return int(client.sql("select count(*) as n from catalog")["n"].iloc[0])


def slow_nodes(client: DatalakeClient, at_least: float = 0.1) -> str:
    """The dbt nodes of the last build that took at least `at_least` s, slowest first."""
    results = json.loads((client.lake.db_dir / "dbt-target" / "run_results.json").read_text())["results"]
    nodes = sorted(((r["execution_time"], r["unique_id"].split(".")[2]) for r in results), reverse=True)
    return ", ".join(f"{name} {t:.2f}" for t, name in nodes if t >= at_least) or "none"


# -- pandas baselines ----------------------------------------------------------------------


def pandas_catalog(files: list[Path], catalog: Path) -> pd.DataFrame:
    """Every part file read with pandas, its partition columns, row id and file name added, concatenated."""
    frames = []
    for f in files:
        frame = pd.read_parquet(f)
        for part in f.parent.relative_to(catalog).parts:
            key, value = part.split("=", 1)
            frame[key] = value
        frame["row_id"] = frame["_upload_id"] + ":" + pd.RangeIndex(len(frame)).astype(str)
        frame["_file"] = str(f)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_all(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))], ignore_index=True)


def pandas_database(catalog: pd.DataFrame, client: DatalakeClient, out: Path) -> None:
    """What a build makes, done with pandas: the catalog, partitions, assets and uploads tables written
    as parquet files to `out`, and the same checks (keys unique and present, every hash an asset,
    task meta within the rules of config/schema.yaml)."""
    keys = ["provider", "dataset", "task", "variant"]
    parts = catalog.groupby(keys).agg(num_rows=("row_id", "size"), num_assets=("hash", "nunique"),
                                      num_uploads=("_upload_id", "nunique"), last_upload_at=("_uploaded_at", "max"))
    facts = read_all(client.lake.ledger / "assets").groupby("hash").first()
    with_hash = catalog[catalog["hash"].notna()]
    refs = pd.DataFrame({
        "num_rows": with_hash.groupby("hash").size(),
        "datasets": (with_hash["provider"] + "/" + with_hash["dataset"]).groupby(with_hash["hash"])
        .agg(lambda names: ",".join(sorted(set(names)))),
    })
    assets = facts.join(refs, how="left")
    uploads = read_all(client.lake.ledger / "uploads")
    problems = [
        not catalog["row_id"].is_unique, catalog[["row_id", *keys]].isna().any().any(),
        not uploads["upload_id"].is_unique, not with_hash["hash"].isin(assets.index).all(),
    ]
    for task, rule in load_schema(client.lake).tasks.items():
        rows = catalog[catalog["task"] == task]
        for field in rule.required_fields:
            values = rows[field] if field in rows else pd.Series([None] * len(rows))
            allowed = rule.allowed_values.get(field)
            problems.append(bool((values.isna() | (~values.isin(allowed) if allowed else False)).any()))
    if any(problems):
        raise SystemExit("the pandas checks found problems in the benchmark lake")
    out.mkdir(exist_ok=True)
    for name, table in (("catalog", catalog), ("partitions", parts), ("assets", assets), ("uploads", uploads)):
        table.to_parquet(out / f"{name}.parquet")


def glob_mask(column: pd.Series, patterns: list[str]) -> pd.Series:
    return column.astype(str).str.match("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def pandas_hierarchy(frame: pd.DataFrame) -> pd.DataFrame:
    mask = (glob_mask(frame["provider"], HIERARCHY["providers"]) & glob_mask(frame["dataset"], HIERARCHY["datasets"])
            & glob_mask(frame["task"], HIERARCHY["tasks"]))
    return frame[mask].head(HIERARCHY["limit"])


def label_has(text: str) -> Callable[[Any], bool]:
    needle = text.lower()

    def match(label: Any) -> bool:
        try:
            elements = json.loads(label)["elements"]
        except (TypeError, ValueError, KeyError):
            return False
        return any(needle in str(e.get("text", "")).lower() for e in elements)

    return match


def pandas_text(frame: pd.DataFrame) -> pd.DataFrame:
    ocr = frame[glob_mask(frame["task"], TEXT["tasks"])]
    return ocr[ocr["label"].apply(label_has(TEXT["text_search"]["text"]))].head(TEXT["limit"])


def pandas_export(client: DatalakeClient, rows: pd.DataFrame, out: Path) -> None:
    """The rows with each image's bytes read into a column, written as one parquet file."""
    out_rows = rows.copy()
    out_rows["path"] = [str(client.lake.assets / p) for p in rows["path"]]
    out_rows["image"] = [Path(p).read_bytes() for p in out_rows["path"]]
    out_rows.to_parquet(out)


# -- the run -------------------------------------------------------------------------------


def lake_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the lake this script makes, which other benchmarks reuse: --rows, --images, --workdir."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="task rows in the lake (default 1000000)")
    parser.add_argument("--images", type=int, default=2_000, help="distinct images they share (default 2000)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-work/query"), help="default ./bench-work/query")
    return parser


def parse_args() -> argparse.Namespace:
    parser = lake_parser(__doc__)
    parser.add_argument("--fresh", action="store_true", help="make the lake again, not reuse the one of the same sizes")
    parser.add_argument("--runs", type=int, default=20, help="timed searches after 2 warm-ups; the median (default 20)")
    args = parser.parse_args()
    if args.rows < 1 or args.images < 1 or args.runs < 1:
        parser.error("--rows, --images and --runs must be positive")
    return args


def build_targets(rows: int) -> tuple[float | None, float | None]:
    """The targets (full build, build after one upload) for a lake of `rows`: those of the smallest
    measured size at least as large; none beyond."""
    sizes = [size for size in sorted(BUILD_TARGETS) if rows <= size]
    return BUILD_TARGETS[sizes[0]] if sizes else (None, None)


def verdict(ours: float | None, baseline: float | None, target: float | None, higher_is_better: bool) -> str:
    """ok, or what was missed: the target (a limit on ours), or the baseline."""
    if ours is None:
        return "n/a"
    if target is not None and ours >= target:
        return "MISSED target"
    if baseline is not None and (ours < baseline if higher_is_better else ours > baseline) and target is None:
        return "behind baseline"
    return "ok"


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("s", "GiB"):
        return f"{value:.2f} {unit}"
    if unit in ("MB", "MB/s"):
        return f"{value:,.1f} {unit}"
    return f"{value * 1000:.1f} ms" if unit == "ms" else f"{value:,.0f} {unit}"


def print_table(figures: list[tuple[str, str, float | None, float | None, str, float | None, str]]) -> None:
    """figures: (name, unit, datalake, baseline, baseline name, limit on datalake or None, target text)."""
    lines = [("figure", "datalake", "baseline", "", "target", "ok?")]
    for name, unit, ours, baseline, against, limit, target in figures:
        lines.append((name, show(ours, unit), show(baseline, unit), against, target,
                      verdict(ours, baseline, limit, higher_is_better=unit.endswith("/s"))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print()
    for n, line in enumerate(lines):
        print("  " + "  ".join(cell.rjust(w) if i in (1, 2) else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def main() -> None:
    args = parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    client = open_lake(workdir, args.rows, args.images, args.fresh)
    full_target, update_target = build_targets(args.rows)
    catalog = client.lake.catalog
    started, others = time.perf_counter(), others_cpu_s()

    client.build_db()  # dbt started and the project parsed, as in any process that has built before
    print("full build ...")
    reset_children_peak_rss()
    build_s, _ = timed(lambda: client.build_db(full_refresh=True))
    build_rss = children_peak_rss()
    print(f"  {catalog_rows(client):,} catalog rows, database {client.db_path.stat().st_size / 2**20:.0f} MB, "
          f"peak memory of the build {build_rss / 2**30:.2f} GiB; dbt nodes >= 0.1 s: {slow_nodes(client)}")
    pandas_db = scratch / "pandas-database"
    files = part_files(client)
    pd_build_s, _ = timed(lambda: pandas_database(pandas_catalog(files, catalog), client, pandas_db))
    concat_s, _ = timed(lambda: pandas_catalog(files, catalog).to_parquet(scratch / "concat.parquet"))

    print(f"one {INCREMENT_ROWS:,}-row upload, processed, then an incremental build ...")
    hashes = client.sql("select hash from assets order by hash")["hash"].tolist()
    frame = task_rows(random.Random(), hashes, "ocr", "v1", INCREMENT_ROWS, f"increment-{time.time_ns()}")
    upload_s, _ = timed(lambda: client.upload_task(frame, provider="p1", dataset="d1", task="ocr",
                                                   variant="v1", meta=META["v1"]))
    process_s, _ = timed(lambda: process(client))
    incr_s, info = timed(lambda: client.build_db())
    print(f"  upload {upload_s:.2f} s, process {process_s:.2f} s; build incremental={info['incremental']}, "
          f"{catalog_rows(client):,} rows; dbt nodes >= 0.1 s: {slow_nodes(client)}")
    new_part = sorted(set(part_files(client)) - set(files))
    pd_incr_s, _ = timed(lambda: pandas_database(pd.concat([pd.read_parquet(pandas_db / "catalog.parquet"),
                                                            pandas_catalog(new_part, catalog)], ignore_index=True),
                                                 client, pandas_db))
    concat_incr_s, _ = timed(lambda: pd.concat([pd.read_parquet(scratch / "concat.parquet"),
                                                pandas_catalog(new_part, catalog)], ignore_index=True)
                             .to_parquet(scratch / "concat.parquet"))

    print(f"searches (median of {args.runs} after 2 warm-ups; pandas: median of {PANDAS_RUNS}) ...")
    found = {"hierarchy": len(client.search(**HIERARCHY)), "text": len(client.search(**TEXT))}
    hier_s = median_time(lambda: client.search(**HIERARCHY), args.runs)
    text_s = median_time(lambda: client.search(**TEXT), args.runs)
    direct_hier_s, direct_text_s = (median_time(direct_search(client, filters), args.runs)
                                    for filters in (HIERARCHY, TEXT))
    pd_hier_s = median_time(lambda: pandas_hierarchy(pd.read_parquet(catalog)), PANDAS_RUNS, warmups=1)
    pd_text_s = median_time(lambda: pandas_text(pd.read_parquet(catalog)), PANDAS_RUNS, warmups=0)
    in_memory = pd.read_parquet(catalog)
    found_pd = {"hierarchy": len(pandas_hierarchy(in_memory)), "text": len(pandas_text(in_memory))}
    mem_hier_s = median_time(lambda: pandas_hierarchy(in_memory), PANDAS_RUNS, warmups=1)
    mem_text_s = median_time(lambda: pandas_text(in_memory), PANDAS_RUNS, warmups=0)
    del in_memory
    print(f"  rows found (datalake / pandas): hierarchy {found['hierarchy']} / {found_pd['hierarchy']}, "
          f"text {found['text']} / {found_pd['text']}")

    print(f"export of {EXPORT_ROWS:,} rows with images ...")
    rows = client.search(tasks=["ocr"], limit=EXPORT_ROWS)
    export_rate: float | None = None
    try:
        client.download(rows.head(100), scratch / "warm", format="dataset", include_images=True)
        export_s = median_time(lambda: client.download(rows, scratch / f"out-{time.time_ns()}", format="dataset",
                                                       include_images=True), PANDAS_RUNS, warmups=0)
        export_rate = len(rows) / export_s
    except (ImportError, AttributeError, NotImplementedError) as exc:
        print(f"  client.download is not available ({type(exc).__name__}: {exc}); figure skipped")
    pd_export_rate = len(rows) / median_time(lambda: pandas_export(client, rows, scratch / "pandas-export.parquet"),
                                             PANDAS_RUNS, warmups=1)
    shutil.rmtree(scratch, ignore_errors=True)
    wall, others = time.perf_counter() - started, max(0.0, others_cpu_s() - others)

    pandas = "pandas"
    print_table([
        ("full build", "s", build_s, pd_build_s, pandas, full_target, target_text(full_target)),
        ("peak memory of the full build", "GiB", build_rss / 2**30, None, "", 4.0, "< 4 GiB"),
        ("build after 1,000-row upload", "s", incr_s, pd_incr_s, pandas, update_target, target_text(update_target)),
        ("hierarchy search (warm)", "ms", hier_s, direct_hier_s, "DuckDB", SEARCH_TARGET * direct_hier_s,
         f"< {SEARCH_TARGET:.0f}x DuckDB"),
        ("JSON text search (warm)", "ms", text_s, direct_text_s, "DuckDB", SEARCH_TARGET * direct_text_s,
         f"< {SEARCH_TARGET:.0f}x DuckDB"),
        (f"export {EXPORT_ROWS:,} rows with images", "rows/s", export_rate, pd_export_rate, pandas, None,
         "ahead of pandas"),
    ])
    print(f"\n  searches in pandas: hierarchy {pd_hier_s * 1000:.0f} ms, JSON text {pd_text_s * 1000:.0f} ms "
          "(read_parquet of the catalog folder, then the filter)")
    print("\n  pandas builds make what a build makes: every part file read and concatenated (after the upload:"
          " the catalog it wrote and the new part), the partitions, assets and uploads tables, the same checks,"
          " all written as parquet files")
    print(f"  pandas concatenating the catalog alone, no tables or checks: full {concat_s:.2f} s, after the upload "
          f"{concat_incr_s:.2f} s")
    print(f"  pandas filter alone on a DataFrame already in memory: hierarchy {mem_hier_s * 1000:.1f} ms, "
          f"JSON text {mem_text_s * 1000:.1f} ms")
    print(f"  other work used {others:.0f} CPU s of the {wall:.0f} s of measurements on {os.cpu_count()} cores "
          f"({others / wall:.1f} cores busy); figures are only fair when that is near 0")


if __name__ == "__main__":
    main()

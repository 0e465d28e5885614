"""Gallery benchmark: the lake's pages over HTTP on the lake of bench/query.py, each beside a baseline.

The pages are served by `client.browse()` (the same app as `datalake browse`) and fetched with
urllib from this process, warm: the median of --runs requests after 2 warm-ups. Figures:

- overview (`/`) and a gallery page of 100 thumbnails (`/gallery?...`, its HTML), vs the same
  search through `client.search(..., limit=100)` plus `client.count(...)` (what the page asks the
  database for, without HTML);
- a later gallery page (page 50 of the same search), vs the same through client.search;
- a gallery of a JSON-path text search over the whole lake, vs the same through client.search
  (its count reads every label: the issue sets no target for it);
- a thumbnail already cached, vs reading the cached file;
- 100 new thumbnails of 40 KB JPEGs (photo-like 800x600 images uploaded to the lake once), fetched
  6 at a time as a browser does, vs Pillow decoding each whole image (no draft mode) one by one.

Usage: python bench/browse.py [--rows 1000000] [--images 2000] [--workdir bench-work/query]
"""

from __future__ import annotations

import io
import random
import shutil
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from query import lake_parser, open_lake, print_table, process  # noqa: E402  the lake bench/query.py makes and keeps

from datalake import DatalakeClient  # noqa: E402

GALLERY = {"provider": "p1", "dataset": "d1*", "task": "ocr"}
SEARCH = {"providers": ["p1"], "datasets": ["d1*"], "tasks": ["ocr"]}
TEXT_GALLERY = "text=%EC%98%81%EC%88%98%EC%A6%9D&json_path=%24.elements%5B%2A%5D.text"  # 영수증 in $.elements[*].text
TEXT_SEARCH = {"text_search": {"column": "label", "text": "영수증", "json_path": "$.elements[*].text"}}
PHOTOS, PHOTO_BYTES, BROWSER_CONNECTIONS = 100, 40_000, 6
PAGE_TARGET, CACHED_TARGET, NEW_THUMBNAILS_TARGET = 0.3, 0.01, 3.0


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def median_time(fn: Callable[[], Any], runs: int, warmups: int = 2) -> float:
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def photo(rnd: random.Random) -> bytes:
    """A photo-like 800x600 JPEG of about PHOTO_BYTES: smooth colour fields with fine noise, at the
    highest JPEG quality that keeps it that small."""
    from PIL import Image, ImageFilter

    small = Image.frombytes("RGB", (16, 12), bytes(rnd.randrange(256) for _ in range(16 * 12 * 3)))
    noise = Image.effect_noise((800, 600), 32).convert("RGB")
    image = Image.blend(small.resize((800, 600), Image.BICUBIC), noise, 0.2).filter(ImageFilter.SMOOTH)
    for quality in range(95, 20, -5):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= PHOTO_BYTES:
            break
    return buffer.getvalue()


def photo_lake(workdir: Path) -> tuple[DatalakeClient, list[str]]:
    """A small lake holding the photos, processed; the store names (`<hash>.jpg`) of its assets."""
    path = workdir / "lake-photos"
    shutil.rmtree(path, ignore_errors=True)
    client = DatalakeClient(user_id="bench", base_path=path, create_dirs=True)
    rnd = random.Random(5)
    client.upload_raw(pd.DataFrame({"image": [photo(rnd) for _ in range(PHOTOS)]}), provider="test", dataset="photos")
    process(client)
    client.build_db()
    return client, [p.rsplit("/", 1)[-1] for p in client.sql("select path from assets")["path"]]


def new_thumbnails(client: DatalakeClient, names: list[str]) -> tuple[float, float, float]:
    """Seconds for every thumbnail over HTTP from an empty cache, 6 at a time; for Pillow decoding
    each whole image one by one; and the photos' mean size in bytes."""
    from PIL import Image

    shutil.rmtree(client.lake.cache, ignore_errors=True)
    pages = client.browse()
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
            list(pool.map(lambda n: get(f"{pages.url}thumbnails/{n}"), names))
        ours = time.perf_counter() - start
    finally:
        pages.stop()
    files = [client.lake.assets / n[:2] / n for n in names]
    start = time.perf_counter()
    for f in files:
        with Image.open(f) as image:
            image.convert("RGB").resize((256, 192))
    return ours, time.perf_counter() - start, statistics.mean(f.stat().st_size for f in files)


def main() -> None:
    parser = lake_parser(__doc__)
    parser.add_argument("--runs", type=int, default=20, help="timed requests after 2 warm-ups; the median (default 20)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    client = open_lake(workdir, args.rows, args.images, fresh=False)
    if not client.get_db_info()["exists"] or client.get_db_info()["behind"]:
        client.build_db()
    total = client.count(**SEARCH)
    query = "&".join(f"{k}={v}" for k, v in GALLERY.items())
    pages = client.browse()
    try:
        base = pages.url
        overview_s = median_time(lambda: get(base), args.runs)
        gallery_s = median_time(lambda: get(f"{base}gallery?{query}"), args.runs)
        search_s = median_time(lambda: (client.search(**SEARCH, limit=100), client.count(**SEARCH)), args.runs)
        later_s = median_time(lambda: get(f"{base}gallery?{query}&page=50"), args.runs)
        later_search_s = median_time(lambda: (client.search(**SEARCH, limit=100, offset=4900),
                                              client.count(**SEARCH)), args.runs)
        text_s = median_time(lambda: get(f"{base}gallery?{TEXT_GALLERY}"), args.runs)
        text_search_s = median_time(lambda: (client.search(**TEXT_SEARCH, limit=100), client.count(**TEXT_SEARCH)),
                                    args.runs)
        first = client.search(**SEARCH, limit=1)["path"][0].rsplit("/", 1)[-1]
        get(f"{base}thumbnails/{first}")
        cached_s = median_time(lambda: get(f"{base}thumbnails/{first}"), args.runs)
        cached_file = client.lake.cache / "thumbnails" / first[:2] / f"{first.split('.')[0]}.jpg"
        read_s = median_time(cached_file.read_bytes, args.runs)
    finally:
        pages.stop()
    photo_client, names = photo_lake(workdir)
    thumbs_s, decode_s, mean_bytes = new_thumbnails(photo_client, names)
    print(f"\n{client.count():,} catalog rows; the gallery search matches {total:,}; "
          f"{len(names)} photos of {mean_bytes / 1000:.0f} KB on average")
    print_table([
        ("overview page", "ms", overview_s, None, "", PAGE_TARGET, "< 300 ms"),
        ("gallery page of 100 (HTML)", "ms", gallery_s, search_s, "client.search + count", PAGE_TARGET, "< 300 ms"),
        ("gallery page 50", "ms", later_s, later_search_s, "client.search + count", PAGE_TARGET, "< 300 ms"),
        ("gallery, JSON-path text search, whole lake", "ms", text_s, text_search_s, "client.search + count", None,
         "none"),
        ("cached thumbnail", "ms", cached_s, read_s, "read the cached file", CACHED_TARGET, "< 10 ms"),
        (f"{len(names)} new thumbnails", "s", thumbs_s, decode_s, "Pillow full decode, 1 by 1",
         NEW_THUMBNAILS_TARGET, "< 3 s"),
    ])


if __name__ == "__main__":
    main()

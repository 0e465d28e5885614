"""Check that the assets rows point at are in the store and, with `deep`, still hash to their name.

A row's `path` is only ever resolved inside `<lake>/assets`, and only when it is the store path
of its own `hash` (`ab/cd/<hash>.<ext>`); any other path counts as missing and is never touched.
"""

from __future__ import annotations

import math
import os
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import xxhash

from . import db
from .assets import CHUNK, asset_relpath
from .errors import DatalakeError, ValidationError
from .lake import Lake
from .progress import progress

ASSET_PATH = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\.[a-z0-9]{1,10}")
MAX_LISTED = 100
BATCH = 1000
READERS = 8  # files checked at once: stat and read latency dominate, above all on a NAS


def asset_file(lake: Lake, digest: Any, relpath: Any) -> str | None:
    """The store file of a row's asset, or None unless `relpath` is `ab/cd/<digest>.<ext>` for its `digest`."""
    if not isinstance(digest, str) or not isinstance(relpath, str) or not ASSET_PATH.fullmatch(relpath):
        return None
    if relpath != asset_relpath(digest, relpath.rsplit(".", 1)[1]):
        return None
    return os.path.join(lake.assets, relpath)


def file_digest(path: str | Path) -> str:
    """The xxh3-128 hex digest of a file's bytes, read in chunks."""
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _distinct_assets(lake: Lake, rows: pd.DataFrame | None) -> list[tuple[Any, Any]]:
    """(hash, path) of each distinct asset, sorted so that a seed always picks the same sample."""
    if rows is None:
        with db.connect(lake) as con:
            return con.execute("select hash, path from assets order by hash, path").fetchall()
    columns = [rows[c] if c in rows.columns else [None] * len(rows) for c in ("hash", "path")]
    pairs = {(_text(h), _text(p)) for h, p in zip(*columns)} - {(None, None)}
    return sorted(pairs, key=lambda pair: (str(pair[0]), str(pair[1])))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check(lake: Lake, digest: Any, relpath: Any, deep: bool) -> str:
    """`ok`, `missing` or `mismatched` for one asset."""
    path = asset_file(lake, digest, relpath)
    if path is None or not os.path.isfile(path):
        return "missing"
    if deep:
        try:
            return "ok" if file_digest(path) == digest else "mismatched"
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise DatalakeError(f"cannot read asset {path}: {exc.strerror}") from None
    return "ok"


def validate_assets(lake: Lake, rows: pd.DataFrame | None = None, sample_percent: float = 100,
                    deep: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Check the distinct assets of `rows` (default: every asset in the database) exist; `deep` re-hashes them.

    `sample_percent` checks a random sample (at least one asset) of the distinct assets, the
    same one for the same `seed`. `integrity_rate` is the fraction of checked assets that are
    present (and, with `deep`, hash right); 1.0 when nothing was checked. Missing and mismatched
    assets are listed by their row path (their hash when the path is empty), the first 100 of each.
    """
    if not 0 < sample_percent <= 100:
        raise ValidationError(f"sample_percent must be more than 0 and at most 100 (got {sample_percent})")
    assets = _distinct_assets(lake, rows)
    size = min(len(assets), math.ceil(len(assets) * sample_percent / 100))
    chosen = assets if size == len(assets) else random.Random(seed).sample(assets, size)
    found: dict[str, list[str]] = {"missing": [], "mismatched": []}
    counts = {"missing": 0, "mismatched": 0}
    with ThreadPoolExecutor(READERS) as pool, \
            progress(total=size, desc="validate", unit="asset") as bar:
        for start in range(0, size, BATCH):
            batch = chosen[start:start + BATCH]
            for (digest, relpath), outcome in zip(batch, pool.map(lambda a: _check(lake, *a, deep), batch)):
                if outcome != "ok":
                    counts[outcome] += 1
                    if len(found[outcome]) < MAX_LISTED:
                        found[outcome].append(relpath if isinstance(relpath, str) else str(digest))
            bar.update(len(batch))
    bad = counts["missing"] + counts["mismatched"]
    return {"total": len(assets), "checked": size, "missing": found["missing"], "missing_count": counts["missing"],
            "integrity_rate": (size - bad) / size if size else 1.0,
            "mismatched": found["mismatched"], "mismatch_count": counts["mismatched"]}

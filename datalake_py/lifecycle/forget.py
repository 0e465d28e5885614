"""Removing assets from the lake for good: their store files, their thumbnails, and their entries
in the ledger (asset facts, fingerprints, near pairs), so the next build holds nothing of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..browse.thumbnails import NOT_AN_IMAGE, thumbnail_path
from ..fs import atomic_path
from ..lake import HASH_PATTERN, STORE_FOLDERS, Lake
from ..upload.assets import real_folder_names

STORE_SCHEMA = pa.schema([("hash", pa.string()), ("path", pa.string()), ("bytes", pa.int64())])


def store_files(lake: Lake, hashes_of: Iterable[str] | None = None) -> tuple[pa.Table, list[Path]]:
    """Every asset file in the store (hash, path under assets/, bytes), and the other files there
    (hidden temporary names a killed writer left); with `hashes_of`, only the store folders
    those hashes live in are listed."""
    hashes, paths, sizes, others = [], [], [], []
    shards = STORE_FOLDERS if hashes_of is None else sorted({digest[:2] for digest in hashes_of})
    for shard in shards:
        folder = lake.assets / shard
        if not folder.is_dir():
            continue
        for name in real_folder_names(folder):
            digest = name.split(".", 1)[0]
            if HASH_PATTERN.fullmatch(digest) and digest[:2] == shard:
                hashes.append(digest)
                paths.append(f"{shard}/{name}")
                sizes.append(os.lstat(folder / name).st_size)
            else:
                others.append(folder / name)
    return pa.Table.from_pydict({"hash": hashes, "path": paths, "bytes": sizes}, schema=STORE_SCHEMA), others


LEDGER_HASH_COLUMNS = {"asset_ledger": ("hash",), "fingerprint_ledger": ("hash",), "pair_ledger": ("hash_a", "hash_b")}


def forget_ledger_entries(con: duckdb.DuckDBPyConnection, lake: Lake, gone: str) -> int:
    """Rewrite the ledger files that name an asset of the temporary table `gone` (hash) without those
    rows (a file left empty goes); how many rows went. The caller holds the `fingerprints` lock."""
    removed = 0
    hashes = pa.array([r[0] for r in con.execute(f"select hash from {gone}").fetchall()], pa.string())
    if not len(hashes):
        return 0
    for folder_name, columns in LEDGER_HASH_COLUMNS.items():
        folder: Path = getattr(lake, folder_name)
        files = sorted(str(p) for p in folder.glob("*.parquet"))
        if not files:
            continue
        matches = " or ".join(f"{c} in (select hash from {gone})" for c in columns)
        touched = [r[0] for r in con.execute(
            f"select distinct filename from read_parquet(?, filename=true, union_by_name=true) where {matches}",
            [files]).fetchall()]
        for name in touched:
            removed += _drop_hashes(Path(name), columns, hashes)
    return removed


def _drop_hashes(path: Path, columns: tuple[str, ...], hashes: pa.Array) -> int:
    table = pq.read_table(path)
    named = pc.fill_null(pc.is_in(table[columns[0]], hashes), False)
    for column in columns[1:]:
        named = pc.or_(named, pc.fill_null(pc.is_in(table[column], hashes), False))
    kept = table.filter(pc.invert(named))
    if kept.num_rows:
        with atomic_path(path) as tmp:
            pq.write_table(kept, tmp)
    else:
        path.unlink()
    return table.num_rows - kept.num_rows


def remove_store_files(lake: Lake, assets: list[tuple[str, str]]) -> None:
    """Delete each asset (hash, path under assets/) from the store, and its thumbnail; done ones are skipped."""
    for digest, relpath in assets:
        (lake.assets / relpath).unlink(missing_ok=True)
        thumb = thumbnail_path(lake, digest)
        for path in (thumb, thumb.with_suffix(NOT_AN_IMAGE)):
            path.unlink(missing_ok=True)

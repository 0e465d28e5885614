"""Near-duplicate pairs: the pairs the lake's fingerprints make within MAX_DISTANCE bits.

Found with faiss's binary flat index (exact Hamming distances, computed with the CPU's popcount in
its own threads): every fingerprint against every other is 39 s for 300,000 of them on 2 cores,
where SQL comparing pairs one by one takes about 7 ns a pair (an hour for a million fingerprints).

Each fingerprint part is paired once, after it is written: its fingerprints against all the lake
has, written as `ledger/near_pairs/<the fingerprint part's name>` (under a temporary name, then
renamed). A run pairs every fingerprint part that has no pair part yet, so a run killed in between
is completed by the next one. A pair can be found from both sides (two parts paired in one run):
the `near_duplicates` mart keeps it once. `cross_pairs` pairs two given sets of fingerprints the
same way, for leakage checks between collections.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..fs import atomic_path
from ..lake import Lake
from . import MAX_DISTANCE

PAIR_SCHEMA = pa.schema([("hash_a", pa.string()), ("hash_b", pa.string()), ("distance", pa.int8())])


def pair_new_fingerprints(lake: Lake, fingerprint_parts: list[str]) -> int:
    """Record the pairs of each fingerprint part that has none yet; how many pairs were recorded.
    The caller holds the `fingerprints` lake lock."""
    for leftover in lake.pair_ledger.glob(".*.tmp"):  # a part a killed run was writing
        leftover.unlink()
    pending = [Path(p) for p in fingerprint_parts if not lake.pair_record(Path(p).name).exists()]
    if not pending:
        return 0
    import faiss  # about 0.3 s to import: only runs that pair load it

    hashes, values, parts = _fingerprints(fingerprint_parts)
    index = faiss.IndexBinaryFlat(64)
    index.add(values)
    recorded = 0
    for part in pending:
        rows = np.nonzero(parts == str(part))[0]
        found = _pairs(index, values, hashes, rows) if len(rows) else PAIR_SCHEMA.empty_table()
        with atomic_path(lake.pair_record(part.name)) as tmp:
            pq.write_table(found, tmp)
        recorded += found.num_rows
    return recorded


def _fingerprints(fingerprint_parts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, fingerprints as 8 bytes each, the part each came from) of every image fingerprinted."""
    with duckdb.connect() as con:
        table = con.sql("""
            select hash, any_value(fingerprint) as fingerprint, min(filename) as part
            from read_parquet($parts, filename=true) where fingerprint is not null group by hash order by hash""",
                        params={"parts": fingerprint_parts}).to_arrow_table()
    return (table["hash"].to_numpy(zero_copy_only=False), packed(table["fingerprint"].to_numpy()),
            table["part"].to_numpy(zero_copy_only=False))


def packed(fingerprints: np.ndarray) -> np.ndarray:
    """Fingerprints (int64) as the rows of 8 bytes faiss's binary indexes take."""
    return np.ascontiguousarray(fingerprints.astype(np.int64).view(np.uint8).reshape(-1, 8))


def _within(index: object, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, index row, distance) of every fingerprint in `index` within `radius` bits of a query."""
    limits, distances, found = index.range_search(queries, radius + 1)  # faiss's radius is strict
    return np.repeat(np.arange(len(queries)), np.diff(limits).astype(np.int64)), found, distances


def _pairs(index: object, values: np.ndarray, hashes: np.ndarray, rows: np.ndarray) -> pa.Table:
    """The pairs of the fingerprints at `rows` with every fingerprint in `index`, itself left out."""
    queried, found, distances = _within(index, values[rows], MAX_DISTANCE)
    queried = rows[queried]
    other = found != queried
    a, b = hashes[queried[other]], hashes[found[other]]
    pairs = pa.table({"hash_a": np.minimum(a, b), "hash_b": np.maximum(a, b), "distance": distances[other]})
    once = pairs.group_by(["hash_a", "hash_b"]).aggregate([("distance", "min")])  # both sides in this part
    return pa.table({"hash_a": once["hash_a"], "hash_b": once["hash_b"],
                     "distance": once["distance_min"]}).cast(PAIR_SCHEMA)


def cross_pairs(fingerprints_a: dict[str, int], fingerprints_b: dict[str, int], threshold: int) -> pa.Table:
    """The pairs (hash_a, hash_b, distance) of a fingerprint of `a` and one of `b` (hash to fingerprint)
    that differ in at most `threshold` bits, the same hash on both sides included."""
    if not fingerprints_a or not fingerprints_b:
        return PAIR_SCHEMA.empty_table()
    import faiss  # loaded only when there are images to pair

    hashes_a, hashes_b = np.array(list(fingerprints_a), dtype=object), np.array(list(fingerprints_b), dtype=object)
    index = faiss.IndexBinaryFlat(64)
    index.add(packed(np.fromiter(fingerprints_b.values(), np.int64, len(fingerprints_b))))
    queried, found, distances = _within(index, packed(np.fromiter(fingerprints_a.values(), np.int64,
                                                                   len(fingerprints_a))), threshold)
    return pa.table({"hash_a": hashes_a[queried], "hash_b": hashes_b[found], "distance": distances}).cast(PAIR_SCHEMA)

"""Near-duplicate pairs: the pairs the lake's fingerprints make within MAX_DISTANCE bits.

Found with faiss's binary flat index (exact Hamming distances, computed with the CPU's popcount in
its own threads): every fingerprint against every other is 39 s for 300,000 of them on 2 cores,
where SQL comparing pairs one by one takes about 7 ns a pair (an hour for a million fingerprints).

Each fingerprint part is paired once, after it is written: its fingerprints against all the lake
has, written as `ledger/near_pairs/<the fingerprint part's name>` (under a temporary name, then
renamed). A run pairs every fingerprint part that has no pair part yet, so a run killed in between
is completed by the next one. A pair can be found from both sides (two parts paired in one run):
the `near_duplicates` mart keeps it once.
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
    values = table["fingerprint"].to_numpy().astype(np.int64).view(np.uint8).reshape(-1, 8)
    return (table["hash"].to_numpy(zero_copy_only=False), np.ascontiguousarray(values),
            table["part"].to_numpy(zero_copy_only=False))


def _pairs(index: object, values: np.ndarray, hashes: np.ndarray, rows: np.ndarray) -> pa.Table:
    """The pairs of the fingerprints at `rows` with every fingerprint in `index`, itself left out."""
    limits, distances, found = index.range_search(values[rows], MAX_DISTANCE + 1)  # radius: strictly under
    queried = np.repeat(rows, np.diff(limits).astype(np.int64))
    other = found != queried
    a, b = hashes[queried[other]], hashes[found[other]]
    pairs = pa.table({"hash_a": np.minimum(a, b), "hash_b": np.maximum(a, b), "distance": distances[other]})
    once = pairs.group_by(["hash_a", "hash_b"]).aggregate([("distance", "min")])  # both sides in this part
    return pa.table({"hash_a": once["hash_a"], "hash_b": once["hash_b"],
                     "distance": once["distance_min"]}).cast(PAIR_SCHEMA)

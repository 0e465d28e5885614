"""Near-duplicate groups: the lake's near pairs within a threshold, joined into groups of images
that are all near-duplicates of one another, directly or through other members."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from ..errors import ValidationError
from . import DEFAULT_THRESHOLD, MAX_DISTANCE

GROUP_COLUMNS = ["group", "hash", "distance", "path", "num_rows", "datasets"]


def near_duplicate_groups(con: duckdb.DuckDBPyConnection, hashes: list[str] | None,
                          threshold: int | None) -> pd.DataFrame:
    """One row per image in a group of near-duplicates: group (1 is the largest), hash, distance
    (the fewest bits it differs in from another member), path, num_rows, datasets. With `hashes`,
    only pairs whose both sides are among them."""
    threshold = check_threshold(threshold)
    query = "select hash_a, hash_b, distance from near_duplicates where distance <= ?"
    params: list[Any] = [threshold]
    if hashes is not None:
        query += " and hash_a in (select unnest(?)) and hash_b in (select unnest(?))"
        params += [hashes, hashes]
    pairs = con.execute(query, params).fetchall()
    closest: dict[str, int] = {}
    parent: dict[str, str] = {}
    for a, b, distance in pairs:
        closest[a], closest[b] = min(closest.get(a, 64), distance), min(closest.get(b, 64), distance)
        parent[_root(parent, a)] = _root(parent, b)
    members: dict[str, list[str]] = {}
    for digest in closest:
        members.setdefault(_root(parent, digest), []).append(digest)
    groups = sorted(members.values(), key=lambda group: (-len(group), min(group)))
    rows = [{"group": n, "hash": digest, "distance": closest[digest]}
            for n, group in enumerate(groups, start=1) for digest in sorted(group, key=lambda h: (closest[h], h))]
    found = pd.DataFrame(rows, columns=["group", "hash", "distance"])
    facts = con.execute("select hash, path, num_rows, datasets from assets where hash in (select unnest(?))",
                        [list(closest)]).df()
    return found.merge(facts, on="hash", how="left")[GROUP_COLUMNS]


def check_threshold(threshold: int | None) -> int:
    if threshold is None:
        return DEFAULT_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= MAX_DISTANCE:
        raise ValidationError(f"threshold {threshold!r} is not allowed: give a number of bits from 0 to "
                              f"{MAX_DISTANCE} (the default, {DEFAULT_THRESHOLD}, finds resized and re-encoded copies)")
    return threshold


def _root(parent: dict[str, str], digest: str) -> str:
    """The representative of `digest`'s group (union-find, paths halved on the way)."""
    parent.setdefault(digest, digest)
    while parent[digest] != digest:
        parent[digest] = parent[parent[digest]]
        digest = parent[digest]
    return digest

"""Leakage between two sets of rows (collection versions, search results): the assets both hold,
the near-duplicate images across them, and the rows and uploads both draw on; and which assets
of new rows to leave out of a collection version to keep it clear of another's.

Fingerprints come from the fingerprint ledger (the lake's files, so no database build is needed);
an image the indexer has not reached yet is fingerprinted on the spot and recorded nowhere, so a
check only reads the lake. Assets that are not images have no near-duplicates, only exact ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ValidationError
from ..lake import Lake
from ..upload.assets import IMAGE_EXTS
from .groups import check_threshold
from .index import compute_fingerprints, recorded_fingerprints
from .pairs import cross_pairs

if TYPE_CHECKING:
    from ..collections import CollectionManager

EXACT_COLUMNS = ["hash", "path", "rows_a", "rows_b"]
NEAR_COLUMNS = ["hash_a", "hash_b", "distance", "path_a", "path_b"]


@dataclass(frozen=True)
class Side:
    """One side of a check: its rows, and the collection version they are (None for plain rows)."""

    rows: pd.DataFrame
    collection: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        return f"collection {self.collection} {self.version}" if self.collection else f"{len(self.rows):,} rows"

    def to_dict(self) -> dict[str, Any]:
        named = {"collection": self.collection, "version": self.version} if self.collection else {}
        return {"label": self.label, **named, "rows": len(self.rows)}


def side_of(manager: "CollectionManager", source: Any, version: str | None, argument: str) -> Side:
    """A side from a collection name (its latest version unless `version`) or lake rows as
    `search()` returns them."""
    if isinstance(source, str):
        found = manager.info(source, version)["version"]
        return Side(manager.members(source, found), source, found)
    if not isinstance(source, pd.DataFrame):
        raise TypeError(f"{argument} must be a collection name or a DataFrame of lake rows, "
                        f"not {type(source).__name__}")
    if version is not None:
        raise ValidationError(f"version_{argument} applies to a collection name only: {argument} is a DataFrame")
    if "hash" not in source.columns:
        raise ValidationError(f"the rows given as {argument} have no `hash` column: pass rows as `search()` "
                              "returns them")
    return Side(source)


@dataclass(frozen=True)
class LeakageReport:
    """What two sides share: `exact` assets (hash, path, rows_a, rows_b), `near` pairs of images
    (hash_a on side a, hash_b on side b, distance, path_a, path_b) within `threshold` bits, row ids
    (`same_rows`) and upload ids (`same_uploads`) found on both sides, and how many image assets
    could not be fingerprinted (`unchecked_images`: missing from the store). Rows of one upload
    on both sides are usual (a split drawn from one upload), so they are told, not counted as leakage."""

    a: Side
    b: Side
    threshold: int
    exact: pd.DataFrame
    near: pd.DataFrame
    same_rows: list[str]
    same_uploads: list[str]
    unchecked_images: int

    @property
    def leaks(self) -> bool:
        """Whether the sides share an asset, a near-duplicate image or a row."""
        return bool(len(self.exact) or len(self.near) or self.same_rows)

    def findings(self) -> list[str]:
        """What leaks, in words: each kind found with its count."""
        counts = [(len(self.exact), "shared asset", ""), (len(self.near), "near-duplicate pair",
                                                          f" (threshold {self.threshold})"),
                  (len(self.same_rows), "shared row", "")]
        return [f"{n:,} {what}{'' if n == 1 else 's'}{more}" for n, what, more in counts if n]

    def summary(self) -> str:
        """One line: what leaks between the two sides, or that nothing does."""
        between = f"{self.a.label} and {self.b.label}"
        if not self.leaks:
            return f"No leakage between {between} (threshold {self.threshold})"
        return f"Leakage between {between}: " + ", ".join(self.findings())

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values: the sides, counts, and every item."""
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "threshold": self.threshold, "leaks": self.leaks,
                "counts": {"exact": len(self.exact), "near": len(self.near), "same_rows": len(self.same_rows),
                           "same_uploads": len(self.same_uploads), "unchecked_images": self.unchecked_images},
                "exact": _records(self.exact), "near": _records(self.near),
                "same_rows": self.same_rows, "same_uploads": self.same_uploads}


def check_leakage(lake: Lake, a: Side, b: Side, threshold: int | None, num_proc: int) -> LeakageReport:
    """The leakage report of two sides; `threshold` in bits (default DEFAULT_THRESHOLD)."""
    threshold = check_threshold(threshold)
    assets_a, assets_b = _assets(a.rows), _assets(b.rows)
    exact = assets_a.merge(assets_b.drop(columns="path"), on="hash", suffixes=("_a", "_b"))
    fingerprints, unchecked = _fingerprints(lake, pd.concat([assets_a, assets_b]), num_proc)
    near = _near(assets_a, assets_b, fingerprints, threshold)
    shared = set(exact["hash"])
    near = near[~(near["hash_a"].isin(shared) & near["hash_b"].isin(shared))]  # both images are in `exact`
    return LeakageReport(a, b, threshold, exact.sort_values("hash", ignore_index=True)[EXACT_COLUMNS],
                         near.reset_index(drop=True), _common(a.rows, b.rows, "row_id"),
                         _common(a.rows, b.rows, "_upload_id"), unchecked)


def matching_hashes(lake: Lake, rows: pd.DataFrame, of: pd.DataFrame, threshold: int | None,
                    num_proc: int) -> list[str]:
    """The hashes of `rows`' assets that `of` holds too and, with a threshold, those of images
    within `threshold` bits of one of `of`'s."""
    assets, others = _assets(rows), _assets(of)
    found = set(assets["hash"]) & set(others["hash"])
    if threshold is not None:
        fingerprints, _ = _fingerprints(lake, pd.concat([assets, others]), num_proc)
        found |= set(_near(assets, others, fingerprints, threshold)["hash_a"])
    return sorted(found)


def _assets(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per asset of `rows`: hash, path, rows (how many rows carry it)."""
    if "hash" not in rows.columns:
        return pd.DataFrame({"hash": pd.Series(dtype=object), "path": pd.Series(dtype=object),
                             "rows": pd.Series(dtype="int64")})
    paths = rows["path"] if "path" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    carried = pd.DataFrame({"hash": rows["hash"], "path": paths}).dropna(subset=["hash"])
    return carried.groupby("hash", as_index=False).agg(path=("path", "first"), rows=("path", "size"))


def _fingerprints(lake: Lake, assets: pd.DataFrame, num_proc: int) -> tuple[dict[str, int], int]:
    """Hash to fingerprint of the image assets among `assets` (from the ledger, else computed now),
    and how many image assets got none because their store file is missing."""
    assets = assets.drop_duplicates("hash")
    known = recorded_fingerprints(lake, assets["hash"].tolist())
    todo = [(h, p) for h, p in zip(assets["hash"], assets["path"])
            if h not in known and isinstance(p, str) and p.rsplit(".", 1)[-1] in IMAGE_EXTS]
    computed = compute_fingerprints(lake, todo, num_proc) if todo else {}
    found = {**known, **computed}
    return {h: v for h, v in found.items() if v is not None}, len(todo) - len(computed)


def _near(assets_a: pd.DataFrame, assets_b: pd.DataFrame, fingerprints: dict[str, int],
          threshold: int) -> pd.DataFrame:
    """The pairs of a different image on each side within `threshold` bits, closest first."""
    pairs = cross_pairs({h: fingerprints[h] for h in assets_a["hash"] if h in fingerprints},
                        {h: fingerprints[h] for h in assets_b["hash"] if h in fingerprints}, threshold).to_pandas()
    pairs = pairs[pairs["hash_a"] != pairs["hash_b"]].astype({"distance": "int64"})
    paths_a, paths_b = assets_a.set_index("hash")["path"], assets_b.set_index("hash")["path"]
    pairs = pairs.assign(path_a=pairs["hash_a"].map(paths_a), path_b=pairs["hash_b"].map(paths_b))
    return pairs.sort_values(["distance", "hash_a", "hash_b"])[NEAR_COLUMNS]


def _common(rows_a: pd.DataFrame, rows_b: pd.DataFrame, column: str) -> list[str]:
    """The values of `column` found on both sides, sorted (none when a side lacks the column)."""
    if column not in rows_a.columns or column not in rows_b.columns:
        return []
    return sorted(set(rows_a[column].dropna()) & set(rows_b[column].dropna()))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in frame.to_dict("records")]

"""Statistics of the rows a search matches: rows, assets and bytes, image sizes, file types, meta
values, duplicate rows dropped at upload, near-duplicate groups and label lengths, and the
`dataset_stats` mart's row for each partition they come from.

The figures are computed over the matched rows themselves (a meta filter may match part of a
partition), with the same definitions as the mart: each asset counts once, percentiles are
nearest-rank (DuckDB's quantile_disc, a value that occurs), the label is the catalog's `label`
column measured in characters as stored. Duplicate rows are known per upload, so they are the
matched partitions' (an upload drops duplicates of rows of its whole partition).
"""

from __future__ import annotations

from typing import Any, Sequence

import duckdb

from ..curation.groups import check_threshold, near_duplicate_groups
from ..errors import NotFoundError
from ..schema import Schema
from ..sql import quote
from .db import has_table
from .search import catalog_columns, matching_query, run_search

PERCENTILES = {"p5": 0.05, "p50": 0.5, "p95": 0.95}  # those of the dataset_stats mart
TOP_VALUES = 20  # the most frequent values of each meta field shown
LABEL = "label"  # the column read as the label (the one text search and the pages read by default)


def dataset_stats(con: duckdb.DuckDBPyConnection, schema: Schema, threshold: int | None = None,
                  providers: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
                  tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                  meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The statistics of the catalog rows `search` with these filters matches, as a plain dict
    (JSON-serialisable): rows, assets, bytes, images (count, width and height percentiles),
    file_types, meta (per meta field: distinct values and the most frequent with their rows),
    labels (rows with a label, length percentiles), duplicate_rows, near_duplicates (threshold,
    fingerprinted images, groups, images in them) and partitions (the mart's rows, each with its
    dataset's `license` from the dataset_licenses mart)."""
    threshold = check_threshold(threshold)
    _require_mart(con)
    columns = catalog_columns(con)
    sql, params = matching_query(con, {"providers": providers, "datasets": datasets, "tasks": tasks,
                                       "variants": variants, "meta": meta})
    lowered = {c.lower(): c for c in columns}
    fields = sorted({f for rule in schema.tasks.values() for f in rule.required_fields if f.lower() in lowered})
    label = lowered.get(LABEL)
    cursor = run_search(con, _figures_query(sql, fields, label), params)
    found = dict(zip((d[0] for d in cursor.description), cursor.fetchone()))
    partitions = _partitions(con, found["partition_keys"])
    return {
        "rows": found["rows"],
        "assets": found["assets"],
        "bytes": found["bytes"],
        "images": {"count": found["images"], "width": _percentiles(found["widths"]),
                   "height": _percentiles(found["heights"])},
        "file_types": _ranked(found["file_types"] or {}),
        "meta": {f: {"distinct": len(found[f"meta_{i}"]), "top": _ranked(found[f"meta_{i}"], TOP_VALUES)}
                 for i, f in enumerate(fields) if found[f"meta_{i}"]},
        "labels": {"rows": found["label_rows"], "length": _percentiles(found["label_lengths"])},
        "duplicate_rows": sum(p["duplicate_rows"] for p in partitions),
        "near_duplicates": _near_duplicates(con, found["image_hashes"], found["fingerprinted"], threshold),
        "partitions": partitions,
    }


def _require_mart(con: duckdb.DuckDBPyConnection) -> None:
    for mart in ("dataset_stats", "dataset_licenses"):
        if not has_table(con, mart):
            raise NotFoundError(f"the database has no {mart} table yet (it was built by an older datalake); "
                                "update it with `datalake db update` (or client.build_db())")


def _figures_query(search_sql: str, fields: list[str], label: str | None) -> str:
    """One query giving every figure over the rows `search_sql` matches, each a column of one row."""
    quantiles = "[" + ", ".join(str(q) for q in PERCENTILES.values()) + "]"
    length = f"length({quote(label)}::varchar)" if label else "null::bigint"
    kept = "".join(f", {quote(f)}" for f in fields)
    meta = "".join(f",\n    (select histogram({quote(f)}::varchar) from matched) as meta_{i}" for i, f in enumerate(fields))
    return f"""
with matched as materialized (
    select hash, provider || '/' || dataset || '/' || task || '/' || variant as partition_key,
           {length} as label_length{kept}
    from ({search_sql})
),
stored as materialized (
    select * from assets where hash in (select hash from matched where hash is not null)
)
select
    (select count(*) from matched) as rows,
    (select count(*) from stored) as assets,
    (select coalesce(sum(bytes), 0)::bigint from stored) as bytes,
    (select count(width) from stored) as images,
    (select quantile_disc(width, {quantiles}) from stored) as widths,
    (select quantile_disc(height, {quantiles}) from stored) as heights,
    (select histogram(ext) from stored) as file_types,
    (select count(label_length) from matched) as label_rows,
    (select quantile_disc(label_length, {quantiles}) from matched) as label_lengths,
    (select count(*) from asset_fingerprints where hash in (select hash from stored)) as fingerprinted,
    (select coalesce(list(hash order by hash), []) from stored where width is not null) as image_hashes,
    (select coalesce(list(distinct partition_key order by partition_key), []) from matched) as partition_keys{meta}
"""


def _partitions(con: duckdb.DuckDBPyConnection, keys: list[str]) -> list[dict[str, Any]]:
    """The dataset_stats rows of these partitions, in key order, as plain dicts."""
    if not keys:
        return []
    cursor = con.execute("select dataset_stats.*, dataset_licenses.license from dataset_stats "
                         "left join dataset_licenses using (provider, dataset) "
                         "where partition_key in (select unnest(?)) order by partition_key", [keys])
    names = [d[0] for d in cursor.description]
    return [{n: (_ranked(v) if n == "file_types" else v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def _near_duplicates(con: duckdb.DuckDBPyConnection, hashes: list[str], fingerprinted: int,
                     threshold: int) -> dict[str, Any]:
    """The groups of near-duplicates among these images (fingerprinted: how many of them have a fingerprint)."""
    groups = near_duplicate_groups(con, hashes, threshold) if fingerprinted else None
    return {"threshold": threshold, "fingerprinted": fingerprinted,
            "groups": 0 if groups is None else int(groups["group"].nunique()),
            "images": 0 if groups is None else len(groups)}


def _percentiles(values: list | None) -> dict[str, Any] | None:
    return None if values is None else dict(zip(PERCENTILES, values))


def _ranked(counts: dict[Any, int], top: int | None = None) -> dict[str, int]:
    """Values by their count, most frequent first (ties by value), at most `top` of them."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return {str(value): int(count) for value, count in ranked[:top]}

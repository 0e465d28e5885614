"""Search the built catalog: hierarchy globs, meta equality, text and JSON-path content.

Values are always bound parameters; only column names (checked against the catalog's own
columns, then quoted) are written into the SQL.
"""

from __future__ import annotations

from typing import Any, Sequence

import duckdb
import pandas as pd

from .db import quote
from .errors import ValidationError

LEVELS = ("provider", "dataset", "task", "variant")


def catalog_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'main' "
        "and table_name = 'catalog' order by ordinal_position").fetchall()]


def _require_column(name: Any, columns: list[str], what: str) -> str:
    if name not in columns:
        raise ValidationError(f"{what} {name!r} is not a column of the catalog; columns: {', '.join(columns)}")
    return name


def _text_condition(spec: dict[str, Any], columns: list[str]) -> tuple[str, list[Any]]:
    unknown = set(spec) - {"column", "text", "json_path"}
    if unknown or "text" not in spec:
        raise ValidationError('text_search takes {"column": ..., "text": ..., "json_path": optional}')
    column = quote(_require_column(spec.get("column", "label"), columns, "text_search column"))
    text = str(spec["text"])
    path = spec.get("json_path")
    if not path:
        return f"contains(lower({column}::varchar), lower(?))", [text]
    if not str(path).startswith("$"):
        raise ValidationError(f"json_path {path!r} must start with '$', e.g. $.elements[*].text")
    if "*" in str(path):  # the path selects many values: any of them may match
        return (f"len(list_filter(try(json_extract_string({column}, ?)), lambda v: contains(lower(v), lower(?)))) > 0",
                [path, text])
    return f"contains(lower(try(json_extract_string({column}, ?))), lower(?))", [path, text]


def build_query(columns: list[str], providers: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
                tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                meta: dict[str, Any] | None = None, text_search: dict[str, Any] | None = None,
                limit: int | None = None) -> tuple[str, list[Any]]:
    """The SQL and parameters of a search: OR within a level, AND across levels."""
    conditions, params = [], []
    for level, patterns in zip(LEVELS, (providers, datasets, tasks, variants)):
        if isinstance(patterns, str):
            patterns = [patterns]
        if patterns and "*" not in patterns:
            conditions.append("(" + " or ".join(f"{level} glob ?" for _ in patterns) + ")")
            params += [str(p) for p in patterns]
    for key, value in (meta or {}).items():
        column = quote(_require_column(key, columns, "meta field"))
        conditions.append(f"{column}::varchar = ?" if value is not None else f"{column} is null")
        params += [str(value)] if value is not None else []
    if text_search:
        condition, values = _text_condition(text_search, columns)
        conditions.append(condition)
        params += values
    sql = "select * from catalog"
    if conditions:
        sql += " where " + " and ".join(conditions)
    if limit is not None:
        if int(limit) < 0:
            raise ValidationError("limit must be 0 or more")
        sql += " limit ?"
        params.append(int(limit))
    return sql, params


def search(con: duckdb.DuckDBPyConnection, **filters: Any) -> pd.DataFrame:
    """Catalog rows matching the filters (see `build_query`); columns empty for every row are dropped."""
    sql, params = build_query(catalog_columns(con), **filters)
    try:
        frame = con.execute(sql, params).df()
    except duckdb.Error as exc:
        raise ValidationError(f"search failed: {exc}") from None
    return frame.dropna(axis=1, how="all") if len(frame) else frame

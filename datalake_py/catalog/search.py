"""Search the built catalog: hierarchy globs, meta equality, text and JSON-path content.

Values are always bound parameters; only column names (checked against the catalog's own
columns, then quoted) are written into the SQL. Arguments of the wrong type raise TypeError (a
negative limit ValueError) naming the argument and what it takes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from numbers import Integral
from typing import Any, Sequence

import duckdb
import pandas as pd

from ..errors import ValidationError
from ..sql import quote

LEVELS = ("provider", "dataset", "task", "variant")
GLOB_CHARACTERS = re.compile(r"[*?\[]")


def catalog_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'main' "
        "and table_name = 'catalog' order by ordinal_position").fetchall()]


def _require_column(name: Any, columns: list[str], what: str) -> str:
    if name not in columns:
        raise ValidationError(f"{what} {name!r} is not a column of the catalog; columns: {', '.join(columns)}")
    return name


def _patterns(argument: str, value: Any) -> list[str]:
    """The globs given for one level: None, one str, or a list (any collection) of str."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Collection) and not isinstance(value, (bytes, Mapping)) \
            and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{argument} must be a list of names or globs (or one as a str), e.g. ['coco_*']; "
                    f"got {_shown(value)}")


def _mapping(argument: str, value: Any, example: str) -> Mapping[str, Any]:
    """`value` if it is a dict (None: empty), else TypeError naming the argument."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{argument} must be a dict, e.g. {example}; got {_shown(value)}")
    return value


def _rows(argument: str, value: Any, none: str) -> int | None:
    """A number of rows (`limit`, `offset`): None (which means `none`), or a whole number, 0 or more."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{argument} must be a whole number of rows (int) or None {none}; got {_shown(value)}")
    if value < 0:
        raise ValueError(f"{argument} must be 0 or more, or None {none}; got {value}")
    return int(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _text_condition(spec: Mapping[str, Any], columns: list[str]) -> tuple[str, list[Any]]:
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
                limit: int | None = None, offset: int | None = None) -> tuple[str, list[Any]]:
    """The SQL and parameters of a search: OR within a level, AND across levels; `offset` rows are
    skipped first (rows come in the catalog's order, so pages of a search follow each other)."""
    conditions, params = [], []
    for level, given in zip(LEVELS, (providers, datasets, tasks, variants)):
        patterns = _patterns(f"{level}s", given)
        if patterns and "*" not in patterns:  # a name without glob characters is compared as is,
            conditions.append("(" + " or ".join(  # which lets DuckDB skip the row groups without it
                f"{level} {'glob' if GLOB_CHARACTERS.search(p) else '='} ?" for p in patterns) + ")")
            params += patterns
    text_search = _mapping("text_search", text_search, '{"column": "label", "text": "..."}')
    limit, offset = _rows("limit", limit, "for every row"), _rows("offset", offset, "to skip none")
    for key, value in _mapping("meta", meta, '{"lang": "ko"}').items():
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
        sql += " limit ?"
        params.append(limit)
    if offset:
        sql += " offset ?"
        params.append(offset)
    return sql, params


def run_search(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> duckdb.DuckDBPyConnection:
    """Run a search's SQL; what DuckDB refuses (a bad JSON path, a value of the wrong type) is a ValidationError."""
    try:
        return con.execute(sql, params)
    except duckdb.Error as exc:
        raise ValidationError(f"search failed: {exc}") from None


def matching_query(con: duckdb.DuckDBPyConnection, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """The SQL and parameters of `filters`, the columns they name checked against the catalog's."""
    named = filters.get("meta") or filters.get("text_search")  # the only filters naming columns
    return build_query(catalog_columns(con) if named else [], **filters)


def search(con: duckdb.DuckDBPyConnection, **filters: Any) -> pd.DataFrame:
    """Catalog rows matching the filters (see `build_query`); columns empty for every row are dropped."""
    frame = run_search(con, *matching_query(con, filters)).df()
    return frame.dropna(axis=1, how="all") if len(frame) else frame


def count(con: duckdb.DuckDBPyConnection, **filters: Any) -> int:
    """How many catalog rows match the filters of `search` (no limit): what a limited search leaves out."""
    sql, params = matching_query(con, filters)
    return run_search(con, f"select count(*) from ({sql})", params).fetchone()[0]

"""Which columns of an upload are stored, and under which rules, decided from its schema alone.

The lake's own columns (lake.LAKE_COLUMNS) are never taken from user data. Rows that came out of
the lake (search results, downloads, collection exports: they carry the lineage columns) may be uploaded again as they are: their lake columns are replaced by the new upload's.
Any other data naming a lake column is refused, as are names the build could not read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import ValidationError
from ..lake import ASSET_COLUMNS, LAKE_COLUMNS, LAKE_ROW_MARKERS, LINEAGE_COLUMNS, READER_COLUMNS, SOURCE_NAME

FILE_COLUMNS = ("image_path", "file_path", "file")


@dataclass
class AssetColumn:
    name: str | None  # None: the rows carry no asset
    mode: str  # "image" (bytes or HF Image struct), "file" (a path), "hash" (an existing asset), "none"


@dataclass
class ColumnPlan:
    """The asset column, the user columns kept as they are, and the columns checked against the meta."""

    asset: AssetColumn
    keep: list[str]
    meta_checked: dict[str, str] = field(default_factory=dict)  # column: the meta value every row must hold
    replaced: list[str] = field(default_factory=list)  # lake columns of lake rows, replaced by this upload
    source_name: str | None = None  # the `_source_name` column of lake rows, whose original names are kept
    files_in_path: bool = False  # lake rows whose assets other than images are files named by `path` (exports)


def plan_columns(schema: pa.Schema, meta: dict[str, str]) -> ColumnPlan:
    """Decide what happens to each column; ValidationError naming the column and the fix when a
    name cannot be stored safely."""
    names = schema.names
    _check_names(names)
    lake_rows = set(LAKE_ROW_MARKERS) <= set(names)  # every row out of the lake has them
    lake_owned = {n for n in names if n.casefold() in {c.casefold() for c in LAKE_COLUMNS}}
    asset = find_asset_column(schema, ignore_hash=lake_rows)
    if lake_rows:
        replaced = sorted(lake_owned - {asset.name})
    else:
        _refuse_lake_columns(lake_owned - {asset.name})
        replaced = []
    keep = [n for n in names if n not in lake_owned and n != asset.name and n not in meta]
    stored = [*keep, *(ASSET_COLUMNS if asset.mode != "none" else ()), *meta, *LINEAGE_COLUMNS]
    _check_case(stored, meta)
    source_name = SOURCE_NAME if lake_rows and SOURCE_NAME in names else None
    files_in_path = (lake_rows and asset.mode == "image" and "path" in names
                     and (pa.types.is_string(schema.field("path").type)
                          or pa.types.is_large_string(schema.field("path").type)))
    return ColumnPlan(asset, keep, {n: meta[n] for n in names if n in meta}, replaced, source_name, files_in_path)


def _check_names(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name == "" or name.strip() == "":
            raise ValidationError("a column has an empty name; give every column a name")
        if name in seen:
            raise ValidationError(f"column {name!r} appears twice; give each column its own name")
        if name.casefold() in READER_COLUMNS:
            raise ValidationError(f"column {name!r} cannot be stored: the database adds a column of that "
                                  "name when it reads the lake's files; rename it")
        seen.add(name)


def _refuse_lake_columns(found: set[str]) -> None:
    if found:
        name = sorted(found)[0]
        raise ValidationError(
            f"column {name!r} is one of the lake's own columns ({', '.join(LAKE_COLUMNS)}), which the lake "
            "writes itself; rename it (rows that came out of the lake, with all of "
            f"{', '.join(LAKE_ROW_MARKERS)}, may carry them)")


def _check_case(stored: list[str], meta: dict[str, str]) -> None:
    """Column names are told apart by the database without regard to case."""
    by_key: dict[str, str] = {}
    for name in stored:
        other = by_key.setdefault(name.casefold(), name)
        if other == name:
            continue
        if other in meta or name in meta:
            column, field = (name, other) if other in meta else (other, name)
            raise ValidationError(f"column {column!r} differs only in case from the meta field {field!r}, which "
                                  "the database cannot tell apart; rename the column or drop it")
        raise ValidationError(f"columns {other!r} and {name!r} differ only in case, which the database "
                              "cannot tell apart; rename one of them")


def find_asset_column(schema: pa.Schema, ignore_hash: bool = False) -> AssetColumn:
    """Which column holds the rows' assets; an error when that is ambiguous. With `ignore_hash`,
    a `hash` column counts only when no other column carries the assets."""
    found = []
    for f in schema:
        t = f.type
        if pa.types.is_struct(t) and t.get_field_index("bytes") >= 0 and t.get_field_index("path") >= 0:
            found.append(AssetColumn(f.name, "image"))
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            found.append(AssetColumn(f.name, "image"))
        elif f.name in FILE_COLUMNS and (pa.types.is_string(t) or pa.types.is_large_string(t)):
            found.append(AssetColumn(f.name, "file"))
    has_hash = "hash" in schema.names and not (ignore_hash and found)
    if len(found) > 1 or (found and has_hash):
        names = [c.name for c in found] + (["hash"] if has_hash else [])
        raise ValidationError(
            f"the data has several asset columns ({', '.join(names)}); datalake stores one asset per row: "
            "keep one of them"
        )
    if found:
        return found[0]
    if has_hash:
        return AssetColumn("hash", "hash")
    if "path" in schema.names and not ignore_hash:
        raise ValidationError("column 'path' is reserved for asset paths; rename it, or to file_path "
                              "if it names files to store")
    return AssetColumn(None, "none")

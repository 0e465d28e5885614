"""The lake-wide column rule: a column name has one type family and one spelling across the lake.

The database build reads every part file of the lake at once (union_by_name): a column that is a
timestamp in one dataset and a double in another, or spelled `Label` in one and `label` in another,
makes that build fail. Processing refuses such an upload before it lands.

The registry (ledger/columns.json) keeps, per lower-cased column name, the claims made on it:
{name, family, type, partition, upload_id}. An upload registers its claims before its part is
written, so a claim may outlive an upload that never landed (a crash, a failure, an overwritten
partition): the registry holds at least the claims the part files back, maybe more. Only when an
upload clashes with a claim are the claims recomputed from the part files (and the uploads still
in staging) before the upload is refused, so a stale claim never refuses anything.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConflictError
from ..fs import file_lock, read_json, write_json_atomic
from ..lake import PART_FILES, Lake, Partition

Claim = dict[str, str]
Registry = dict[str, list[Claim]]  # lower-cased column name -> its claims

FAMILIES: tuple[tuple[str, Callable[[pa.DataType], bool]], ...] = (
    ("integer", pa.types.is_integer), ("floating", pa.types.is_floating),
    ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)),
    ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)
     or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t)),
    ("boolean", pa.types.is_boolean), ("timestamp", pa.types.is_timestamp), ("date", pa.types.is_date),
    ("time", pa.types.is_time), ("decimal", pa.types.is_decimal), ("duration", pa.types.is_duration),
)
MIXING = {"integer": "number", "floating": "number"}  # the build reads both as double


def family(t: pa.DataType) -> str | None:
    """The column's type family (other types: the exact type); None for an all-null column."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return None
    return next((name for name, test in FAMILIES if test(t)), str(t))


def register_columns(lake: Lake, schema: pa.Schema, partition: Partition, upload_id: str,
                     overwrite: bool) -> None:
    """Record the upload's columns in the registry, or raise ConflictError naming the clash.

    An overwrite may change the types of the partition it replaces: the claims backed only by
    that partition's current parts do not count against it.
    """
    mine = claims_of(schema, str(partition), upload_id)
    with file_lock(lake.lock_path("columns", "lake")):
        registry = load_registry(lake)
        before = repr(registry)
        if clashes(registry, mine, lambda _: False):
            in_flight = uploads_in_staging(lake)  # first, so an upload landing meanwhile is kept
            every: Registry = {}  # the claims of every part and of the uploads that may still land
            for key, claims in registry.items():
                every.setdefault(key, []).extend(c for c in claims if c["upload_id"] in in_flight)
            for key, claim in part_claims(lake):
                every.setdefault(key, []).append(claim)
            replaced = (lambda c: overwrite and c["partition"] == str(partition)
                        and c["upload_id"] not in in_flight)
            found = clashes(every, mine, replaced)
            registry = distinct_claims((key, c) for key, claims in every.items() for c in claims)
            if found:
                if repr(registry) != before:
                    write_registry(lake, registry)
                raise ConflictError(clash_message(*found[0], partition=str(partition)))
        for key, claim in mine.items():
            add_claim(registry, key, claim)
        if repr(registry) != before:
            write_registry(lake, registry)


def claims_of(schema: pa.Schema, partition: str, upload_id: str) -> dict[str, Claim]:
    """The claims a part (or an upload) of this schema makes, by lower-cased name."""
    return {f.name.lower(): {"name": f.name, "family": fam, "type": str(f.type), "partition": partition,
                             "upload_id": upload_id}
            for f in schema if (fam := family(f.type)) is not None}


def add_claim(registry: Registry, key: str, claim: Claim) -> None:
    """Add `claim` unless a claim of the same spelling and family is there already."""
    claims = registry.setdefault(key, [])
    if not any(c["name"] == claim["name"] and c["family"] == claim["family"] for c in claims):
        claims.append(claim)


def clashes(registry: Registry, mine: dict[str, Claim], ignored: Callable[[Claim], bool]) -> list[tuple[Claim, Claim]]:
    """(the upload's claim, the clashing claim) for every column spelled or typed otherwise in the lake."""
    found = []
    for key, claim in mine.items():
        for other in registry.get(key, []):
            if not ignored(other) and (other["name"] != claim["name"] or _kind(other) != _kind(claim)):
                found.append((claim, other))
                break
    return found


def _kind(claim: Claim) -> str:
    return MIXING.get(claim["family"], claim["family"])


def clash_message(claim: Claim, other: Claim, partition: str) -> str:
    name, where = claim["name"], other["partition"]
    replace = (" (or upload with overwrite=True to replace that partition)" if where == partition else "")
    if other["name"] != claim["name"]:
        return (f"column {name!r} ({claim['type']}) in this upload is spelled {other['name']!r} in partition "
                f"{where} ({other['type']}); column names are told apart ignoring case across the lake: rename "
                f"it to {other['name']!r} to share that column, or give it another name{replace}")
    return (f"column {name!r} is {claim['type']} in this upload but {other['type']} in partition {where}; "
            f"convert it to {other['type']}, or rename it: a column has one type across the lake "
            f"(integers and floats may mix){replace}")


def uploads_in_staging(lake: Lake) -> set[str]:
    """Uploads that may still land: pending or being processed."""
    return {p.name for stage in ("pending", "processing") for p in lake.stage(stage).iterdir()}


def part_claims(lake: Lake) -> Iterator[tuple[str, Claim]]:
    """(lower-cased name, claim) for every column of every part file in the catalog (footers only)."""
    for part in sorted(lake.catalog.glob(PART_FILES)):
        try:
            schema = pq.read_schema(part)
        except FileNotFoundError:  # replaced by an overwrite meanwhile
            continue
        partition = "/".join(p.split("=", 1)[1] for p in part.parent.relative_to(lake.catalog).parts)
        upload_id = part.name.removeprefix("part-").removesuffix(".parquet")
        yield from claims_of(schema, partition, upload_id).items()


def distinct_claims(claims: Iterable[tuple[str, Claim]]) -> Registry:
    """The registry of `claims`: the first of each spelling and family."""
    registry: Registry = {}
    for key, claim in claims:
        add_claim(registry, key, claim)
    return registry


def load_registry(lake: Lake) -> Registry:
    """The registry; built from the part files when the lake has none yet (or it is unreadable)."""
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        return read_json(lake.columns_registry)["columns"]
    registry = distinct_claims(part_claims(lake))
    write_registry(lake, registry)
    return registry


def write_registry(lake: Lake, registry: Registry) -> None:
    write_json_atomic(lake.columns_registry, {
        "about": "column name -> its spelling and type family in the lake's part files; kept by processing, "
                 "rebuilt from the part files when deleted",
        "columns": dict(sorted(registry.items())),
    })

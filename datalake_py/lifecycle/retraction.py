"""Retraction: rows, and the assets only they point at, leave the lake for good.

A retraction plans under the `store` lock held exclusively (no upload, processing or collection
import runs meanwhile), then writes its record `ledger/retractions/<id>.json` before it changes
anything, with `completed_at` null. The steps that follow are each safe to run again: drop the
selected rows from the part files (and the members of the collection versions it may take, with
`force`), drop the ledger entries of the assets no remaining row references, build the database
again (so no reader of it finds a row whose asset is gone), delete those assets' store files and
thumbnails, mark the record complete, and update the database once more to show it so. A
retraction or garbage collection that finds a record left incomplete by a killed run finishes it
first (docs/internals.md, "Retraction and garbage collection").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..catalog.db import build_db
from ..collections import CollectionManager
from ..errors import ConflictError, DatalakeError, NotFoundError, ValidationError
from ..fs import file_lock, read_json, write_json_atomic
from ..lake import Lake, new_upload_id, utc_now
from .forget import forget_ledger_entries, remove_store_files, store_files
from .holders import (RowFile, catalog_parts, drop_selected, member_files, part_file, referenced_hashes, selected,
                      staged_files)
from .selection import Selection


@dataclass
class Retraction:
    """What a retraction takes (its plan, with `dry_run`) or took: the part files and rows, the
    collection versions holding some of it, the assets no other row references (which go) and
    their bytes, the hashes of every asset the rows pointed at."""

    retraction_id: str
    reason: str
    retracted_by: str
    selection: dict[str, Any]
    force: bool = False
    dry_run: bool = False
    parts: list[dict[str, Any]] = field(default_factory=list)  # part (under the lake), partition, rows
    collections: list[dict[str, Any]] = field(default_factory=list)  # name, version, members
    staged: list[dict[str, Any]] = field(default_factory=list)  # upload_id, stage, rows: uploads that block it
    rows: int = 0
    hashes: list[str] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)  # hash, path (under assets/), bytes
    bytes: int = 0
    started_at: str | None = None
    completed_at: str | None = None
    database: str | None = None  # "rebuilt", "absent" (the lake has none), or why it was not rebuilt

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Retraction":
        return cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One paragraph for people: what goes (or went), and which collection versions hold it."""
        verb = "would remove" if self.dry_run else "removed"
        partitions = sorted({p["partition"] for p in self.parts})
        name = "This retraction" if self.dry_run else f"Retraction {self.retraction_id}"  # a plan's id is not kept
        lines = [f"{name} ({self.reason}) {verb} {self.rows} row(s) from "
                 f"{len(self.parts)} part file(s) in {len(partitions)} partition(s), and {len(self.assets)} "
                 f"asset file(s) ({self.bytes} bytes) that nothing else references."]
        kept = len(self.hashes) - len(self.assets)
        if kept:
            lines.append(f"{kept} asset(s) of these rows stay: other rows or collections still point at them.")
        for c in self.collections:
            lines.append(f"Collection {c['name']} {c['version']} holds {c['members']} of these row(s).")
        for u in self.staged:
            lines.append(f"Upload {u['upload_id']} ({u['stage']}) holds {u['rows']} of these row(s): process it first.")
        if self.database and self.database not in ("rebuilt", "absent"):
            lines.append(f"The database was not rebuilt: {self.database}")
        return "\n".join(lines)


class RetractionBlocked(ConflictError):
    """The retraction would take rows that a collection version or a staged upload holds."""


def retract(lake: Lake, selection: Selection, reason: str, user: str, dry_run: bool = False,
            force: bool = False) -> Retraction:
    """Remove the selected rows, and the assets no other row references, for good (module docstring).

    Refuses (RetractionBlocked) when a staged upload holds selected rows, and when a collection
    version does unless `force`; NotFoundError when nothing is selected. A dry run writes nothing
    and returns the plan, with the collection versions and staged uploads that hold some of it.
    """
    reason = check_reason(reason)
    lake.require()
    with file_lock(lake.lake_lock("store")), duckdb.connect() as con:
        finished = [] if dry_run else finish_unfinished(lake, con)
        plan = _plan(lake, con, selection, reason, user, force, dry_run)
        if not (plan.rows or plan.assets or plan.collections or plan.staged):
            if finished:
                return finished[-1]  # the same retraction, killed before, now complete
            raise NotFoundError(f"nothing in the lake matches the retraction ({selection.describe()}); "
                                "`datalake retractions list` shows what was retracted before")
        if dry_run:
            return plan
        refuse_blocked(plan)
        plan.started_at = utc_now()
        write_json_atomic(lake.retraction_record(plan.retraction_id), plan.to_dict())
        return _carry_out(lake, con, plan)


def check_reason(reason: object) -> str:
    """The reason given for a retraction, stripped; ValidationError when there is none."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("give the reason for the retraction (it is recorded in the retraction ledger)")
    return reason.strip()


def list_retractions(lake: Lake) -> list[dict[str, Any]]:
    """Every retraction's record, oldest first (incomplete ones have `completed_at` null)."""
    folder = lake.retraction_ledger
    records = [read_json(p) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(records, key=lambda r: (r.get("started_at") or "", r["retraction_id"]))


def finish_unfinished(lake: Lake, con: duckdb.DuckDBPyConnection) -> list[Retraction]:
    """Complete every retraction a killed run left incomplete, and remove the record files a killed
    run did not finish writing (one that was changing nothing yet, or one finished here); the
    caller holds the `store` lock, as every writer of records does."""
    for unfinished in lake.retraction_ledger.glob(".*.tmp"):
        unfinished.unlink(missing_ok=True)
    return [_carry_out(lake, con, Retraction.from_dict(r)) for r in list_retractions(lake) if not r.get("completed_at")]


def _plan(lake: Lake, con: duckdb.DuckDBPyConnection, selection: Selection, reason: str, user: str,
          force: bool, dry_run: bool) -> Retraction:
    plan = Retraction(new_upload_id(), reason, user, selection.to_dict(), force, dry_run)
    hashes = set(selection.hashes)
    for part in catalog_parts(lake):
        rows, found = selected(con, part, selection)
        if rows:
            plan.parts.append({"part": str(part.path.relative_to(lake.root)), "partition": str(part.partition),
                               "rows": rows})
            plan.rows += rows
            hashes.update(found)
    for members in member_files(lake):
        rows, found = selected(con, members, selection)
        if rows:
            plan.collections.append({"name": members.name, "version": members.version, "members": rows})
            hashes.update(found)
    plan.staged = [{"upload_id": f.name, "stage": f.version, "rows": rows} for f in staged_files(lake)
                   for rows in [selected(con, f, selection)[0]] if rows]
    plan.hashes = sorted(hashes)
    con.execute("create or replace temp table taken as select unnest(?::varchar[]) as hash", [plan.hashes])
    referenced_hashes(con, lake, "remaining", selection)
    plan.assets = _store_entries(lake, con, "select hash from taken anti join remaining using (hash)",
                                 plan.hashes)
    plan.bytes = sum(a["bytes"] for a in plan.assets)
    return plan


def _store_entries(lake: Lake, con: duckdb.DuckDBPyConnection, hashes_sql: str,
                   candidates: list[str]) -> list[dict[str, Any]]:
    """The store files (hash, path, bytes) of the hashes the query gives, by hash and path; those
    are among `candidates`, so only their store folders are listed."""
    store, _ = store_files(lake, candidates)
    con.register("store_listing", store)
    try:
        return [dict(zip(("hash", "path", "bytes"), row)) for row in con.execute(
            f"select hash, path, bytes from store_listing where hash in ({hashes_sql}) order by hash, path").fetchall()]
    finally:
        con.unregister("store_listing")


def refuse_blocked(plan: Retraction) -> None:
    """RetractionBlocked when the plan cannot run: staged uploads hold some of its rows, or collection
    versions do and it is not forced."""
    if plan.staged:
        held = ", ".join(f"{u['upload_id']} ({u['stage']}, {u['rows']} row(s))" for u in plan.staged)
        raise RetractionBlocked(
            f"staged upload(s) hold rows this retraction takes: {held}. Process them first (`datalake process start`; "
            "a failed one: `datalake process retry <id>`, or remove its folder under staging/failed/), then "
            "retract again: a retraction takes what the catalog holds, and they would bring the rows back")
    if plan.collections and not plan.force:
        held = ", ".join(f"{c['name']} {c['version']} ({c['members']} member(s))" for c in plan.collections)
        raise RetractionBlocked(
            f"collection version(s) hold rows this retraction takes: {held}. Versions never change, so the "
            "retraction stops here; retract with force (`--force`) to remove them from those versions too "
            "(their metadata then records it), or delete the versions first")


def _carry_out(lake: Lake, con: duckdb.DuckDBPyConnection, plan: Retraction) -> Retraction:
    """The steps after the record is written, each safe to run again (module docstring)."""
    with file_lock(lake.lake_lock("build")):  # a build under way ends before the files it reads change
        assets = _drop_rows(lake, con, plan)
    plan.database = _rebuild(lake)
    # what a run killed while removing them removed: recorded too, and their thumbnails go
    removed = [a for a in plan.assets if not (lake.assets / a["path"]).exists()]
    went = [a for _, a in sorted({(a["hash"], a["path"]): a for a in [*removed, *assets]}.items())]
    remove_store_files(lake, [(a["hash"], a["path"]) for a in went])
    plan.assets, plan.bytes = went, sum(a["bytes"] for a in went)
    plan.completed_at = utc_now()
    write_json_atomic(lake.retraction_record(plan.retraction_id), plan.to_dict())
    if plan.database == "rebuilt":
        _rebuild(lake)  # a quick update: the `retractions` mart now shows the record complete
    return plan


def _drop_rows(lake: Lake, con: duckdb.DuckDBPyConnection, plan: Retraction) -> list[dict[str, Any]]:
    """Steps 1 and 2: the selected rows leave the part files and collection members, the assets
    that go leave the ledger; those assets' store entries."""
    selection = Selection.of(**plan.selection)
    for part in plan.parts:
        drop_selected(con, part_file(lake, lake.root / part["part"]), selection)
    manager = CollectionManager(lake, plan.retracted_by)
    entry = {"retraction_id": plan.retraction_id, "retracted_at": plan.started_at,
             "retracted_by": plan.retracted_by, "reason": plan.reason}

    def drop_members(path: Path) -> int:
        return drop_selected(con, RowFile(path, "members"), selection)

    for c in plan.collections:
        manager.retract_members(c["name"], c["version"], drop_members, {**entry, "members": c["members"]})
    con.execute("create or replace temp table taken as select unnest(?::varchar[]) as hash", [plan.hashes])
    referenced_hashes(con, lake, "remaining")
    con.execute("create or replace temp table gone as select hash from taken anti join remaining using (hash)")
    assets = _store_entries(lake, con, "select hash from gone", plan.hashes)
    with file_lock(lake.lake_lock("fingerprints")):
        forget_ledger_entries(con, lake, "gone")
    return assets


def _rebuild(lake: Lake) -> str:
    """Build the database again if the lake has one, so its readers no longer find the rows."""
    if not lake.db_path.exists():
        return "absent"
    try:
        build_db(lake)
    except DatalakeError as exc:
        return str(exc)
    return "rebuilt"

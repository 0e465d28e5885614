"""Garbage collection: store files that no row references, and what killed runs provably left.

It runs under the `store` lock held exclusively, so no upload is being written, processed or
frozen into a collection meanwhile (each holds that lock shared), and the references on disk are
all there are: catalog parts, collection members, staged uploads (lifecycle/holders.py). It
finishes retractions a killed run left incomplete first. A store file that no file references
but the database still lists (a build has not run since an overwrite) stays until the next
build, so no search finds a row whose asset is gone.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import duckdb

from ..fs import file_lock
from ..lake import HASH_PATTERN, Lake
from .forget import forget_ledger_entries, remove_store_files, store_files
from .holders import referenced_hashes, remove_empty_partition
from .retraction import finish_unfinished


@dataclass
class GarbageReport:
    """What a collection removed (or, with `dry_run`, would remove) and the bytes it frees."""

    dry_run: bool
    assets: list[dict[str, Any]] = field(default_factory=list)  # hash, path (under assets/), bytes
    leftovers: list[dict[str, Any]] = field(default_factory=list)  # path (under the lake), bytes, what
    kept_for_database: int = 0  # unreferenced store files the database still lists
    retractions_finished: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        lines = [f"Garbage collection {verb} {self.bytes} bytes: {len(self.assets)} asset file(s) no row or "
                 f"collection references, {len(self.leftovers)} leftover(s) of runs that ended early."]
        if self.kept_for_database:
            lines.append(f"{self.kept_for_database} unreferenced asset(s) stay while the database lists them; "
                         "run `datalake db update`, then collect again.")
        if self.retractions_finished:
            lines.append(f"Finished retraction(s) left incomplete: {', '.join(self.retractions_finished)}.")
        return "\n".join(lines)


def collect_garbage(lake: Lake, dry_run: bool = False) -> GarbageReport:
    """Remove unreferenced store files (with their thumbnails and ledger entries) and abandoned
    leftovers; with `dry_run`, only list them. The report says what and how many bytes."""
    lake.require()
    report = GarbageReport(dry_run)
    with file_lock(lake.lake_lock("store")), duckdb.connect() as con:
        if not dry_run:
            report.retractions_finished = [r.retraction_id for r in finish_unfinished(lake, con)]
        # no indexing writes ledger entries of what goes; no build under way lists it
        with file_lock(lake.lake_lock("build")), file_lock(lake.lake_lock("fingerprints")):
            _collect(lake, con, report)
    return report


def _collect(lake: Lake, con: duckdb.DuckDBPyConnection, report: GarbageReport) -> None:
    """Find (and unless a dry run, remove) the garbage, into `report`."""
    store, others = store_files(lake)
    con.register("store_listing", store)
    referenced_hashes(con, lake, "referenced")
    con.execute("create temp table gone as select hash, path, bytes from store_listing "
                "anti join referenced using (hash)")
    report.kept_for_database = _keep_database_rows(lake, con)
    report.assets = [dict(zip(("hash", "path", "bytes"), row))
                     for row in con.execute("select * from gone order by hash, path").fetchall()]
    stored = set(store.column("hash").to_pylist())  # the thumbnails of those that go, go with them
    report.leftovers = [{"path": str(path.relative_to(lake.root)), "bytes": _size(path), "what": what}
                        for path, what in _leftovers(lake, others, stored)]
    report.bytes = sum(a["bytes"] for a in report.assets) + sum(x["bytes"] for x in report.leftovers)
    if not report.dry_run:
        forget_ledger_entries(con, lake, "gone")
        remove_store_files(lake, [(a["hash"], a["path"]) for a in report.assets])
        for leftover in report.leftovers:
            _remove(lake.root / leftover["path"])
        for folder in sorted(lake.catalog.glob("*/*/*/*")):  # partitions an all-duplicate overwrite emptied
            remove_empty_partition(folder)


def _keep_database_rows(lake: Lake, con: duckdb.DuckDBPyConnection) -> int:
    """Take out of `gone` the assets the database lists (it may be older than the catalog); how many."""
    if not lake.db_path.exists():
        return 0
    con.execute("attach ? as built (read_only)", [str(lake.db_path)])
    try:
        listed = con.execute("delete from gone where hash in (select hash from built.main.catalog)").fetchone()[0]
    finally:
        con.execute("detach built")
    return listed


def _leftovers(lake: Lake, store_others: list[Path], store_hashes: set[str]) -> Iterator[tuple[Path, str]]:
    """What runs that ended early left, each provably abandoned under the `store` lock held exclusively."""
    for path in sorted(lake.stage("trash").iterdir()):
        yield path, "a processed upload's staging folder"
    for path in sorted(lake.stage("incoming").iterdir()):
        with file_lock(lake.lock_path("upload", path.name), blocking=False) as free:
            if free is not None:  # its uploader and the uploader's workers are gone
                yield path, "an upload that never completed"
    for path in sorted(lake.collections.glob("[!.]*/.*")):
        yield path, "a collection version never completed or half deleted"
    for root in (lake.catalog, lake.upload_ledger, lake.asset_ledger, lake.fingerprint_ledger, lake.pair_ledger):
        for path in sorted(root.rglob(".*.tmp")):
            yield path, "a file a killed writer did not finish"
    for path in store_others:
        if path.name.startswith("."):
            yield path, "a file a killed writer did not finish"
    for path in sorted((lake.cache / "thumbnails").glob("??/*")):
        if HASH_PATTERN.fullmatch(path.name.split(".", 1)[0]) and path.name.split(".", 1)[0] not in store_hashes:
            yield path, "the thumbnail of an asset the store no longer holds"


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())
    return path.lstat().st_size


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

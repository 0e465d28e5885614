"""Collections: frozen, named, versioned sets of rows with their assets, for training.

`collections/<name>/<version>/` holds `members.parquet` (rows with `hash`/`path` into the shared
asset store) and `metadata.json` (who, when, source, size, and a fingerprint over the members'
content); `collections/<name>/latest` names the newest version. A version is written in a
hidden folder and renamed into place, so it appears complete or not at all, and never changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import warnings
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from .card import dataset_licenses, mixed_commercial_use, retraction_notes
from .catalog.validation import validate_assets
from .curation.groups import check_threshold
from .curation.leakage import matching_hashes
from .errors import ConflictError, NotFoundError, ValidationError
from .fs import atomic_path, file_lock, read_json, write_json_atomic, write_text_atomic
from .lake import (ASSETS_FILE, DATA_FILE, LATEST_FILE, LEGACY_ASSET_FOLDERS, MEMBERS_FILE, METADATA_FILE, NEW_ASSETS,
                   Lake, check_hash, check_name, new_upload_id, utc_now)
from .processing.processor import publish_assets
from .upload.assets import AssetStore
from .upload.ingest import UploadRequest, convert_source
from .upload.sources import open_source

AUTO_VERSION = re.compile(r"v(\d+)")
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH  # a version's files


def warn_retracted(metadata: dict[str, Any]) -> None:
    """Warn that a version being read lacks members it was frozen with."""
    notes = retraction_notes(metadata)
    if notes:
        warnings.warn(f"collection {metadata['name']} {metadata['version']}: {'; '.join(notes)}; they are left out",
                      stacklevel=3)


def fingerprint(members: Path) -> str:
    """xxh3-128 over the members' columns and rows, in order."""
    hasher = xxhash.xxh3_128()
    reader = pq.ParquetFile(members)
    hasher.update(json.dumps(reader.schema_arrow.names).encode())
    for batch in reader.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            hasher.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
            hasher.update(b"\n")
    return hasher.hexdigest()


def _warn_mixed_licenses(lake: Lake, rows: Any, name: str, version: str) -> None:
    """Warn when lake rows mix datasets whose licenses allow commercial use with ones whose do not."""
    if isinstance(rows, pd.DataFrame):
        mixed = mixed_commercial_use(dataset_licenses(lake, rows))
        if mixed:
            warnings.warn(f"collection {name} {version} mixes licenses ({mixed}): not all of it may be used "
                          "commercially; its dataset card says so, and `datalake stats` lists each dataset's license",
                          stacklevel=4)  # the caller of client.import_collection


def split_reference(reference: str) -> tuple[str, str | None]:
    """(collection, version or None for the latest) of `name` or `name:version`."""
    if not isinstance(reference, str):
        raise TypeError(f"a collection is named by a string, `name` or `name:version`, not {type(reference).__name__}")
    name, colon, version = reference.partition(":")
    return check_name(name, "collection"), check_name(version, "version") if colon else None


class CollectionManager:
    """Import, list, read, verify and delete the collections of one lake."""

    def __init__(self, lake: Lake, user: str, num_proc: int = 1):
        self.lake = lake
        self.user = user
        self.num_proc = num_proc

    # -- paths ---------------------------------------------------------------------------------

    def _folder(self, name: str) -> Path:
        return self.lake.collection_dir(name)

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Metadata of every version of a collection, oldest first."""
        folder = self._folder(name)
        found = [read_json(p / METADATA_FILE) for p in folder.iterdir()
                 if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).is_file()] if folder.is_dir() else []
        return sorted(found, key=lambda m: (m["created_at"], m["version"]))

    def resolve(self, name: str, version: str | None = None) -> Path:
        """The folder of a version (None: the latest); NotFoundError naming what exists."""
        folder = self._folder(name)
        if version is None:
            latest = folder / LATEST_FILE
            if not latest.is_file():
                raise NotFoundError(f"collection {name!r} does not exist; `datalake collections list` shows them")
            version = latest.read_text().strip()
        target = folder / check_name(version, "version")
        if not (target / METADATA_FILE).is_file():
            known = ", ".join(m["version"] for m in self.versions(name)) or "none"
            raise NotFoundError(f"collection {name!r} has no version {version!r} (versions: {known})")
        return target

    # -- import --------------------------------------------------------------------------------

    def import_collection(self, data_source: Any, name: str, version: str | None = None,
                          description: str = "", query: str | None = None,
                          exclude_near_duplicates_of: str | None = None, exclude_assets_of: str | None = None,
                          threshold: int | None = None) -> dict[str, Any]:
        """Freeze rows as a new version; its metadata. Lake rows (search results) keep their columns;
        other data has its assets stored first, as an upload would.

        `exclude_assets_of` leaves out the rows whose asset a member of that collection has;
        `exclude_near_duplicates_of` also those whose image is within `threshold` bits (default 12)
        of one of its members' images. Each names a collection, `name` (its latest version) or
        `name:version`; the metadata's `exclusions` records what was left out and why.
        """
        self.lake.require()
        check_name(name, "collection")
        if version is not None:
            check_name(version, "version")
            if version == LATEST_FILE:
                raise ValidationError(f"{LATEST_FILE!r} names the newest version; choose another version name")
        exclusions = self._exclusions(exclude_assets_of, exclude_near_duplicates_of, threshold)
        with file_lock(self.lake.lake_lock("store"), shared=True):  # its members point at stored assets
            metadata = self._import(data_source, name, version, description, query, exclusions)
        _warn_mixed_licenses(self.lake, data_source, name, metadata["version"])
        return metadata

    def _import(self, data_source: Any, name: str, version: str | None, description: str, query: str | None,
                exclusions: list[dict[str, Any]]) -> dict[str, Any]:
        folder = self._folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        work = folder / f".import-{new_upload_id()}"
        work.mkdir()
        try:
            source_text = self._write_members(data_source, work)
            excluded = self._exclude(work / MEMBERS_FILE, exclusions)
            with file_lock(self.lake.lock_path("collection", name)):
                chosen = version or self._next_version(name)
                if chosen in self._used_versions(name):
                    raise ConflictError(f"collection {name!r} already has (or had) version {chosen!r}; versions "
                                        "never change and deleted ones are not reused: import as a new version")
                metadata = self._metadata(name, chosen, description, query or source_text, work / MEMBERS_FILE)
                if excluded:
                    metadata["exclusions"] = excluded
                write_json_atomic(work / METADATA_FILE, metadata)
                for f in (work / MEMBERS_FILE, work / METADATA_FILE):
                    f.chmod(READ_ONLY)
                os.rename(work, folder / chosen)
                self._set_latest(name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return metadata

    def _write_members(self, data_source: Any, work: Path) -> str:
        """Write members.parquet in `work`; a description of where the rows came from."""
        if isinstance(data_source, pd.DataFrame) and {"row_id", "hash"} <= set(data_source.columns):
            return self._lake_rows(data_source, work)
        source = open_source(data_source)
        import_id = work.name.lstrip(".")
        request = UploadRequest("collection", work.parent.name, user=self.user)
        try:
            convert_source(self.lake, source, request, import_id, work, self.num_proc)
            publish_assets(self.lake, work)  # the store holds the bytes; members point at them
        finally:
            shutil.rmtree(work / NEW_ASSETS, ignore_errors=True)
        with atomic_path(self.lake.asset_record(import_id)) as tmp:
            shutil.copyfile(work / ASSETS_FILE, tmp)
        (work / ASSETS_FILE).unlink()
        (work / DATA_FILE).rename(work / MEMBERS_FILE)
        return source.description

    def _exclusions(self, assets_of: str | None, near_duplicates_of: str | None,
                    threshold: int | None) -> list[dict[str, Any]]:
        """The exclusions asked for, each with the collection version it reads (checked before any
        work): kind, of, version, fingerprint, and the threshold of near-duplicates."""
        if threshold is not None and near_duplicates_of is None:
            raise ValidationError("threshold applies to exclude_near_duplicates_of only: name the collection "
                                  "whose near-duplicates to leave out")
        exclusions = []
        for kind, reference in (("assets", assets_of), ("near_duplicates", near_duplicates_of)):
            if reference is None:
                continue
            of, version = split_reference(reference)
            info = self.info(of, version)
            near = {"threshold": check_threshold(threshold)} if kind == "near_duplicates" else {}
            exclusions.append({"kind": kind, "of": of, "version": info["version"],
                               "fingerprint": info["fingerprint"], **near})
        return exclusions

    def _exclude(self, members: Path, exclusions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Leave the excluded rows out of `members` (rewritten in place, in the hidden import folder);
        each exclusion with the rows it removed and their asset hashes. ValidationError if none is left."""
        if not exclusions:
            return []
        table = pq.read_table(members)
        records = []
        for exclusion in exclusions:
            before = table.num_rows
            rows = table.select(["hash", "path"]).to_pandas() if "hash" in table.column_names else pd.DataFrame()
            hashes = matching_hashes(self.lake, rows, self.members(exclusion["of"], exclusion["version"]),
                                     exclusion.get("threshold"), self.num_proc)
            if hashes:
                table = table.filter(pc.invert(pc.fill_null(pc.is_in(table["hash"], pa.array(hashes, pa.string())),
                                                            False)))
            records.append({**exclusion, "rows_removed": before - table.num_rows, "hashes": hashes})
        if not table.num_rows:
            made = ", ".join(f"{e['kind'].replace('_', '-')} of {e['of']} {e['version']}" for e in exclusions)
            raise ValidationError(f"every row is excluded ({made}): nothing is left to freeze as a version")
        pq.write_table(table, members)
        return records

    def _lake_rows(self, rows: pd.DataFrame, work: Path) -> str:
        store = AssetStore(self.lake.assets)
        missing = [h for h in rows["hash"].dropna().unique() if store.find(check_hash(h)) is None]
        if missing:
            raise ValidationError(f"{len(missing)} asset(s) of these rows are not in the lake's store "
                                  f"(first: {missing[0]}); verify the lake with `datalake db validate`")
        ordered = rows.sort_values("row_id", kind="stable").reset_index(drop=True)
        pq.write_table(pa.Table.from_pandas(ordered, preserve_index=False), work / MEMBERS_FILE)
        return f"lake rows ({len(rows)})"

    def _used_versions(self, name: str) -> set[str]:
        """Versions that exist or existed: a deleted version's name is never given to other data."""
        live = {p.name for p in self._folder(name).iterdir() if not p.name.startswith(".")}
        deleted = {p.name.split("--", 1)[1][:-5] for p in self.lake.collection_ledger.glob(f"{name}--*.json")}
        return live | deleted

    def _next_version(self, name: str) -> str:
        numbers = [int(m.group(1)) for v in self._used_versions(name) if (m := AUTO_VERSION.fullmatch(v))]
        return f"v{max(numbers, default=0) + 1}"

    def _metadata(self, name: str, version: str, description: str, source: str, members: Path) -> dict[str, Any]:
        return {"name": name, "version": version, "description": description, "created_at": utc_now(),
                "created_by": self.user, "num_samples": pq.ParquetFile(members).metadata.num_rows,
                "source": source, "fingerprint": fingerprint(members)}

    def _set_latest(self, name: str) -> None:
        versions = self.versions(name)
        latest = self._folder(name) / LATEST_FILE
        if versions:
            write_text_atomic(latest, versions[-1]["version"] + "\n")
        else:
            latest.unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------------

    def list_collections(self) -> list[dict[str, Any]]:
        """One entry per collection: name, versions, latest, and the latest's size and description."""
        out = []
        for folder in sorted(self.lake.collections.iterdir()):
            versions = self.versions(folder.name) if folder.is_dir() and not folder.name.startswith(".") else []
            if versions:
                latest = versions[-1]
                out.append({"name": folder.name, "versions": [v["version"] for v in versions],
                            "latest": latest["version"], "num_samples": latest["num_samples"],
                            "description": latest["description"], "created_at": latest["created_at"]})
        return out

    def info(self, name: str, version: str | None = None) -> dict[str, Any]:
        return read_json(self.resolve(name, version) / METADATA_FILE)

    def members(self, name: str, version: str | None = None) -> pd.DataFrame:
        """A version's members, each `path` in the store's current form: a version frozen while the
        store had layout 1 keeps `ab/cd/<hash>.<ext>` in its file (and its fingerprint stays true)."""
        rows = pd.read_parquet(self.resolve(name, version) / MEMBERS_FILE)
        if "path" in rows.columns:
            rows["path"] = rows["path"].str.replace(LEGACY_ASSET_FOLDERS, r"\1/", regex=True)
        return rows

    # -- checking and deleting -----------------------------------------------------------------

    def verify(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Recompute the fingerprint and check every member's asset bytes; `ok` and what differs. A
        version that lost members to a retraction is not `ok` and says so (`N member(s) retracted on
        DATE (reason)`); its members are then checked against the fingerprint recorded after it."""
        folder = self.resolve(name, version)
        metadata = read_json(folder / METADATA_FILE)
        actual = fingerprint(folder / MEMBERS_FILE)
        assets = validate_assets(self.lake, self.members(name, version), deep=True)
        retractions = metadata.get("retractions", [])
        recorded = retractions[-1]["fingerprint"] if retractions else metadata["fingerprint"]
        problems = retraction_notes(metadata)
        if actual != recorded:
            problems.append(f"members changed: fingerprint {actual} differs from the recorded {recorded}")
        if assets["missing_count"]:
            problems.append(f"{assets['missing_count']} member asset(s) missing")
        if assets["mismatch_count"]:
            problems.append(f"{assets['mismatch_count']} member asset(s) with bytes that no longer match their hash")
        if assets["symlink_count"]:
            problems.append(f"{assets['symlink_count']} member asset(s) are symlinks in the store, never read "
                            f"(first: {assets['symlinks'][0]}); replace each with the file itself")
        return {"name": name, "version": metadata["version"], "ok": not problems, "problems": problems,
                "fingerprint": actual, "assets": assets}

    def retract_members(self, name: str, version: str, drop: Callable[[Path], int], entry: dict[str, Any]) -> None:
        """Remove the members a retraction takes from a version (`drop` rewrites the members file) and
        record it in the version's metadata: `entry` (retraction_id, retracted_at, retracted_by,
        reason, members) and the fingerprint of the members left. Done once per retraction id;
        nothing when the version was deleted meanwhile."""
        with file_lock(self.lake.lock_path("collection", name)):
            try:
                folder = self.resolve(name, version)
            except NotFoundError:
                return
            metadata = read_json(folder / METADATA_FILE)
            done = metadata.get("retractions", [])
            if any(r["retraction_id"] == entry["retraction_id"] for r in done):
                return
            drop(folder / MEMBERS_FILE)
            members = folder / MEMBERS_FILE
            metadata["retractions"] = [*done, {**entry, "fingerprint": fingerprint(members)}]
            metadata["num_samples"] = pq.ParquetFile(members).metadata.num_rows
            write_json_atomic(folder / METADATA_FILE, metadata)
            (folder / METADATA_FILE).chmod(READ_ONLY)

    def delete(self, name: str, version: str | None = None) -> list[str]:
        """Delete one version (None: the whole collection); `latest` moves back. The deleted versions."""
        self.lake.require()
        with file_lock(self.lake.lake_lock("store"), shared=True), file_lock(self.lake.lock_path("collection", name)):
            targets = [self.resolve(name, version)] if version else \
                [self._folder(name) / m["version"] for m in self.versions(name)]
            if not targets:
                raise NotFoundError(f"collection {name!r} does not exist")
            for target in targets:
                self._record_deletion(read_json(target / METADATA_FILE))
                trash = target.with_name(f".deleted-{target.name}-{new_upload_id()}")
                os.rename(target, trash)
                shutil.rmtree(trash)
            self._set_latest(name)
            if not self.versions(name):
                shutil.rmtree(self._folder(name), ignore_errors=True)
        return [t.name for t in targets]

    def _record_deletion(self, metadata: dict[str, Any]) -> None:
        """Keep a deleted version's metadata, with when it was removed, for history."""
        record = {**metadata, "deleted_at": utc_now()}
        write_json_atomic(self.lake.deletion_record(metadata["name"], metadata["version"]), record)

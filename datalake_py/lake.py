"""The lake on disk: its folders, the names that may become paths, and where each thing lives."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import xxhash

from .errors import LayoutError, NotFoundError, ReadOnlyError, ValidationError
from .fs import read_json, write_json_atomic

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
HASH_PATTERN = re.compile(r"[0-9a-f]{32}")

RAW_TASK = "raw"

# The files of an upload's folder, staging/<stage>/<upload_id>/
DATA_FILE, ASSETS_FILE, MANIFEST_FILE, ERROR_FILE = "data.parquet", "assets.parquet", "manifest.json", "error.json"
NEW_ASSETS = "new-assets"  # the folder of an upload's assets new to the lake, until processing stores them
# The files of a collection version, collections/<name>/<version>/, and the name of the newest
MEMBERS_FILE, METADATA_FILE, LATEST_FILE = "members.parquet", "metadata.json", "latest"
PART_FILES = "provider=*/dataset=*/task=*/variant=*/part-*.parquet"  # the catalog's part files, under catalog/
STAGES = ("incoming", "pending", "processing", "failed", "trash")
# The layout of the lake's files, recorded in LAYOUT_FILE at its root: 1 (no file) kept an asset at
# `assets/ab/cd/<hash>.<ext>`, 2 keeps it at `assets/ab/<hash>.<ext>`; `datalake migrate` brings 1 to 2.
LAYOUT_FILE, LAYOUT_VERSION = "layout.json", 2
COPY_RECORD = "published.json"
STORE_FOLDERS = tuple(f"{i:02x}" for i in range(256))  # assets/<ab>/, all made at init
LEGACY_ASSET_FOLDERS = re.compile(r"^([0-9a-f]{2})/[0-9a-f]{2}/")  # `ab/cd/` of layout 1; group 1: `ab`

# The lake's own columns of a catalog row; user data never supplies them (rows that came out of
# the lake carry them, and uploading such rows again replaces them).
PARTITION_COLUMNS = ("provider", "dataset", "task", "variant")  # the Hive partition folders
ASSET_COLUMNS = ("hash", "path")  # the row's asset in the store
# written by the upload: who and when, and the asset's original file name (`_source_name`: the
# path cell or the `Image` path it came from, null without one and in parts written before it existed)
SOURCE_NAME = "_source_name"
LINEAGE_COLUMNS = ("_upload_id", "_uploaded_by", "_uploaded_at", SOURCE_NAME)
LAKE_ROW_MARKERS = ("_upload_id", "_uploaded_by", "_uploaded_at")  # every row out of the lake carries these
BUILD_COLUMNS = ("row_id", "_file", "_build")  # added by the database build
# In a part a retraction rewrote, each row's number in the part as its upload wrote it, so that the
# rows left keep their row ids (`<upload_id>:<number>`); no other part has it
ROW_NUMBER = "_row_number"
LAKE_COLUMNS = PARTITION_COLUMNS + ASSET_COLUMNS + LINEAGE_COLUMNS + BUILD_COLUMNS + (ROW_NUMBER,)
READER_COLUMNS = ("file_row_number",)  # DuckDB adds it when the build reads the part files


def asset_relpath(digest: str, ext: str) -> str:
    """Where an asset lives, relative to assets/: `ab/<hash>.<ext>`."""
    return f"{digest[0:2]}/{digest}.{ext}"


def check_name(value: object, what: str) -> str:
    """Return `value` if it is a safe name (letters, digits, `_ . -`, not starting with `.`), else raise."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValidationError(
            f"{what} name {value!r} is not allowed: use letters, digits, '_', '.' and '-', "
            "not starting with '.', at most 128 characters"
        )
    return value


def check_hash(value: object) -> str:
    if not isinstance(value, str) or not HASH_PATTERN.fullmatch(value):
        raise ValidationError(f"{value!r} is not an asset hash (32 lowercase hex digits of xxh3-128)")
    return value


def new_upload_id() -> str:
    """A unique upload id that sorts by time: `20261127T171000123Z-<8 hex>`."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{os.urandom(4).hex()}"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Partition:
    provider: str
    dataset: str
    task: str
    variant: str

    def __post_init__(self) -> None:
        for what in ("provider", "dataset", "task", "variant"):
            check_name(getattr(self, what), what)

    @property
    def relpath(self) -> str:
        return f"provider={self.provider}/dataset={self.dataset}/task={self.task}/variant={self.variant}"

    def __str__(self) -> str:
        return f"{self.provider}/{self.dataset}/{self.task}/{self.variant}"


class Lake:
    """Paths of one lake (docs/design.md, 'The lake on disk')."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.config_dir = self.root / "config"
        self.schema_path = self.config_dir / "schema.yaml"
        self.staging = self.root / "staging"
        self.catalog = self.root / "catalog"
        self.assets = self.root / "assets"
        self.collections = self.root / "collections"
        self.db_dir = self.root / "db"
        self.dbt_target = self.db_dir / "dbt-target"  # dbt's run results and docs site
        self.logs = self.root / "logs"
        self.ledger = self.root / "ledger"
        self.upload_ledger = self.ledger / "uploads"  # <upload_id>.parquet: one row per processed upload
        self.asset_ledger = self.ledger / "assets"  # <upload_id>.parquet: the assets an upload brought
        self.collection_ledger = self.ledger / "collections"  # <name>--<version>.json: deleted versions
        self.fingerprint_ledger = self.ledger / "fingerprints"  # <run_id>-<n>.parquet: image fingerprints
        self.pair_ledger = self.ledger / "near_pairs"  # <run_id>-<n>.parquet: that fingerprint part's near pairs
        self.retraction_ledger = self.ledger / "retractions"  # <retraction_id>.json: what a retraction removed
        self.columns_registry = self.ledger / "columns.json"  # the lake-wide column rule's record
        self.jobs = self.root / "jobs"
        self.locks = self.root / "locks"
        self.cache = self.root / "cache"  # made on demand from the lake's files (thumbnails): deleting it loses nothing
        # In a folder that reads a published copy instead of holding a lake (publish/reader.py): which
        # copy (url, endpoint_url) and the publish its database was last built from (publish_id, built_at)
        self.copy_record = self.root / COPY_RECORD

    def stage(self, name: str) -> Path:
        assert name in STAGES
        return self.staging / name

    def upload_dir(self, stage: str, upload_id: str) -> Path:
        return self.stage(stage) / check_name(upload_id, "upload")

    @property
    def db_path(self) -> Path:
        return self.db_dir / "catalog.duckdb"

    def db_work_path(self, purpose: str) -> Path:
        """The hidden copy of the database a build (`building`) or the docs (`docs`) work on."""
        return self.db_dir / f".catalog.duckdb.{purpose}"

    def upload_record(self, upload_id: str) -> Path:
        return self.upload_ledger / f"{check_name(upload_id, 'upload')}.parquet"

    def asset_record(self, upload_id: str) -> Path:
        return self.asset_ledger / f"{check_name(upload_id, 'upload')}.parquet"

    def fingerprint_record(self, run_id: str, part: int) -> Path:
        return self.fingerprint_ledger / f"{check_name(run_id, 'run')}-{part:06d}.parquet"

    def pair_record(self, fingerprint_part: str) -> Path:
        return self.pair_ledger / f"{check_name(fingerprint_part, 'fingerprint part')}"

    def deletion_record(self, name: str, version: str) -> Path:
        return self.collection_ledger / f"{check_name(name, 'collection')}--{check_name(version, 'version')}.json"

    def retraction_record(self, retraction_id: str) -> Path:
        return self.retraction_ledger / f"{check_name(retraction_id, 'retraction')}.json"

    def collection_dir(self, name: str) -> Path:
        return self.collections / check_name(name, "collection")

    def job_path(self, job_id: str) -> Path:
        return self.jobs / f"{check_name(job_id, 'job')}.json"

    def folders(self) -> list[Path]:
        stages = [self.stage(s) for s in STAGES]
        return [self.config_dir, *stages, self.catalog, self.assets, self.collections, self.db_dir,
                self.logs, self.upload_ledger, self.asset_ledger, self.collection_ledger, self.fingerprint_ledger,
                self.pair_ledger, self.retraction_ledger, self.jobs, self.locks]

    def create(self) -> None:
        """Create every folder of the layout, the store's included; existing content is left as it is."""
        for folder in [*self.folders(), *(self.assets / name for name in STORE_FOLDERS)]:
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def layout_path(self) -> Path:
        return self.root / LAYOUT_FILE

    def layout_version(self) -> int:
        """The layout the lake's files are in (1: a lake made before the layout was recorded)."""
        try:
            return int(json.loads(self.layout_path.read_text(encoding="utf-8"))["version"])
        except FileNotFoundError:
            return 1

    def record_layout(self) -> None:
        """Record that the lake's files are in the current layout (a new lake, or a migrated one)."""
        write_json_atomic(self.layout_path, {"version": LAYOUT_VERSION})

    def reads_copy(self) -> bool:
        """Whether this folder reads a published copy rather than holding a lake."""
        return self.copy_record.is_file()

    def copy_source(self) -> dict[str, str | None]:
        """The copy this folder reads: url, endpoint_url, publish_id (of the last build) and built_at."""
        return read_json(self.copy_record)

    def require(self, copy_ok: bool = False) -> "Lake":
        """Raise a clear error unless this lake has been initialised; unless `copy_ok`, also when the
        folder reads a published copy, which nothing writes to."""
        if not copy_ok and self.reads_copy():
            url = self.copy_source()["url"]
            raise ReadOnlyError(f"{self.root} reads the published copy {url} and holds no lake of its own, which "
                                "this needs: make changes in the lake it was published from, publish it again, "
                                "then run `datalake db update` here")
        if not self.schema_path.is_file():
            raise NotFoundError(
                f"no lake at {self.root} (config/schema.yaml is missing); "
                f"create one with `datalake init {self.root}`"
            )
        version = self.layout_version()
        if version > LAYOUT_VERSION:
            raise LayoutError(f"the lake at {self.root} was written by a newer datalake (layout {version}); "
                              "upgrade datalake to use it")
        if version < LAYOUT_VERSION:
            raise LayoutError(f"the lake at {self.root} keeps its assets in the layout of datalake 0.1; bring it "
                              f"over once with `datalake migrate {self.root}` (safe to interrupt and run again)")
        return self

    def partition_dir(self, partition: Partition) -> Path:
        return self.catalog / partition.relpath

    def asset_path(self, relpath: str) -> Path:
        return self.assets / relpath

    def part_path(self, partition: Partition, upload_id: str) -> Path:
        return self.partition_dir(partition) / f"part-{check_name(upload_id, 'upload')}.parquet"

    def lake_lock(self, name: str) -> Path:
        """A lock of the whole lake: `build` (database builds take turns), `schema` (rule edits),
        `store` (shared by every writer that adds references to stored assets, exclusive for
        retraction and garbage collection)."""
        return self.locks / f"{name}.lock"

    def lock_path(self, kind: str, key: str) -> Path:
        digest = xxhash.xxh3_64_hexdigest(key.encode("utf-8"))
        return self.locks / f"{kind}-{digest}.lock"


"""DatalakeClient: the one object users need to upload, process and inspect a lake."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import quote

import duckdb
import pandas as pd

from . import config, export
from .catalog import db, search, stats, validation
from .catalog.spark import build_on_spark
from .card import SOURCE_ATTR
from .collections import CollectionManager, warn_retracted
from .curation.groups import near_duplicate_groups
from .curation.index import index_fingerprints
from .curation.leakage import LeakageReport, check_leakage, side_of
from .errors import DatalakeError, ValidationError, error_named
from .jobs import JobStore
from .lake import RAW_TASK, Lake
from .lifecycle import GarbageReport, Retraction, Selection, collect_garbage, list_retractions, retract
from .processing.processor import DatalakeProcessor, upload_counts
from .publish import PublishReport, publish, publish_ddl
from .publish.reader import build_from_copy, copy_db_info
from .remote import ServerConnection
from .schema import Schema, init_lake, load_schema
from .upload.ingest import UploadRequest, stage_upload

if TYPE_CHECKING:
    from .server.embedded import Browsing


class DatalakeClient:
    """Upload data, process it and read the lake's state.

    Unset arguments come from env vars (DATALAKE_HOME, DATALAKE_USER, DATALAKE_SERVER_URL,
    DATALAKE_NUM_PROC), then a config.yaml (current folder, then ~/.config/datalake/).
    With `server_url=None` all work runs in this process; with a server, processing runs there
    (the token comes from `token` or DATALAKE_TOKEN) and requests time out after `timeout` s.
    """

    def __init__(self, user_id: str | None = None, base_path: str | Path | None = None,
                 server_url: str | None = None, num_proc: int | None = None, create_dirs: bool = False,
                 token: str | None = None, timeout: float = 10.0):
        settings = config.resolve(user_id=user_id, base_path=base_path, server_url=server_url,
                                  num_proc=num_proc, token=token)
        self.user_id = settings.user_id
        self.server_url = settings.server_url
        self.num_proc = settings.num_proc
        self.lake = init_lake(settings.base_path) if create_dirs else Lake(settings.base_path).require(copy_ok=True)
        self.jobs = JobStore(self.lake)
        self.server = ServerConnection(self.server_url, settings.token, timeout) if self.server_url else None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_stamp: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_published(cls, url: str, base_path: str | Path, endpoint_url: str | None = None,
                       full_refresh: bool = False, **kwargs: Any) -> "DatalakeClient":
        """A client on a database built from the published copy at `url` (s3://bucket/prefix, see
        `publish`), kept in the folder `base_path`: a new or empty folder the first time, after that
        the folder already reading that copy, whose database is brought up to its newest publish.
        It searches, queries and exports (assets read from the copy) and writes to no lake.
        `kwargs` are the constructor's (user_id, num_proc …)."""
        db.warned(build_from_copy(Lake(base_path), url, endpoint_url, full_refresh))
        return cls(base_path=base_path, **kwargs)

    @property
    def base_path(self) -> Path:
        return self.lake.root

    @property
    def schema(self) -> Schema:
        """The lake's current rules (config/schema.yaml)."""
        return load_schema(self.lake)

    # -- upload --------------------------------------------------------------------------------

    def upload_raw(self, data_source: Any, provider: str, dataset: str, variant: str | None = None,
                   description: str = "", overwrite: bool = False, license: str | None = None,
                   license_name: str | None = None, license_url: str | None = None) -> str:
        """Stage raw data (task `raw`; variant image/files/mixed/text detected unless given); its upload id.

        `license` is the dataset's: an SPDX identifier from seeds/licenses.csv, or 'other' with
        `license_name` and `license_url`; it overrides the provider's (config/schema.yaml)."""
        request = UploadRequest(provider, dataset, RAW_TASK, variant, {}, self.user_id, description, overwrite,
                                license, license_name, license_url)
        return stage_upload(self.lake, data_source, request, self.num_proc)["upload_id"]

    def upload_task(self, data_source: Any, provider: str, dataset: str, task: str, variant: str,
                    meta: dict[str, Any], description: str = "", overwrite: bool = False,
                    license: str | None = None, license_name: str | None = None,
                    license_url: str | None = None) -> str:
        """Stage task labels with their meta (checked against the task's rules); its upload id.
        `license` as for upload_raw."""
        request = UploadRequest(provider, dataset, task, variant, dict(meta or {}), self.user_id,
                                description, overwrite, license, license_name, license_url)
        return stage_upload(self.lake, data_source, request, self.num_proc)["upload_id"]

    # -- processing ----------------------------------------------------------------------------

    @property
    def processor(self) -> DatalakeProcessor:
        return DatalakeProcessor(self.lake.root, self.num_proc)

    def trigger_processing(self) -> str:
        """Process every pending upload (on the server if one is set); the job id to follow."""
        if self.server:
            return self.server.request("POST", "/process")["job_id"]
        processor = self.processor  # refused before any job record where the folder holds no lake
        job = self.jobs.create("process")
        return self.jobs.run(job, processor.process_all_pending)["job_id"]

    def index_fingerprints(self) -> dict[str, Any]:
        """Compute a perceptual fingerprint for every image asset that lacks one (after processing,
        never during an upload; on the server if one is set, as its `index` job); counts:
        to_index, fingerprinted, not_images, missing, parts. The next `build_db()` brings them
        into the `asset_fingerprints` mart."""
        if self.server:
            return self.wait_for_job_completion(self.server.request("POST", "/index")["job_id"])
        return index_fingerprints(self.lake, self.num_proc)

    def get_job_status(self, job_id: str) -> dict[str, Any]:
        """The job record: job_id, kind, status (running | completed | failed), times, result, error."""
        if self.server:
            return self.server.request("GET", f"/jobs/{quote(job_id, safe='')}")
        return self.jobs.get(job_id)

    def list_server_jobs(self) -> list[dict[str, Any]]:
        """Job records, oldest first (the server's, or this lake's when embedded)."""
        if self.server:
            return self.server.request("GET", "/jobs")["jobs"]
        return self.jobs.list()

    def get_server_status(self) -> dict[str, Any]:
        """Uploads per stage and running jobs; `state` is `embedded` without a server."""
        if self.server:
            return self.server.request("GET", "/status")
        running = [j for j in self.jobs.list() if j["status"] == "running"]
        return {"state": "embedded", "uploads": upload_counts(self.lake), "running_jobs": running}

    def wait_for_job_completion(self, job_id: str, polling_interval: float = 1.0,
                                timeout: float | None = 3600) -> dict[str, Any]:
        """Wait until the job ends; its result, or DatalakeError if it failed or `timeout` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job_status(job_id)
            if job["status"] == "completed":
                return job["result"]
            if job["status"] == "failed":
                error = error_named(job.get("error_type"))  # the class it failed with
                raise error(f"job {job_id} failed: {job['error']}")
            if deadline is not None and time.monotonic() >= deadline:
                raise DatalakeError(f"job {job_id} is still running after {timeout} s")
            time.sleep(polling_interval)

    # -- database and queries --------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.lake.db_path

    def build_db(self, full_refresh: bool = False, target: str = "duckdb") -> dict[str, Any]:
        """Build or update the database with dbt (on the server if one is set); raises naming failing tests.
        Tests that only warn (datasets without a known license) are in `warnings`, each also a UserWarning.

        `target="spark"` builds the same marts on a local pyspark instead (here, never on the server;
        `datalake[spark]` and a Java runtime), in the lake's db/spark/ warehouse."""
        if target == "spark":
            return db.warned(build_on_spark(self.lake))
        if target != "duckdb":
            raise ValidationError(f"unknown build target {target!r}: duckdb or spark")
        if self.lake.reads_copy():
            return db.warned(build_from_copy(self.lake, full_refresh=full_refresh))
        if self.server:
            job_id = self.server.request("POST", "/build")["job_id"]
            return db.warned(self.wait_for_job_completion(job_id, polling_interval=0.5))
        return db.warned(db.build_db(self.lake, full_refresh))

    def check_db(self) -> dict[str, Any]:
        """Update the database and test every row of it, not only the new ones (a scheduled full
        check; updates test only what they add); raises naming failing tests, the database kept."""
        if self.lake.reads_copy():
            return db.warned(build_from_copy(self.lake, check_all=True))
        return db.warned(db.build_db(self.lake, check_all=True))

    def get_db_info(self) -> dict[str, Any]:
        """Tables and row counts, and whether the database is behind the catalog (`behind`); in a
        folder reading a published copy, behind the copy's newest publish."""
        if self.lake.reads_copy():
            return copy_db_info(self.lake)
        return db.db_info(self.lake)

    def generate_docs(self) -> Path:
        """Write the dbt docs site (lineage from sources to marts); the path of its index.html."""
        return db.generate_docs(self.lake)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection, reopened when a build has replaced the database file."""
        stamp = self.lake.db_path.stat().st_ino if self.lake.db_path.exists() else None
        if self._con is None or stamp != self._con_stamp:
            if self._con is not None:
                self._con.close()
            self._con, self._con_stamp = db.connect(self.lake), stamp
        return self._con

    def search(self, providers: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
               tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
               meta: dict[str, Any] | None = None, text_search: dict[str, Any] | None = None,
               limit: int | None = None, offset: int | None = None) -> pd.DataFrame:
        """Catalog rows: globs per level (OR within, AND across), meta equality, text / JSON-path search;
        at most `limit` rows after skipping `offset` (pages of one search follow each other)."""
        with self._lock:
            rows = search.search(self._connection(), providers=providers, datasets=datasets, tasks=tasks,
                                 variants=variants, meta=meta, text_search=text_search, limit=limit, offset=offset)
        filters = {"providers": providers, "datasets": datasets, "tasks": tasks, "variants": variants, "meta": meta,
                   "text_search": text_search, "limit": limit, "offset": offset}
        rows.attrs[SOURCE_ATTR] = {"search": {k: v for k, v in filters.items() if v is not None}}  # for dataset cards
        return rows

    def count(self, providers: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
              tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
              meta: dict[str, Any] | None = None, text_search: dict[str, Any] | None = None) -> int:
        """How many catalog rows `search` with the same filters finds without a limit."""
        with self._lock:
            return search.count(self._connection(), providers=providers, datasets=datasets, tasks=tasks,
                                variants=variants, meta=meta, text_search=text_search)

    def find_near_duplicates(self, search_results: pd.DataFrame | None = None,
                             threshold: int | None = None) -> pd.DataFrame:
        """Groups of near-duplicate images (resized, re-encoded, lightly cropped or brightened copies)
        among the assets of `search_results`, or across the whole lake: one row per image with its
        group, hash, distance (bits), path, num_rows and datasets. `threshold` is 0 to 14 bits
        (default 12). Needs `index_fingerprints()` and a `build_db()` after it."""
        if search_results is not None and "hash" not in search_results:
            raise ValidationError("these results have no `hash` column: pass rows as `search()` returns them")
        hashes = None if search_results is None else sorted(set(search_results["hash"].dropna()))
        with self._lock:
            return near_duplicate_groups(self._connection(), hashes, threshold)

    def stats(self, providers: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
              tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
              meta: dict[str, Any] | None = None, threshold: int | None = None) -> dict[str, Any]:
        """Statistics of the rows `search` with these filters matches, as a JSON-serialisable dict:
        rows, assets, bytes, images (count, width and height p5/p50/p95), file_types, meta (per
        meta field: distinct values and the most frequent), labels (rows, length percentiles),
        duplicate_rows dropped at upload in the matched partitions, near_duplicates (groups of
        images within `threshold` bits, default 12) and partitions (the dataset_stats mart's rows)."""
        with self._lock:
            return stats.dataset_stats(self._connection(), self.schema, threshold, providers=providers,
                                       datasets=datasets, tasks=tasks, variants=variants, meta=meta)

    def browse(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> "Browsing":
        """Serve the lake's pages (overview, gallery, samples with their labels drawn, collections) from
        this process, reading only; the object shows as their URL (a link in a notebook), `stop()` ends it.
        Port 0 takes any free port; a host off loopback needs `token`."""
        from .server.embedded import Browsing

        return Browsing(self.lake.root, host, port, token)

    def sql(self, query: str, params: list | dict | None = None, dialect: str = "duckdb") -> pd.DataFrame:
        """Run one read-only query against the database (values as `params`). `dialect` names the
        SQL it is written in (trino, athena, presto, spark, hive): it is translated to DuckDB's."""
        with self._lock:
            return db.run_query(self._connection(), query, params, dialect)

    def get_partitions(self) -> pd.DataFrame:
        """One row per partition with its counts and last upload."""
        return self.sql("select * from partitions order by partition_key")

    def download(self, search_results: pd.DataFrame, output_path: str | Path, format: str = "auto",
                 include_images: bool = True, labels: str = "json") -> dict[str, Any]:
        """Write search results, outside the lake, as a portable folder: a save_to_disk dataset or
        `data.parquet`, with its asset files in `assets/`; `format` is auto, parquet or dataset (alias
        datasets); `labels="struct"` gives a `label` of JSON as a nested feature ("json": the text)."""
        return export.download(self.lake, search_results, output_path, format, include_images, labels)

    def to_dataset(self, search_results: pd.DataFrame, include_images: bool = True, labels: str = "json") -> Any:
        """Search results as a datasets.Dataset whose `image` column is the Image feature."""
        return export.to_dataset(self.lake, search_results, include_images, labels)

    def to_pandas(self, search_results: pd.DataFrame, include_images: bool = True) -> pd.DataFrame:
        """Search results with absolute asset paths (and image bytes with include_images)."""
        return export.to_pandas(self.lake, search_results, include_images)

    def validate_assets(self, rows: pd.DataFrame | None = None, sample_percent: float = 100,
                        deep: bool = False) -> dict[str, Any]:
        """Check that assets exist (deep: and hash right) and are no symlinks: total, checked, missing,
        mismatched, symlinks (with their counts), integrity_rate."""
        return validation.validate_assets(self.lake, rows, sample_percent, deep)

    # -- collections ---------------------------------------------------------------------------

    @property
    def collection_manager(self) -> CollectionManager:
        return CollectionManager(self.lake, self.user_id, self.num_proc)

    def import_collection(self, data_source: Any, name: str, version: str | None = None,
                          description: str = "", query: str | None = None,
                          exclude_near_duplicates_of: str | None = None, exclude_assets_of: str | None = None,
                          threshold: int | None = None) -> dict[str, Any]:
        """Freeze search results or external data as a new, immutable collection version; its metadata.
        `exclude_assets_of="train"` (or `"train:v3"`) leaves out the rows whose asset a member of that
        collection version has; `exclude_near_duplicates_of` also those whose image is within
        `threshold` bits (default 12) of one of its members' images (recorded in the metadata)."""
        return self.collection_manager.import_collection(
            data_source, name, version, description, query, exclude_near_duplicates_of=exclude_near_duplicates_of,
            exclude_assets_of=exclude_assets_of, threshold=threshold)

    def check_leakage(self, a: str | pd.DataFrame, b: str | pd.DataFrame, version_a: str | None = None,
                      version_b: str | None = None, threshold: int | None = None) -> LeakageReport:
        """What two collections (latest versions unless given) or sets of lake rows as `search()`
        returns them share: exact assets, near-duplicate images within `threshold` bits (default 12),
        rows, and uploads. Reads the lake's files only: no database build or indexing is needed."""
        manager = self.collection_manager
        return check_leakage(self.lake, side_of(manager, a, version_a, "a"), side_of(manager, b, version_b, "b"),
                             threshold, self.num_proc)

    def load_collection(self, name: str, version: str | None = None, include_images: bool = True,
                        labels: str = "json") -> Any:
        """A collection version (None: latest) as a datasets.Dataset with the Image feature."""
        manager = self.collection_manager
        info = manager.info(name, version)
        warn_retracted(info)
        return export.to_dataset(self.lake, manager.members(name, info["version"]), include_images, labels, info)

    def export_collection(self, name: str, version: str | None = None, output_path: str | Path = ".",
                          format: str = "auto", include_images: bool = True, labels: str = "json") -> dict[str, Any]:
        """Write a collection version as `download` writes rows, outside the lake, with its name,
        version, description and fingerprint in the export."""
        manager = self.collection_manager
        info = manager.info(name, version)
        warn_retracted(info)
        return export.download(self.lake, manager.members(name, info["version"]), output_path, format,
                               include_images, labels, info)

    def delete_collection(self, name: str, version: str | None = None) -> list[str]:
        """Delete a version (None: the whole collection); `latest` moves back."""
        return self.collection_manager.delete(name, version)

    def verify_collection(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Recompute the fingerprint and re-hash every member's asset."""
        return self.collection_manager.verify(name, version)

    # -- retraction and garbage collection -----------------------------------------------------

    def retract(self, providers: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
                tasks: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                hashes: Sequence[str] | None = None, upload_id: str | None = None, reason: str = "",
                dry_run: bool = False, force: bool = False) -> Retraction:
        """Remove rows for good (those of the named partitions, with one of `hashes`, from `upload_id`:
        each given filter must hold), and the assets no other row references, their thumbnails and
        fingerprints; the database is built again. Recorded with `reason` in the retraction ledger.

        `dry_run` returns the plan (rows, assets, bytes, collection versions) and writes nothing.
        Refuses when a collection version holds some of the rows unless `force`, which removes them
        from those versions too and records it in their metadata."""
        selection = Selection.of(providers, datasets, tasks, variants, hashes, upload_id)
        if self.server:
            body = {**selection.to_dict(), "reason": reason, "dry_run": dry_run, "force": force, "user": self.user_id}
            return Retraction.from_dict(self._server_job("/retract", body))
        return retract(self.lake, selection, reason, self.user_id, dry_run, force)

    def collect_garbage(self, dry_run: bool = False) -> GarbageReport:
        """Remove asset files no row and no collection references, and what killed runs left;
        `dry_run` lists them and the bytes they take, and removes nothing (on the server if one is set)."""
        if self.server:
            return GarbageReport(**self._server_job("/gc", {"dry_run": dry_run}))
        return collect_garbage(self.lake, dry_run)

    def _server_job(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start the server's job at `path` with `body` and wait for it; its result."""
        return self.wait_for_job_completion(self.server.request("POST", path, body)["job_id"], polling_interval=0.5)

    def list_retractions(self) -> list[dict[str, Any]]:
        """Every retraction's record (who, when, why, what), oldest first."""
        return list_retractions(self.lake)

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, target: str, endpoint_url: str | None = None, glue_database: str | None = None) -> PublishReport:
        """Copy the lake's catalog, ledger, collections and assets to S3-compatible storage at
        `target` (`s3://bucket/prefix`, on `endpoint_url` if not AWS) in the lake's layout, then a
        manifest naming them (readers use the newest); only what changed is sent, and a run killed
        anywhere is finished by running it again. Credentials come from the usual AWS settings.
        With `glue_database`, the catalog is registered there as the partitioned table `catalog`."""
        return publish(self.lake, target, endpoint_url, glue_database)

    def publish_ddl(self, target: str, dialect: str = "athena", database: str | None = None) -> str:
        """The `CREATE EXTERNAL TABLE` statement (athena) or `CREATE TABLE` of Trino's Hive connector
        (trino) over the catalog published at `target`, in `database` (default `datalake`)."""
        return publish_ddl(self.lake, target, dialect, database)

    # -- staging -------------------------------------------------------------------------------

    def list_uploads(self) -> list[dict[str, Any]]:
        """Uploads still in staging (pending, processing, failed with the reason)."""
        return self.processor.list_uploads()

    def retry_upload(self, upload_id: str) -> None:
        """Send a failed upload back to pending."""
        self.processor.retry(upload_id)


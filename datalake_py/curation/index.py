"""Fingerprint indexing: a perceptual fingerprint for every image asset of the lake that lacks one.

It runs after processing, never during an upload. A run (one at a time per lake, under the
`fingerprints` lake lock) finds the image assets the asset ledger names that no fingerprint part
holds yet, fingerprints them in worker processes, and writes a part
`ledger/fingerprints/<run_id>-<n>.parquet` per CHUNK assets, each written under a temporary name
and renamed: a killed run leaves whole parts only, and the next run does the rest.
An image Pillow cannot read gets a part row with a null fingerprint, so it is not tried again;
an asset missing from the store, or reached through a symlink there, gets no row (it may be fixed).
"""

from __future__ import annotations

import io
import threading
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog.validation import MissingAsset, StoreFiles, UnsafeAsset
from ..errors import ConflictError, storage_errors
from ..fs import atomic_path, file_lock
from ..lake import Lake, new_upload_id, utc_now
from ..progress import progress
from ..upload.workers import start_workers
from .fingerprint import fingerprint
from .pairs import pair_new_fingerprints

CHUNK = 5000  # assets per ledger part: the most a killed run loses
BATCH = 100  # assets per call to a worker process
PROCESS_MIN_ASSETS = 500  # fewer are fingerprinted in this process: a child takes ~0.1 s to start
PART_SCHEMA = pa.schema([("hash", pa.string()), ("fingerprint", pa.int64()), ("fingerprinted_at", pa.string())])


class Fingerprinter:
    """A worker: the fingerprints of store files, reached as validation reaches them (no symlink)."""

    def __init__(self, lake_root: str):
        self.store = StoreFiles(Lake(lake_root))

    def __call__(self, assets: list[tuple[str, str]]) -> list[tuple[str, int | None] | None]:
        """For each (hash, path under assets/): (hash, fingerprint or None when not an image), or
        None when the store file is missing or unsafe."""
        return [self._one(digest, relpath) for digest, relpath in assets]

    def _one(self, digest: str, relpath: str) -> tuple[str, int | None] | None:
        try:
            _, source = self.store.open(digest, relpath)
        except (MissingAsset, UnsafeAsset):
            return None
        except OSError as exc:
            raise self.store.unreadable(relpath, exc) from None
        with source:
            found = fingerprint(io.BufferedReader(source))
        return digest, None if found is None else found.value


def index_fingerprints(lake: Lake, num_proc: int, stop: threading.Event | None = None) -> dict[str, Any]:
    """Fingerprint every image asset that has no fingerprint yet, and record the near-duplicate
    pairs the new fingerprints make; counts of what was done.

    ConflictError if another run is under way on this lake. Setting `stop` ends the run after the
    part being made; the rest is left for the next run.
    """
    lake.require()
    with storage_errors("indexing fingerprints"), file_lock(lake.lake_lock("fingerprints"), blocking=False) as held:
        if held is None:
            raise ConflictError("fingerprints of this lake are being indexed already (by another process or job); "
                                "wait for it to finish, then run again for anything it left")
        for leftover in lake.fingerprint_ledger.glob(".*.tmp"):  # a part a killed run was writing
            leftover.unlink()
        todo = unfingerprinted(lake)
        counts = {"to_index": len(todo), "fingerprinted": 0, "not_images": 0, "missing": 0, "parts": 0}
        if todo:
            _fingerprint(lake, todo, num_proc, held, stop or threading.Event(), counts)
        counts["pairs"] = pair_new_fingerprints(lake, _parts(lake.fingerprint_ledger))
        return counts


def _fingerprint(lake: Lake, todo: list[tuple[str, str]], num_proc: int, lock_fd: int, stop: threading.Event,
                 counts: dict[str, int]) -> None:
    """Fingerprint the assets `todo` in parts of CHUNK, counting what was done in `counts`."""
    run_id = new_upload_id()
    for chunk, found in _fingerprinted(lake, todo, num_proc, (lock_fd,), stop):
        _write_part(lake.fingerprint_record(run_id, counts["parts"]), found)
        counts["parts"] += 1
        counts["fingerprinted"] += sum(1 for _, value in found if value is not None)
        counts["not_images"] += sum(1 for _, value in found if value is None)
        counts["missing"] += len(chunk) - len(found)


def _fingerprinted(lake: Lake, assets: list[tuple[str, str]], num_proc: int, inherit: tuple[int, ...] = (),
                   stop: threading.Event | None = None) -> Iterator[tuple[list[tuple[str, str]], list]]:
    """(chunk, its (hash, fingerprint or None) answers) for `assets` (hash, path) CHUNK at a time, with
    a progress bar; missing or unsafe store files have no answer. Child processes do the work when
    there are enough assets to pay for them; none starts a chunk once `stop` is set."""
    processes = max(1, num_proc) if len(assets) >= PROCESS_MIN_ASSETS else 0
    workers = start_workers(partial(Fingerprinter, str(lake.root)), processes, inherit)
    try:
        with progress(desc="fingerprinting", total=len(assets), unit="image") as bar:
            for start in range(0, len(assets), CHUNK):
                if stop is not None and stop.is_set():
                    break
                chunk = assets[start:start + CHUNK]
                futures = [workers.submit(chunk[i:i + BATCH]) for i in range(0, len(chunk), BATCH)]
                yield chunk, [answer for future in futures for answer in future.result() if answer is not None]
                bar.update(len(chunk))
    finally:
        workers.shutdown(cancel_futures=True)


def compute_fingerprints(lake: Lake, assets: list[tuple[str, str]], num_proc: int) -> dict[str, int | None]:
    """Hash to fingerprint (None: not an image) of store assets given as (hash, path), computed now
    and recorded nowhere: for reads that cannot wait for the indexer. Missing store files are left out."""
    return dict(answer for _, found in _fingerprinted(lake, assets, num_proc) for answer in found)


def recorded_fingerprints(lake: Lake, hashes: list[str]) -> dict[str, int | None]:
    """Hash to fingerprint (None: not an image) of those of `hashes` the fingerprint ledger holds."""
    parts = _parts(lake.fingerprint_ledger)
    if not parts or not hashes:
        return {}
    query = """select hash, any_value(fingerprint) from read_parquet(?, union_by_name=true)
               where hash in (select unnest(?)) group by hash"""
    with duckdb.connect() as con:
        return dict(con.execute(query, [parts, hashes]).fetchall())


def unfingerprinted(lake: Lake) -> list[tuple[str, str]]:
    """(hash, path) of each image asset the asset ledger names and no fingerprint part holds, by hash."""
    facts = _parts(lake.asset_ledger)
    if not facts:
        return []
    done = _parts(lake.fingerprint_ledger)
    known = ("select hash from read_parquet(?, union_by_name=true)" if done
             else "select null::varchar as hash where false")
    query = f"""
        select hash, min(path) from read_parquet(?, union_by_name=true)
        where kind = 'image' and hash not in ({known})
        group by hash order by hash"""
    with duckdb.connect() as con:
        return [tuple(row) for row in con.execute(query, [facts, *([done] if done else [])]).fetchall()]


def _parts(folder: Path) -> list[str]:
    """The ledger parts in `folder` (temporary files of writers under way are hidden and left out)."""
    if not folder.is_dir():
        return []
    return sorted(str(path) for path in folder.glob("*.parquet") if not path.name.startswith("."))


def _write_part(path: Path, found: list[tuple[str, int | None]]) -> None:
    now = utc_now()
    table = pa.Table.from_pylist([{"hash": digest, "fingerprint": value, "fingerprinted_at": now}
                                  for digest, value in found], schema=PART_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)

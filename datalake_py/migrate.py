"""Bring a lake made by an earlier datalake over to the current layout of its asset store.

Layout 1 kept an asset at `assets/ab/cd/<hash>.<ext>`, so storing the first 10,000 assets of a
lake made about 9,300 folders. Layout 2 keeps it at `assets/ab/<hash>.<ext>`, one level deep as
git and DVC do, in the 256 folders `init` makes. `migrate_lake` brings a layout-1 lake over in
steps that can each be killed and are finished by running it again:

1. every asset gets its new name as a hard link, keeping the old one (no bytes are copied);
2. the `path` values in the catalog's part files, the asset ledger and the uploads waiting in
   staging are rewritten, each file replaced atomically;
3. the old names and their folders are removed;
4. the layout file records layout 2. Until then every other command refuses the lake, so nothing
   else writes to it meanwhile.

Collection versions are left exactly as they were made, so their fingerprints stay true: their
members' `path` keeps the old form, which their readers give in the current one.
A database, if the lake has one, is rebuilt in full at the end, for its `path` values.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .fs import atomic_path, file_lock
from .lake import ASSETS_FILE, DATA_FILE, LAYOUT_VERSION, LEGACY_ASSET_FOLDERS, PART_FILES, STORE_FOLDERS, Lake
from .upload.assets import real_folder_names


def migrate_lake(base_path: str | Path) -> dict[str, Any]:
    """Bring the lake at `base_path` to the current layout: whether it had to, the assets it moved and
    the files of rows it rewrote (an interrupted run, run again, counts what was left)."""
    lake = Lake(base_path)
    if not lake.schema_path.is_file() or lake.layout_version() > LAYOUT_VERSION:
        lake.require()  # no lake here, or one of a newer datalake: its error says so
    with file_lock(lake.lake_lock("migrate")):
        if lake.layout_version() == LAYOUT_VERSION:
            return {"migrated": False, "assets": 0, "files": 0}
        lake.create()
        folders = _legacy_folders(lake)
        assets = _link_new_names(lake, folders)
        files = sum(_rewrite_paths(path) for path in _files_with_paths(lake))
        _remove_old_names(lake, folders)
        lake.record_layout()
    if lake.db_path.is_file():
        from .catalog.db import build_db  # here: only a lake with a database pays for loading dbt

        build_db(lake, full_refresh=True)
    return {"migrated": True, "assets": assets, "files": files}


def _legacy_folders(lake: Lake) -> list[str]:
    """The `ab/cd` folders of layout 1 left in the store (its files have longer names)."""
    return [f"{top}/{name}" for top in STORE_FOLDERS for name in real_folder_names(lake.assets / top)
            if len(name) == 2]


def _link_new_names(lake: Lake, folders: list[str]) -> int:
    """Give every asset of the layout-1 `folders` its layout-2 name too; how many assets they hold."""
    assets = 0
    for folder in folders:
        for name in real_folder_names(lake.assets / folder):
            if name.startswith("."):  # a temporary name an earlier version left: not an asset
                continue
            with contextlib.suppress(FileExistsError):  # linked by a run that was killed
                os.link(lake.assets / folder / name, lake.assets / folder[:2] / name)
            assets += 1
    return assets


def _files_with_paths(lake: Lake) -> list[Path]:
    """Every file of the lake, collections aside, whose rows hold asset paths."""
    staged = [folder / name for stage in ("pending", "processing", "failed")
              for folder in lake.stage(stage).iterdir() for name in (DATA_FILE, ASSETS_FILE)]
    return [*lake.catalog.glob(PART_FILES), *lake.asset_ledger.glob("*.parquet"), *staged]


def _rewrite_paths(path: Path) -> int:
    """Rewrite the layout-1 `path` values of a parquet file in place, atomically; 1 if it changed."""
    if not path.is_file():
        return 0
    table = pq.ParquetFile(path).read()
    if "path" not in table.column_names:
        return 0
    column = table["path"]
    new = pc.replace_substring_regex(column, LEGACY_ASSET_FOLDERS.pattern, r"\1/")
    if new.equals(column):
        return 0
    with atomic_path(path) as tmp:
        pq.write_table(table.set_column(table.column_names.index("path"), "path", new), tmp, compression="zstd")
    return 1


def _remove_old_names(lake: Lake, folders: list[str]) -> None:
    """Remove the layout-1 `folders` and the names in them, now that every asset has its new one."""
    for folder in folders:
        for name in real_folder_names(lake.assets / folder):
            os.unlink(lake.assets / folder / name)
        os.rmdir(lake.assets / folder)

"""A folder that reads a published copy (`datalake db update --from s3://bucket/prefix`).

It holds no lake of its own: the copy's rules, layout record and collections (config/schema.yaml,
layout.json, collections/, as the publish it was last built from has them), the record of the
copy it reads (`published.json`: url, endpoint_url, publish_id, built_at), and the database
dbt-duckdb builds from the copy, with its locks and logs. A client opened on the folder searches,
queries, counts and exports from that database, and loads, exports and verifies collections,
reading assets from the copy (catalog/validation.CopyStoreFiles); whatever writes to a lake is
refused there (ReadOnlyError).

Each build reads the newest complete publish: the one `_manifests/latest` names, its objects only
(copy_files.CopyFiles). Builds after the first are incremental, as on a lake.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from ..catalog import db
from ..errors import ConflictError, LayoutError, ValidationError
from ..fs import file_lock, write_bytes_atomic, write_json_atomic
from ..lake import LAYOUT_FILE, LAYOUT_VERSION, Lake, check_name
from .copy_files import CopyFiles, newest_publish, open_copy
from .files import ROOT_FILES
from .target import check_endpoint, open_store, parse_target, store_errors


def build_from_copy(lake: Lake, url: str | None = None, endpoint_url: str | None = None,
                    full_refresh: bool = False, check_all: bool = False) -> dict[str, Any]:
    """Build (or update) the folder's database from the newest publish at `url` (default: the copy
    the folder reads already), making the folder a reader of that copy the first time; the
    build's summary with `published`, the folder's record."""
    source = _source(lake, url, endpoint_url)
    target, endpoint_url = parse_target(source["url"]), check_endpoint(source["endpoint_url"])
    with store_errors(target):
        store = open_store(endpoint_url)
        publish_id = newest_publish(store, target)
        files = open_copy(store, target, publish_id)
        rules = {key: files.content(target.path(key)) for key in ROOT_FILES}
    _check_layout(rules[LAYOUT_FILE], target.url)
    for folder in (lake.config_dir, lake.db_dir, lake.locks, lake.logs):
        folder.mkdir(parents=True, exist_ok=True)
    with file_lock(lake.lake_lock("build")):  # not under a build of this folder that is reading them
        if not lake.reads_copy():
            write_json_atomic(lake.copy_record, {**source, "publish_id": None, "built_at": None})
        for key, content in rules.items():
            write_bytes_atomic(lake.root / key, content)
    # the AWS settings as they are now: dbt runs in a process kept from an earlier build
    copy_vars = {**{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
                 "DATALAKE_HOME": target.url, "DATALAKE_S3_ENDPOINT": endpoint_url or "",
                 "DATALAKE_PUBLISH_ID": publish_id}
    with store_errors(target):
        built = db.build_db(lake, full_refresh, check_all, copy_vars)
        _take_collections(lake, files)
    record = {**source, "publish_id": publish_id, "built_at": built["built_at"]}
    write_json_atomic(lake.copy_record, record)
    return {**built, "published": record}


def copy_db_info(lake: Lake) -> dict[str, Any]:
    """db.db_info of a reader, with its record and `behind`: whether the copy has a newer publish
    than the one the database was built from."""
    info, record = db.db_info(lake), lake.copy_source()
    target = parse_target(record["url"])
    with store_errors(target):
        newest = newest_publish(open_store(check_endpoint(record["endpoint_url"])), target)
    return {**info, "published": record, "newest_publish_id": newest,
            "behind": not info["exists"] or newest != record["publish_id"]}


def _source(lake: Lake, url: str | None, endpoint_url: str | None) -> dict[str, str | None]:
    """The copy to build from (url, endpoint_url): the one given, checked against the folder."""
    if lake.reads_copy():
        recorded = lake.copy_source()
        if url is not None and parse_target(url).url != recorded["url"]:
            raise ConflictError(f"{lake.root} reads the published copy {recorded['url']}, not {url}: build "
                                "from another copy into another folder")
        return {"url": recorded["url"], "endpoint_url": endpoint_url or recorded["endpoint_url"]}
    if url is None:
        raise ValidationError(f"{lake.root} reads no published copy: give one, `datalake db update --from "
                              "s3://bucket/prefix`")
    if lake.schema_path.exists():
        raise ConflictError(f"{lake.root} holds a lake of its own; build from a published copy into a new or "
                            "empty folder")
    if lake.root.is_dir() and os.listdir(lake.root):
        raise ConflictError(f"{lake.root} holds other files; build from a published copy into a new or empty "
                            "folder")
    return {"url": parse_target(url).url, "endpoint_url": check_endpoint(endpoint_url)}


def _take_collections(lake: Lake, files: CopyFiles) -> None:
    """The copy's collections/ as the publish has them, in place of the folder's: written beside it,
    then swapped in (a kill in between leaves no collections/, which the next build brings back).
    Each part of a key must be a name (lake.check_name) before it becomes a path."""
    name = lake.collections.name  # the same key in the copy as in a lake
    prefix = files.target.path(f"{name}/")
    work, old = lake.root / f".{name}.new", lake.root / f".{name}.old"
    for leftover in (work, old):
        shutil.rmtree(leftover, ignore_errors=True)
    work.mkdir()
    for path in sorted(p for p in files.files if p.startswith(prefix)):
        parts = path[len(prefix):].split("/")
        for part in parts:
            check_name(part, "collection file")
        (work / "/".join(parts[:-1])).mkdir(parents=True, exist_ok=True)
        (work / "/".join(parts)).write_bytes(files.content(path))
    if lake.collections.exists():
        os.replace(lake.collections, old)
    os.replace(work, lake.collections)
    shutil.rmtree(old, ignore_errors=True)


def _check_layout(content: bytes, url: str) -> None:
    """Refuse a copy whose files are in another layout than this datalake reads."""
    version = json.loads(content)["version"]
    if version != LAYOUT_VERSION:
        raise LayoutError(f"the copy at {url} is in layout {version}; this datalake reads layout {LAYOUT_VERSION}: "
                          "use the datalake that published it")

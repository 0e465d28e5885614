"""What the gallery pages read from the lake's database: every value a bound parameter, every
identifier one of the marts' own columns."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from ..client import DatalakeClient
from ..errors import NotFoundError, ValidationError
from ..lake import check_name

ROW_ID = re.compile(r"([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}):(\d{1,12})")  # `<upload_id>:<row number>`
MEMBER_KEY = "coalesce(row_id, hash)"  # what one member is, when two versions are compared
SHARED_ROWS_SHOWN = 50


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, missing values as None (pandas gives NaN/NaT)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def overview(client: DatalakeClient) -> list[dict[str, Any]]:
    """Every partition with its rows, assets, bytes and last upload, and its dataset's license (id,
    name, url: dataset_licenses), in hierarchy order."""
    return records(client.sql(
        "select p.provider, p.dataset, p.task, p.variant, p.num_rows, p.num_assets, p.bytes, p.last_upload_at, "
        "l.license, l.name as license_name, l.url as license_url "
        "from partitions as p left join dataset_licenses as l using (provider, dataset) "
        "order by p.provider, p.dataset, p.task, p.variant"))


def gallery(client: DatalakeClient, filters: dict[str, Any], page: int, per_page: int) -> tuple[list[dict], int]:
    """One page of a search's rows, and how many rows match in all."""
    total = client.count(**filters)
    rows = client.search(**filters, limit=per_page, offset=(page - 1) * per_page)
    return records(rows), total


def check_row_id(row_id: str) -> str:
    if not ROW_ID.fullmatch(row_id):
        raise ValidationError(f"{row_id!r} is not a row id (`<upload_id>:<row number>`)")
    return row_id


def sample(client: DatalakeClient, row_id: str) -> dict[str, Any]:
    """A catalog row with its asset, its upload, the other rows sharing the asset, and the
    collection versions holding it."""
    upload_id = ROW_ID.fullmatch(check_row_id(row_id)).group(1)
    found = records(client.sql("select * from catalog where _upload_id = ? and row_id = ?", [upload_id, row_id]))
    if not found:
        raise NotFoundError(f"no row {row_id} in the catalog (the database may be older than the lake: "
                            "`datalake db update`)")
    row = found[0]
    digest = row.get("hash")
    asset = records(client.sql("select * from assets where hash = ?", [digest])) if digest else []
    upload = records(client.sql("select upload_id, uploaded_by, uploaded_at, processed_at, source, description "
                                "from uploads where upload_id = ?", [upload_id]))
    shared = records(client.sql(
        "select row_id, provider, dataset, task, variant from catalog where hash = ? and row_id <> ? "
        "order by provider, dataset, task, variant, row_id limit ?", [digest, row_id, SHARED_ROWS_SHOWN])) \
        if digest else []
    held_by = records(client.sql(
        "select distinct name, version from collection_members where hash = ? or row_id = ? order by all",
        [digest, row_id]))
    return {"row": row, "asset": asset[0] if asset else None, "upload": upload[0] if upload else None,
            "shared": shared, "collections": held_by}


def collections(client: DatalakeClient) -> list[dict[str, Any]]:
    """Every live collection version, newest first within each collection."""
    return records(client.sql(
        "select name, version, description, created_at, created_by, num_samples, source, fingerprint, is_latest "
        "from collections order by name, created_at desc, version desc"))


def collection(client: DatalakeClient, name: str, version: str, page: int, per_page: int) -> dict[str, Any]:
    """A collection version's metadata and one page of its members, with their catalog labels."""
    check_name(name, "collection"), check_name(version, "version")
    found = records(client.sql("select * from collections where name = ? and version = ?", [name, version]))
    if not found:
        raise NotFoundError(f"no collection version {name} {version} in the database "
                            "(`datalake collections list`; `datalake db update` after a new version)")
    labelled = client.sql("select count(*) as n from information_schema.columns where table_schema = 'main' "
                          "and table_name = 'catalog' and column_name = 'label'")["n"][0]
    members = records(client.sql(
        "select members.member_index, members.row_id, members.provider, members.dataset, members.task, "
        f"members.variant, members.hash, members.path, members.in_catalog{', catalog.label' if labelled else ''} "
        "from collection_members as members left join catalog using (row_id) "
        "where members.name = ? and members.version = ? order by members.member_index limit ? offset ?",
        [name, version, per_page, (page - 1) * per_page]))
    return {"collection": found[0], "members": members}


def diff(client: DatalakeClient, name: str, old: str, new: str) -> dict[str, list[dict[str, Any]]]:
    """The members of version `new` that `old` lacks (added), and those it dropped (removed); a
    member is its catalog row, or its asset when it has no row."""
    for version in (old, new):
        check_name(version, "version")
        if client.sql("select count(*) as n from collections where name = ? and version = ?",
                      [check_name(name, "collection"), version])["n"][0] == 0:
            raise NotFoundError(f"no collection version {name} {version} in the database")
    select = ("select row_id, provider, dataset, task, variant, hash, path from collection_members "
              "where name = ? and version = ? and {key} not in "
              "(select {key} from collection_members where name = ? and version = ? and {key} is not null) "
              "order by member_index").format(key=MEMBER_KEY)
    return {"added": records(client.sql(select, [name, new, name, old])),
            "removed": records(client.sql(select, [name, old, name, new]))}

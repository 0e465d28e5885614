"""Dataset cards: the README.md a Hugging Face dataset card is, written in every export folder.

Its YAML header is the Hub's card metadata (license, language, task_categories, size_categories,
source_datasets, pretty_name, dataset_info); its body says where the rows came from: the
collection or search, the providers, datasets and uploads (who, when), duplicates, and the
licenses with the attribution each asks for. A card of rows mixing licenses that allow
commercial use with ones that do not says so first.

What an export came from: the collection version it holds (its metadata, as export.download gets
it), else the search that found its rows (the filters DatalakeClient.search leaves in
`rows.attrs[SOURCE_ATTR]`). Licenses come from the database's dataset_licenses mart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import NotFoundError
from .fs import write_text_atomic
from .lake import LAKE_ROW_MARKERS, Lake
from .licenses import OTHER
from .upload.sources import EXPORT_PARQUET

CARD_FILE = "README.md"
SOURCE_ATTR = "datalake"
# The lake's tasks as the Hub's task categories (docs/design.md, Dataset cards)
TASK_CATEGORIES = {
    "ocr": "image-to-text",
    "vqa": "visual-question-answering",
    "kie": "token-classification",
    "layout": "object-detection",
    "document_conversion": "image-to-text",
}
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
MIXED_NOTICE = ("> **Mixed licenses: some rows may be used commercially, others may not** ({}). Check the "
                "license of each dataset below before any commercial use.")


@dataclass(frozen=True)
class DatasetLicense:
    """A dataset's effective license as the dataset_licenses mart gives it (license None: none known)."""

    provider: str
    dataset: str
    license: str | None
    name: str | None
    url: str | None
    commercial_use: bool | None
    attribution_required: bool | None
    hub_id: str | None


def dataset_licenses(lake: Lake, rows: pd.DataFrame) -> list[DatasetLicense]:
    """The effective license of each dataset the rows come from (provider and dataset columns), by
    provider and dataset; an empty list for rows from outside the lake or before any database build."""
    if not {"provider", "dataset"} <= set(rows.columns) or not len(rows):
        return []
    from .catalog import db

    pairs = rows[["provider", "dataset"]].drop_duplicates().sort_values(["provider", "dataset"])
    found: dict[tuple[str, str], tuple] = {}
    try:
        with db.connect(lake) as con:
            if db.has_table(con, "dataset_licenses"):  # one row a dataset: read whole
                found = {(r[0], r[1]): r for r in con.execute(
                    "select l.provider, l.dataset, l.license, l.name, l.url, l.commercial_use, l.attribution_required, "
                    "k.hub_id from dataset_licenses as l left join licenses as k on k.id = l.license").fetchall()}
    except NotFoundError:
        pass
    return [DatasetLicense(*found.get((p, d), (p, d, None, None, None, None, None, None)))
            for p, d in pairs.itertuples(index=False)]


def mixed_commercial_use(licenses: list[DatasetLicense]) -> str | None:
    """A sentence naming both sides when some datasets' licenses allow commercial use and others' do not."""
    allowed = sorted({lic.license for lic in licenses if lic.commercial_use is True})
    refused = sorted({lic.license for lic in licenses if lic.commercial_use is False})
    if not (allowed and refused):
        return None
    return f"commercial use allowed by {', '.join(allowed)}; not allowed by {', '.join(refused)}"


def write_card(lake: Lake, rows: pd.DataFrame, folder: Path, collection: dict[str, Any] | None = None) -> None:
    """Write the dataset card of the export in `folder` (save_to_disk files, or data.parquet) as its
    README.md; `collection` is the metadata of the collection version it holds, if any."""
    import datasets
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard, DatasetCardData

    if (folder / EXPORT_PARQUET).is_file():
        features = datasets.Features.from_arrow_schema(pq.read_schema(folder / EXPORT_PARQUET))
        num_bytes = (folder / EXPORT_PARQUET).stat().st_size
    else:
        features = datasets.DatasetInfo.from_directory(str(folder)).features
        num_bytes = sum(f.stat().st_size for f in folder.glob("data-*.arrow"))
    licenses = dataset_licenses(lake, rows)
    source = {"collection": collection} if collection else rows.attrs.get(SOURCE_ATTR) or {}
    card_data = DatasetCardData(
        pretty_name=_pretty_name(source), size_categories=_size_category(len(rows)),
        task_categories=sorted({TASK_CATEGORIES[t] for t in _values(rows, "task") if t in TASK_CATEGORIES}) or None,
        language=sorted(v for v in _values(rows, "lang") if v.isalpha() and v.islower() and len(v) in (2, 3)) or None,
        multilinguality="multilingual" if "multi" in _values(rows, "lang") else None,
        source_datasets=[f"{lic.provider}/{lic.dataset}" for lic in licenses] or None,
        **_license_metadata(licenses))
    info = datasets.DatasetInfo(features=features, dataset_size=num_bytes,
                                splits=datasets.SplitDict({"train": datasets.SplitInfo("train", num_bytes, len(rows))}))
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    body = "\n\n".join(part for part in _body(lake, rows, source, licenses) if part)
    write_text_atomic(folder / CARD_FILE, str(DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n")))


def _values(rows: pd.DataFrame, column: str) -> set[str]:
    return {str(v) for v in rows[column].dropna().unique()} if column in rows.columns else set()


def _pretty_name(source: dict[str, Any]) -> str:
    collection = source.get("collection")
    return f"{collection['name']} {collection['version']}" if collection else "datalake export"


def _size_category(n: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>1B")


def _license_metadata(licenses: list[DatasetLicense]) -> dict[str, Any]:
    """The card's license: the one license, or `other` listing them when they differ or are unknown."""
    ids = sorted({lic.license for lic in licenses if lic.license})
    distinct = {(lic.license, lic.name, lic.url) for lic in licenses}  # two `other` licenses differ by name and URL
    if len(distinct) == 1 and licenses[0].license:
        lic = licenses[0]
        if lic.license != OTHER and lic.hub_id:
            return {"license": lic.hub_id}
        return {"license": OTHER, "license_name": _slug(lic.name or OTHER), "license_link": lic.url}
    if not ids:
        return {}
    return {"license": OTHER, "license_name": "mixed", "license_link": "README.md#licenses",
            "licenses": [*ids, *(["none"] if not all(lic.license for lic in licenses) else [])]}


def _slug(name: str) -> str:
    """A license name as the Hub's `license_name` takes it: lowercase words joined by `-`."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or OTHER


def _body(lake: Lake, rows: pd.DataFrame, source: dict[str, Any], licenses: list[DatasetLicense]) -> list[str]:
    mixed = mixed_commercial_use(licenses)
    collection = source.get("collection")
    return [
        MIXED_NOTICE.format(mixed) if mixed else "",
        f"# {_pretty_name(source)}",
        (collection or {}).get("description", ""),
        "## Source\n\n" + _source_lines(lake, source, len(rows)),
        _provenance(lake, rows, licenses),
        _duplicates(lake, rows),
        _license_lines(licenses),
    ]


def retraction_notes(metadata: dict[str, Any]) -> list[str]:
    """`N member(s) retracted on DATE (reason)` for each retraction that took members of a collection version."""
    return [f"{r['members']} member(s) retracted on {r['retracted_at'][:10]} ({r['reason']})"
            for r in metadata.get("retractions", [])]


def _source_lines(lake: Lake, source: dict[str, Any], num_rows: int) -> str:
    lines = []
    collection = source.get("collection")
    if collection:
        lines += [f"- Collection: `{collection['name']}`, version `{collection['version']}`, "
                  f"fingerprint `{collection['fingerprint']}`",
                  f"- Frozen by {collection['created_by']} at {collection['created_at']} from: {collection['source']}"]
        lines += [f"- Retracted since it was frozen, and not in this export: {note}"
                  for note in retraction_notes(collection)]
    elif source.get("search"):
        filters = "; ".join(f"{k}={v}" for k, v in source["search"].items())
        lines.append(f"- A search of the lake: {filters}")
    else:
        lines.append("- Rows given to the export (no collection or search recorded)")
    from . import __version__

    # no time: the same rows export to the same bytes, card included
    lines.append(f"- Exported from the lake `{lake.root.name}` by datalake {__version__}: {num_rows} rows")
    return "\n".join(lines)


def _provenance(lake: Lake, rows: pd.DataFrame, licenses: list[DatasetLicense]) -> str:
    """The providers and datasets, and the uploads with who and when, with the rows each gave."""
    lines = ["## Provenance"]
    if licenses:
        counts = rows.groupby(["provider", "dataset"]).size()
        lines += ["", "| provider | dataset | rows | license |", "| --- | --- | --- | --- |"]
        lines += [f"| {lic.provider} | {lic.dataset} | {counts[(lic.provider, lic.dataset)]} | "
                  f"{lic.license or 'none'} |" for lic in licenses]
    if set(LAKE_ROW_MARKERS) <= set(rows.columns):
        uploads = rows.groupby(list(LAKE_ROW_MARKERS), dropna=False).size().reset_index(name="rows").sort_values("_uploaded_at")
        lines += ["", "Uploads:", "", "| upload | by | at | rows |", "| --- | --- | --- | --- |"]
        lines += [f"| {u} | {by} | {at} | {n} |" for u, by, at, n in uploads.itertuples(index=False)]
    return "\n".join(lines) if len(lines) > 1 else ""


def _duplicates(lake: Lake, rows: pd.DataFrame) -> str:
    """Rows sharing an asset with an earlier row, and the duplicate rows their uploads left out."""
    lines = ["## Duplicates", ""]
    if "hash" in rows.columns:
        hashes = rows["hash"].dropna()
        lines.append(f"- Rows whose asset an earlier row has too: {int(hashes.duplicated().sum())}")
    dropped = _dropped_at_upload(lake, rows)
    if dropped is not None:
        lines.append(f"- Duplicate rows their uploads left out (already in the partition): {dropped}")
    return "\n".join(lines) if len(lines) > 2 else ""


def _dropped_at_upload(lake: Lake, rows: pd.DataFrame) -> int | None:
    if "_upload_id" not in rows.columns:
        return None
    from .catalog import db

    try:
        with db.connect(lake) as con:
            return int(con.execute("select coalesce(sum(duplicate_rows), 0) from uploads "
                                   "where upload_id in (select unnest(?))",
                                   [rows["_upload_id"].dropna().unique().tolist()]).fetchall()[0][0])
    except NotFoundError:
        return None


def _license_lines(licenses: list[DatasetLicense]) -> str:
    """Each license with its datasets, whether it allows commercial use, and the attribution it asks."""
    if not licenses:
        return ""
    lines = ["## Licenses", ""]
    by_license: dict[tuple, list[DatasetLicense]] = {}  # two `other` licenses differ by name and URL
    for lic in licenses:
        by_license.setdefault((lic.license, lic.name, lic.url), []).append(lic)
    for (license, _, _), group in sorted(by_license.items(), key=lambda item: [v or "~" for v in item[0]]):
        names = ", ".join(f"{lic.provider}/{lic.dataset}" for lic in group)
        if license is None:
            lines.append(f"- No license recorded: {names}. Ask their provider before using them.")
            continue
        first = group[0]
        use = {True: "commercial use allowed", False: "no commercial use", None: "commercial use: see the license"}
        lines.append(f"- {license} ([{first.name}]({first.url})), {use[first.commercial_use]}: {names}")
        if first.attribution_required is not False:
            lines += [f"  - Attribution: \"{lic.dataset}\" by {lic.provider}, licensed under {license} ({first.url})"
                      for lic in group]
    return "\n".join(lines)

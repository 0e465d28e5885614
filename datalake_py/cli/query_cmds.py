"""`datalake search`, `datalake query` and `datalake download`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from ..errors import ValidationError
from ..lake import LAKE_COLUMNS, PARTITION_COLUMNS, READER_COLUMNS
from .output import note, print_frame, warnings_printed
from .context import client_for
from .upload_cmd import parse_meta

if TYPE_CHECKING:
    import pandas as pd

PARTITION = "partition"  # a search table's column: provider/dataset/task/variant
LABEL = "label"  # the column a search table previews
META_WIDTH = 24  # a data column whose values are all this short reads as meta (lang, src), not as a label
HIDDEN = LAKE_COLUMNS + READER_COLUMNS  # left out of a search table unless chosen with --columns

FILTER_OPTIONS = {  # the search filters, shared by the commands that search
    "provider": typer.Option([], "--provider", "-p", help="Repeatable; globs allowed."),
    "dataset": typer.Option([], "--dataset", "-d", help="Repeatable; globs allowed, e.g. 'coco_*'."),
    "task": typer.Option([], "--task", "-t", help="Repeatable; globs allowed; raw data is task 'raw'."),
    "variant": typer.Option([], "--variant", "-v", help="Repeatable; globs allowed."),
    "meta": typer.Option([], "--meta", "-m", help="FIELD=value (repeatable)."),
    "text": typer.Option(None, "--text", help="Case-insensitive substring to find."),
    "column": typer.Option("label", "--column", help="Column searched by --text."),
    "json_path": typer.Option(None, "--json-path", help="Search the values this JSON path selects."),
}
LABELS_OPTION = typer.Option("json", "--labels", help="json: the label column stays JSON text (the default); "
                                                      "struct: a nested feature, its rows sharing one shape.")


def _search_view(rows: "pd.DataFrame", columns: Optional[str]) -> tuple["pd.DataFrame", list[str]]:
    """The columns a search shows (`partition` joins the partition's levels): those of `--columns
    a,b,c`, else the partition, hash, label and meta columns; and the columns left out."""
    if PARTITION not in rows.columns:  # a column of that name the data brought is shown as it is
        levels = [rows[c].astype(str) for c in PARTITION_COLUMNS]
        rows = rows.assign(**{PARTITION: functools.reduce(lambda a, b: a + "/" + b, levels)})
    if columns is not None:
        chosen = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in rows.columns]
        if unknown or not chosen:
            raise ValidationError(f"--columns names no column of the results: {', '.join(unknown) or '(none)'}; "
                                  f"choose among: {', '.join(map(str, rows.columns))}")
        return rows[chosen], []
    meta = [c for c in rows.columns if c not in (*HIDDEN, PARTITION, LABEL) and _reads_as_meta(rows[c])]
    shown = [c for c in (PARTITION, "hash", LABEL) if c in rows.columns] + meta
    return rows[shown], [str(c) for c in rows.columns if c not in (*shown, *PARTITION_COLUMNS)]


def _reads_as_meta(values: "pd.Series") -> bool:
    """Whether a data column holds short values (lang, src, ...) rather than label-like text."""
    return bool((values.dropna().astype(str).str.len() <= META_WIDTH).all())


def search_filters(provider, dataset, task, variant, meta, text, column, json_path, limit) -> dict:
    """The arguments of `client.search` that a command's filter options give."""
    text_search = {"column": column, "text": text, **({"json_path": json_path} if json_path else {})} if text else None
    return {"providers": provider or None, "datasets": dataset or None, "tasks": task or None,
            "variants": variant or None, "meta": parse_meta(meta) or None, "text_search": text_search,
            "limit": limit or None}  # --limit 0: every row


def register(app: typer.Typer) -> None:

    @app.command("search")
    def search_cmd(ctx: typer.Context,
                   provider: List[str] = FILTER_OPTIONS["provider"], dataset: List[str] = FILTER_OPTIONS["dataset"],
                   task: List[str] = FILTER_OPTIONS["task"], variant: List[str] = FILTER_OPTIONS["variant"],
                   meta: List[str] = FILTER_OPTIONS["meta"], text: Optional[str] = FILTER_OPTIONS["text"],
                   column: str = FILTER_OPTIONS["column"], json_path: Optional[str] = FILTER_OPTIONS["json_path"],
                   limit: int = typer.Option(100, "--limit", min=0, help="At most this many rows (0: all)."),
                   fmt: str = typer.Option("table", "--format", help="table, json or csv (these two: every value in full)."),
                   columns: Optional[str] = typer.Option(
                       None, "--columns", help="The columns to show, e.g. partition,hash,label,lang (default for a "
                                               "table: partition, short hash, label preview, meta).")) -> None:
        """Find catalog rows by hierarchy, meta and content."""
        client = client_for(ctx)
        filters = search_filters(provider, dataset, task, variant, meta, text, column, json_path, limit)
        rows = client.search(**filters)
        if columns is not None or fmt == "table":
            rows, left_out = _search_view(rows, columns)
            if left_out and fmt == "table" and len(rows):
                note(f"not shown: {', '.join(left_out)}; choose columns with --columns a,b,c, "
                     "or see every column with --format json")
        print_frame(rows, fmt, short_hash=columns is None)
        if filters["limit"] is not None and len(rows) == filters["limit"]:
            total = client.count(**{k: v for k, v in filters.items() if k != "limit"})
            if total > len(rows):
                note(f"showing {len(rows):,} of {total:,} matches; use --limit N (or --limit 0 for all)")

    @app.command("query")
    def query_cmd(ctx: typer.Context, sql: str = typer.Argument(..., help="One read-only SQL query."),
                  fmt: str = typer.Option("table", "--format", help="table, json or csv."),
                  dialect: str = typer.Option("duckdb", "--dialect",
                                              help="The SQL's dialect: duckdb, trino, athena, presto, spark or "
                                                   "hive (translated to DuckDB's).")) -> None:
        """Run a read-only SQL query against the database (tables: catalog, partitions, assets, uploads)."""
        print_frame(client_for(ctx).sql(sql, dialect=dialect), fmt)

    @app.command("download")
    def download_cmd(ctx: typer.Context,
                     output: Path = typer.Option(..., "--output", "-o",
                                                  help="The export's folder, outside the lake (parquet: a name ending in .parquet)."),
                     provider: List[str] = FILTER_OPTIONS["provider"], dataset: List[str] = FILTER_OPTIONS["dataset"],
                     task: List[str] = FILTER_OPTIONS["task"], variant: List[str] = FILTER_OPTIONS["variant"],
                     meta: List[str] = FILTER_OPTIONS["meta"], text: Optional[str] = FILTER_OPTIONS["text"],
                     column: str = FILTER_OPTIONS["column"], json_path: Optional[str] = FILTER_OPTIONS["json_path"],
                     limit: Optional[int] = typer.Option(None, "--limit", min=0,
                                                         help="At most this many rows (default, or 0: all)."),
                     fmt: str = typer.Option("auto", "--format",
                                             help="dataset (or datasets), parquet or auto (by the output name)."),
                     include_images: bool = typer.Option(True, "--include-images/--no-images",
                                                         help="Embed image bytes (the default), or copy the files "
                                                              "into the export's assets/."),
                     labels: str = LABELS_OPTION,
                     as_collection: Optional[str] = typer.Option(None, "--as-collection",
                                                                 help="Also freeze the rows as this collection."),
                     version: Optional[str] = typer.Option(None, "--version", help="With --as-collection.")) -> None:
        """Search, then write the rows as parquet or a Hugging Face dataset (and freeze them as a collection)."""
        client = client_for(ctx)
        filters = search_filters(provider, dataset, task, variant, meta, text, column, json_path, limit)
        rows = client.search(**filters)
        if not len(rows):
            raise ValidationError(f"the search matched no rows, so nothing was written to {output}; "
                                  "widen the filters (`datalake search` with the same ones shows what they match)")
        if as_collection:
            with warnings_printed():  # a mix of licenses
                frozen = client.import_collection(rows, as_collection, version,
                                                  query=json.dumps(filters, ensure_ascii=False))
            typer.echo(f"Froze {frozen['num_samples']} rows as collection {frozen['name']} {frozen['version']}")
        summary = client.download(rows, output, fmt, include_images, labels)
        typer.echo(f"Wrote {summary['rows']} rows to {summary['output']} ({summary['format']})"
                   + (f"; {summary['missing_assets']} row(s) have a missing asset" if summary["missing_assets"] else ""))

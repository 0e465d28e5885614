"""`datalake search`, `datalake query` and `datalake download`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from typing import TYPE_CHECKING

import typer

from ..errors import ValidationError
from .output import echo_json
from .context import client_for
from .upload_cmd import parse_meta

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "json", "csv")


def _print(frame: "pd.DataFrame", fmt: str) -> None:
    import pandas as pd

    if fmt not in FORMATS:
        raise ValidationError(f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "json":
        echo_json(frame.to_dict(orient="records"))
    elif fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    else:
        with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 60):
            typer.echo(frame.to_string(index=False) if len(frame) else "(no rows)")


def _filters(provider, dataset, task, variant, meta, text, column, json_path, limit) -> dict:
    text_search = {"column": column, "text": text, **({"json_path": json_path} if json_path else {})} if text else None
    return {"providers": provider or None, "datasets": dataset or None, "tasks": task or None,
            "variants": variant or None, "meta": parse_meta(meta) or None, "text_search": text_search,
            "limit": limit}


def register(app: typer.Typer) -> None:
    filter_options = {
        "provider": typer.Option([], "--provider", "-p", help="Repeatable; globs allowed."),
        "dataset": typer.Option([], "--dataset", "-d", help="Repeatable; globs allowed, e.g. 'coco_*'."),
        "task": typer.Option([], "--task", "-t", help="Repeatable; globs allowed; raw data is task 'raw'."),
        "variant": typer.Option([], "--variant", "-v", help="Repeatable; globs allowed."),
        "meta": typer.Option([], "--meta", "-m", help="FIELD=value (repeatable)."),
        "text": typer.Option(None, "--text", help="Case-insensitive substring to find."),
        "column": typer.Option("label", "--column", help="Column searched by --text."),
        "json_path": typer.Option(None, "--json-path", help="Search the values this JSON path selects."),
    }

    @app.command("search")
    def search_cmd(ctx: typer.Context,
                   provider: List[str] = filter_options["provider"], dataset: List[str] = filter_options["dataset"],
                   task: List[str] = filter_options["task"], variant: List[str] = filter_options["variant"],
                   meta: List[str] = filter_options["meta"], text: Optional[str] = filter_options["text"],
                   column: str = filter_options["column"], json_path: Optional[str] = filter_options["json_path"],
                   limit: Optional[int] = typer.Option(100, "--limit", min=0, help="At most this many rows."),
                   fmt: str = typer.Option("table", "--format", help="table, json or csv.")) -> None:
        """Find catalog rows by hierarchy, meta and content."""
        rows = client_for(ctx).search(**_filters(provider, dataset, task, variant, meta, text, column, json_path, limit))
        _print(rows, fmt)

    @app.command("query")
    def query_cmd(ctx: typer.Context, sql: str = typer.Argument(..., help="One read-only SQL query."),
                  fmt: str = typer.Option("table", "--format", help="table, json or csv.")) -> None:
        """Run a read-only SQL query against the database (tables: catalog, partitions, assets, uploads)."""
        _print(client_for(ctx).sql(sql), fmt)

    @app.command("download")
    def download_cmd(ctx: typer.Context,
                     output: Path = typer.Option(..., "--output", "-o",
                                                  help="A folder (dataset) or .parquet file, outside the lake."),
                     provider: List[str] = filter_options["provider"], dataset: List[str] = filter_options["dataset"],
                     task: List[str] = filter_options["task"], variant: List[str] = filter_options["variant"],
                     meta: List[str] = filter_options["meta"], text: Optional[str] = filter_options["text"],
                     column: str = filter_options["column"], json_path: Optional[str] = filter_options["json_path"],
                     limit: Optional[int] = typer.Option(None, "--limit", min=0,
                                                         help="At most this many rows (default: all)."),
                     fmt: str = typer.Option("auto", "--format",
                                             help="dataset (or datasets), parquet or auto (by the output name)."),
                     include_images: bool = typer.Option(True, "--include-images/--no-images",
                                                         help="Embed image bytes (dataset format; the default), or point at the files."),
                     as_collection: Optional[str] = typer.Option(None, "--as-collection",
                                                                 help="Also freeze the rows as this collection."),
                     version: Optional[str] = typer.Option(None, "--version", help="With --as-collection.")) -> None:
        """Search, then write the rows as parquet or a Hugging Face dataset (and freeze them as a collection)."""
        client = client_for(ctx)
        filters = _filters(provider, dataset, task, variant, meta, text, column, json_path, limit)
        rows = client.search(**filters)
        if as_collection:
            frozen = client.import_collection(rows, as_collection, version, query=json.dumps(filters, ensure_ascii=False))
            typer.echo(f"Froze {frozen['num_samples']} rows as collection {frozen['name']} {frozen['version']}")
        summary = client.download(rows, output, fmt, include_images)
        typer.echo(f"Wrote {summary['rows']} rows to {summary['output']} ({summary['format']})"
                   + (f"; {summary['missing_assets']} row(s) have a missing asset" if summary["missing_assets"] else ""))

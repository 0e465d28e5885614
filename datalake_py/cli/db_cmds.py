"""`datalake db` (update, check, info, validate) and `datalake docs` (dbt docs for the lake)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

import typer

from ..errors import DatalakeError
from .context import client_for
from .output import echo_json, warnings_printed

NAMED = 5  # symlinked assets named in the error; the report above lists up to 100

app = typer.Typer(no_args_is_help=True, help="Build and inspect the lake's DuckDB database.")
docs_app = typer.Typer(no_args_is_help=True, help="The dbt docs site: lineage from the lake's files to the marts.")


@app.command("update")
def update(ctx: typer.Context, full_refresh: bool = typer.Option(False, "--full-refresh",
                                                                  help="Rebuild everything, not only what is new."),
           target: str = typer.Option("duckdb", "--target",
                                      help="duckdb (the database searches read) or spark (the same marts on a "
                                           "local pyspark: datalake[spark] and a Java runtime)."),
           source: Optional[str] = typer.Option(None, "--from", help="s3://bucket/prefix: build the database from "
                                                "this published copy, into a new or empty --base-path folder that "
                                                "reads it from then on."),
           endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url",
                                                      help="With --from: an S3-compatible server's URL (default: AWS).")) -> None:
    """Run `dbt build`: the database catches up with the catalog (or the published copy the folder
    reads); failing tests are named."""
    with warnings_printed():
        if source is not None or endpoint_url is not None:
            info = _build_from_copy(ctx, source, endpoint_url, full_refresh, target)
        else:
            info = client_for(ctx).build_db(full_refresh, target)
        if "published" in info:
            typer.echo(f"Read the publish {info['published']['publish_id']} of {info['published']['url']}.")
        if target == "spark":
            typer.echo(f"Built on Spark in {info['seconds']} s: {info['nodes']} models and tests, tables in "
                       f"{info['warehouse']}")
            return
        tables = ", ".join(f"{t} {n}" for t, n in info["tables"].items())
        typer.echo(f"Database built in {info.get('seconds', '?')} s: {info['path']} ({tables})")


def _build_from_copy(ctx: typer.Context, source: str | None, endpoint_url: str | None, full_refresh: bool,
                     target: str) -> dict:
    """`db update --from`: the --base-path folder made (or kept) a reader of the copy, its database built
    (as DatalakeClient.from_published does)."""
    from ..catalog.db import warned
    from ..lake import Lake
    from ..publish.reader import build_from_copy

    if target != "duckdb":
        raise typer.BadParameter("a published copy builds a DuckDB database: leave out --target", param_hint="--from")
    return warned(build_from_copy(Lake(ctx.find_root().obj.base_path), source, endpoint_url, full_refresh))


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Update the database and test every row, not only the new ones (updates test what they add)."""
    with warnings_printed():
        info = client_for(ctx).check_db()
        typer.echo(f"Database checked in {info.get('seconds', '?')} s: every test passed on all "
                   f"{info['tables'].get('catalog', 0)} catalog rows")


@app.command("info")
def info(ctx: typer.Context) -> None:
    """Tables, row counts, and whether the database is behind the catalog."""
    echo_json(client_for(ctx).get_db_info())


@app.command("validate")
def validate(ctx: typer.Context,
             sample: float = typer.Option(100, "--sample", help="Percent of assets to check."),
             deep: bool = typer.Option(False, "--deep", help="Also re-hash every checked asset's bytes.")) -> None:
    """Check that stored assets exist and are no symlinks (and with --deep, that their bytes match their hash)."""
    client = client_for(ctx)
    report = client.validate_assets(sample_percent=sample, deep=deep)
    echo_json(report)
    if report["missing_count"] or report["mismatch_count"] or report["symlink_count"]:
        raise DatalakeError(f"{report['missing_count']} missing, {report['mismatch_count']} corrupt and "
                            f"{report['symlink_count']} symlinked asset(s)"
                            + _symlinks_named(report, client.lake.assets))


def _symlinks_named(report: dict, store: Path) -> str:
    """The symlinked store files, for the error: datalake never reads through a symlink in its store."""
    if not report["symlinks"]:
        return ""
    named = ", ".join(report["symlinks"][:NAMED])
    more = report["symlink_count"] - min(NAMED, len(report["symlinks"]))
    return (f"; never read, as they (or their folders in {store}) are symlinks: {named}"
            + (f" and {more} more (listed above)" if more else "") + "; replace each with the file itself")


@docs_app.command("generate")
def generate(ctx: typer.Context) -> None:
    """Write the docs site (catalog and lineage) next to the database."""
    index = client_for(ctx).generate_docs()
    typer.echo(f"Docs written to {index}; view them with `datalake docs serve`")


@docs_app.command("serve")
def serve(ctx: typer.Context, port: int = typer.Option(8080, "--port", help="Port to listen on."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to bind.")) -> None:
    """Serve the docs site (run `datalake docs generate` first)."""
    from ..catalog.db import run_dbt

    client = client_for(ctx)
    if not (client.lake.dbt_target / "index.html").exists():
        raise DatalakeError("no docs yet; run `datalake docs generate` first")
    try:
        run_dbt(client.lake, ["docs", "serve", "--port", str(port), "--host", host, "--no-browser"])
    except KeyboardInterrupt:
        pass
    except subprocess.SubprocessError as exc:
        raise DatalakeError(f"dbt docs serve failed: {exc}") from None

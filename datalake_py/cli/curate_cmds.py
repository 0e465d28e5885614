"""`datalake curate`: perceptual fingerprints of the lake's images, for finding near-duplicates."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..curation import DEFAULT_THRESHOLD, MAX_DISTANCE
from .context import client_for
from .output import echo_json, note, print_frame
from .query_cmds import FILTER_OPTIONS, search_filters

app = typer.Typer(no_args_is_help=True, help="Find near-duplicate images across the lake.")


@app.command("index")
def index(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON.")) -> None:
    """Fingerprint every image asset that has no fingerprint yet (safe to interrupt and run again)."""
    counts = client_for(ctx).index_fingerprints()
    if as_json:
        echo_json(counts)
    elif not counts["to_index"]:
        typer.echo("Every image asset has a fingerprint already.")
    else:
        typer.echo(f"Fingerprinted {counts['fingerprinted']:,} image(s); run `datalake db update` to bring "
                   "them into the database.")
        if counts["not_images"]:
            typer.echo(f"{counts['not_images']:,} image asset(s) could not be read as images: they have no "
                       "fingerprint (`datalake db validate` checks the store).", err=True)
        if counts["missing"]:
            typer.echo(f"{counts['missing']:,} image asset(s) are missing from the store (or are symlinks there): "
                       "run `datalake db validate`.", err=True)


@app.command("dupes")
def dupes(ctx: typer.Context,
          provider: List[str] = FILTER_OPTIONS["provider"], dataset: List[str] = FILTER_OPTIONS["dataset"],
          task: List[str] = FILTER_OPTIONS["task"], variant: List[str] = FILTER_OPTIONS["variant"],
          meta: List[str] = FILTER_OPTIONS["meta"],
          threshold: Optional[int] = typer.Option(None, "--threshold", help="Bits two fingerprints may differ in, "
                                                  f"0 to {MAX_DISTANCE} (default {DEFAULT_THRESHOLD})."),
          fmt: str = typer.Option("table", "--format", help="table, json or csv.")) -> None:
    """Groups of near-duplicate images among the rows the filters match (none: the whole lake)."""
    client = client_for(ctx)
    filters = search_filters(provider, dataset, task, variant, meta, None, None, None, 0)
    rows = client.search(**filters) if any(filters.values()) else None
    groups = client.find_near_duplicates(rows, threshold)
    print_frame(groups, fmt, short_hash=True)
    if fmt == "table" and not client.sql("select count(*) as n from asset_fingerprints")["n"][0]:
        note("the database holds no fingerprints: run `datalake curate index`, then `datalake db update`")
    elif fmt == "table":
        note(f"{groups['group'].nunique():,} group(s) of near-duplicates, {len(groups):,} image(s), "
             f"threshold {DEFAULT_THRESHOLD if threshold is None else threshold} bits")

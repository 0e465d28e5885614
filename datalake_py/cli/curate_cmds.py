"""`datalake curate`: perceptual fingerprints of the lake's images, for finding near-duplicates and
leakage between collections."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import typer

from ..curation import DEFAULT_THRESHOLD, MAX_DISTANCE
from .context import client_for
from .output import check_format, echo_json, first_rows, note, print_frame, terminal_width
from .query_cmds import FILTER_OPTIONS, search_filters

if TYPE_CHECKING:
    from ..curation.leakage import LeakageReport

THRESHOLD_OPTION = typer.Option(None, "--threshold", help="Bits within which two images are near-duplicates, "
                                f"0 to {MAX_DISTANCE} (default {DEFAULT_THRESHOLD}).")

app = typer.Typer(no_args_is_help=True, help="Find near-duplicate images across the lake, and leakage between "
                                             "collections.")


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
          threshold: Optional[int] = THRESHOLD_OPTION,
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




@app.command("leakage")
def leakage(ctx: typer.Context, a: str = typer.Argument(..., help="A collection (e.g. the training set)."),
            b: str = typer.Argument(..., help="Another collection (e.g. the test set)."),
            version_a: Optional[str] = typer.Option(None, "--version-a", help="A's version (default: latest)."),
            version_b: Optional[str] = typer.Option(None, "--version-b", help="B's version (default: latest)."),
            threshold: Optional[int] = THRESHOLD_OPTION,
            fmt: str = typer.Option("table", "--format", help="table or json (every item in full).")) -> None:
    """Check two collections for shared assets, near-duplicate images and shared rows; exit 1 if any."""
    check_format(fmt)
    report = client_for(ctx).check_leakage(a, b, version_a, version_b, threshold)
    if fmt == "json":
        echo_json(report.to_dict())
    else:
        _print_report(report)
    if report.same_uploads:
        note(f"Rows of {len(report.same_uploads):,} upload(s) are on both sides (usual for a split of one upload; "
             "not counted as leakage).")
    if report.unchecked_images:
        note(f"{report.unchecked_images:,} image asset(s) are missing from the store and were not compared: "
             "run `datalake db validate`.")
    if report.leaks:
        note(report.summary())
        raise typer.Exit(1)


def _print_report(report: "LeakageReport") -> None:
    """Each kind of finding as a table fitted to the terminal (what leaks is said on stderr), or
    that nothing leaks."""
    import pandas as pd

    sections = [("Shared assets", report.exact[["path", "rows_a", "rows_b"]]),
                ("Near-duplicate pairs", report.near[["distance", "path_a", "path_b"]]),
                ("Shared rows", pd.DataFrame({"row_id": report.same_rows})),
                ("Uploads on both sides", pd.DataFrame({"upload_id": report.same_uploads}))]
    width, blocks = terminal_width(), [] if report.leaks else [report.summary()]
    for title, frame in sections:
        if not len(frame):
            continue
        blocks.append(first_rows(title, frame.columns, frame.itertuples(index=False), len(frame), width))
    if blocks:
        typer.echo("\n\n".join(blocks))

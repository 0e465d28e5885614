"""`datalake curate`: perceptual fingerprints of the lake's images, for finding near-duplicates."""

from __future__ import annotations

import typer

from .context import client_for
from .output import echo_json

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

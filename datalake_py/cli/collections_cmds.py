"""`datalake collections`: freeze, list, export, verify and delete training sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DatalakeError
from .output import echo_json, table
from .context import client_for
from .curate_cmds import THRESHOLD_OPTION
from .query_cmds import LABELS_OPTION

app = typer.Typer(no_args_is_help=True, help="Immutable, versioned training sets.")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every collection with its versions and latest."""
    found = client_for(ctx).collection_manager.list_collections()
    for entry in found:
        entry["versions"] = ",".join(entry["versions"])
    typer.echo(table(found, ["name", "latest", "versions", "num_samples", "created_at", "description"])
               if found else "No collections.")


@app.command("info")
def info(ctx: typer.Context, name: str = typer.Argument(..., help="The collection."),
         version: Optional[str] = typer.Argument(None, help="The version (default: latest).")) -> None:
    """A version's metadata (default: latest)."""
    echo_json(client_for(ctx).collection_manager.info(name, version))


@app.command("import")
def import_(ctx: typer.Context,
            source: Path = typer.Argument(..., help="A parquet file or folder, or a save_to_disk folder."),
            name: str = typer.Option(..., "--name", help="The collection to add a version to (made if new)."),
            version: Optional[str] = typer.Option(None, "--version", help="Default: the next vN."),
            description: str = typer.Option("", "--description", help="What the version holds."),
            near_of: Optional[str] = typer.Option(
                None, "--exclude-near-duplicates-of", metavar="NAME[:VERSION]",
                help="Leave out rows whose image is the same as or a near-duplicate of a member's of this collection "
                     "(default: its latest version)."),
            assets_of: Optional[str] = typer.Option(
                None, "--exclude-assets-of", metavar="NAME[:VERSION]",
                help="Leave out rows whose asset a member of this collection has (default: its latest version)."),
            threshold: Optional[int] = THRESHOLD_OPTION) -> None:
    """Freeze external data as a new collection version (its assets go into the lake's store)."""
    meta = client_for(ctx).import_collection(source, name, version, description, exclude_near_duplicates_of=near_of,
                                             exclude_assets_of=assets_of, threshold=threshold)
    typer.echo(f"Collection {meta['name']} {meta['version']}: {meta['num_samples']} samples, "
               f"fingerprint {meta['fingerprint']}")
    for exclusion in meta.get("exclusions", []):
        what = "assets" if exclusion["kind"] == "assets" else f"near-duplicates (threshold {exclusion['threshold']})"
        typer.echo(f"Left out {exclusion['rows_removed']} row(s): {what} of {exclusion['of']} {exclusion['version']}")


@app.command("export")
def export(ctx: typer.Context, name: str = typer.Argument(..., help="The collection."),
           version: Optional[str] = typer.Argument(None, help="The version (default: latest)."),
           output: Path = typer.Option(..., "--output", "-o", help="The export's folder, outside the lake "
                                                                   "(parquet: a name ending in .parquet)."),
           fmt: str = typer.Option("auto", "--format",
                                   help="datasets (or dataset), parquet or auto (by the output name)."),
           include_images: bool = typer.Option(True, "--include-images/--no-images",
                                               help="Embed image bytes (the default), or copy the files into the "
                                                    "export's assets/."),
           labels: str = LABELS_OPTION) -> None:
    """Write a version (default: latest) as a save_to_disk dataset or parquet."""
    summary = client_for(ctx).export_collection(name, version, output, fmt, include_images, labels)
    typer.echo(f"Wrote {summary['rows']} rows to {summary['output']} ({summary['format']})")


@app.command("verify")
def verify(ctx: typer.Context, name: str = typer.Argument(..., help="The collection."),
           version: Optional[str] = typer.Argument(None, help="The version (default: latest).")) -> None:
    """Recompute the fingerprint and re-hash every member's asset; exit 1 on any difference."""
    report = client_for(ctx).verify_collection(name, version)
    if not report["ok"]:
        raise DatalakeError(f"collection {name} {report['version']} does not verify: " + "; ".join(report["problems"]))
    typer.echo(f"Collection {name} {report['version']} verifies: fingerprint {report['fingerprint']}, "
               f"{report['assets']['checked']} assets checked")


@app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="The collection."),
           version: Optional[str] = typer.Argument(None, help="The version (default: every version)."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting a whole collection.")) -> None:
    """Delete a version, or the whole collection (asks first unless --yes)."""
    if version is None and not yes:
        if not typer.confirm(f"Delete every version of collection {name!r}?", default=False):
            raise DatalakeError("nothing deleted")
    deleted = client_for(ctx).delete_collection(name, version)
    typer.echo(f"Deleted {name} {', '.join(deleted)}")

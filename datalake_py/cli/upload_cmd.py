"""`datalake upload`: stage a parquet file/folder or save_to_disk folder; guided when interactive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from ..errors import ValidationError
from ..lake import RAW_TASK, Lake
from ..licenses import LICENSE_HELP
from ..schema import Schema, load_schema
from .context import settle_imports

if TYPE_CHECKING:
    from ..upload.ingest import UploadRequest


MAX_FOLDERS = 5  # folders named after an upload


def parse_meta(items: List[str]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--meta {item!r} must look like FIELD=value")
        meta[key.strip()] = value.strip()
    return meta


def _choose(label: str, choices: list[str], default: str | None = None) -> str:
    typer.echo(f"{label}: " + ", ".join(choices))
    while True:
        value = typer.prompt(label, default=default)
        if value in choices:
            return value
        typer.echo(f"  {value!r} is not one of: {', '.join(choices)}")


def _guide(request: UploadRequest, schema: Schema, task_given: bool) -> None:
    """Ask for what is missing, offering the registered choices."""
    if not request.provider:
        request.provider = _choose("provider", sorted(schema.providers))
    if not request.dataset:
        request.dataset = typer.prompt("dataset")
    if not task_given:
        request.task = _choose("task", [RAW_TASK, *sorted(schema.tasks)], default=RAW_TASK)
    if request.task == RAW_TASK:
        return
    rule = schema.require_task(request.task)
    if not request.variant:
        request.variant = typer.prompt("variant")
    for name in rule.required_fields:
        if name not in request.meta:
            allowed = rule.allowed_values.get(name)
            request.meta[name] = _choose(name, allowed) if allowed else typer.prompt(name)


def register(app: typer.Typer) -> None:
    @app.command("upload")
    def upload(
        ctx: typer.Context,
        source: Path = typer.Argument(..., help="A parquet file, a folder of parquet files, or a save_to_disk folder."),
        provider: Optional[str] = typer.Option(None, "--provider", "-p",
                                               help="A registered provider (`datalake config provider list`)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="The dataset the rows belong to."),
        task: Optional[str] = typer.Option(None, "--task", "-t", help="Omit for raw data."),
        variant: Optional[str] = typer.Option(None, "--variant", "-v",
                                              help="Required with --task; raw data: detected unless given."),
        meta: List[str] = typer.Option([], "--meta", "-m", help="FIELD=value (repeatable), for --task."),
        description: str = typer.Option("", "--description", help="A note kept with the upload in the ledger."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace the partition's rows when processed."),
        license: Optional[str] = typer.Option(None, "--license", help="The dataset's license: " + LICENSE_HELP),
        license_name: Optional[str] = typer.Option(None, "--license-name", help="With --license other."),
        license_url: Optional[str] = typer.Option(None, "--license-url", help="With --license other."),
    ) -> None:
        """Validate and stage data for processing. Asks for what is missing when run in a terminal."""
        from ..upload.ingest import UploadRequest, stage_upload  # brings pyarrow: only when uploading

        settle_imports()
        settings = ctx.find_root().obj
        lake = Lake(settings.base_path).require()
        request = UploadRequest(provider or "", dataset or "", task or RAW_TASK, variant, parse_meta(meta),
                                settings.user_id, description, overwrite, license, license_name, license_url)
        if sys.stdin.isatty():
            _guide(request, load_schema(lake), task_given=task is not None)
        for flag, value in (("--provider", request.provider), ("--dataset", request.dataset)):
            if not value:
                raise ValidationError(f"missing {flag}; give it (or run in a terminal for a guided upload)")
        manifest = stage_upload(lake, source, request, settings.num_proc)
        typer.echo(
            f"Staged upload {manifest['upload_id']}: {manifest['num_rows']} rows, {manifest['num_assets']} assets "
            f"-> {manifest['provider']}/{manifest['dataset']}/{manifest['task']}/{manifest['variant']}. "
            "Run `datalake process start` to land it."
        )
        folders = manifest["read_from"]
        if folders:
            more = f" and {len(folders) - MAX_FOLDERS} more" if len(folders) > MAX_FOLDERS else ""
            typer.echo(f"Read files from: {', '.join(folders[:MAX_FOLDERS])}{more}")
        if manifest["replaced_lake_columns"]:
            typer.echo("Rows came out of the lake; their lake columns were replaced: "
                       + ", ".join(manifest["replaced_lake_columns"]))

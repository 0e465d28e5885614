"""`datalake process`: land pending uploads, list staged uploads and jobs, retry failures."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import DatalakeError
from .context import client_for
from .output import echo_json, table

app = typer.Typer(no_args_is_help=True, help="Process pending uploads and follow processing jobs.")

SUMMARY_COLUMNS = ["upload_id", "partition", "status", "rows_in", "rows_written", "duplicate_rows",
                   "new_assets", "reused_assets", "new_bytes"]


@app.command("start")
def start(
    ctx: typer.Context,
    server: Optional[str] = typer.Option(None, "--server", help="Run on this datalake-server (env DATALAKE_SERVER_URL)."),
    wait: bool = typer.Option(False, "--wait", help="With a server: wait for the job and print its result."),
    as_json: bool = typer.Option(False, "--json", help="Print the job result as JSON."),
) -> None:
    """Process every pending upload and print what landed (with a server: start its job)."""
    client = client_for(ctx, server)
    job_id = client.trigger_processing()
    if client.server and not wait:
        typer.echo(f"Job {job_id} started on {client.server_url}; follow it with `datalake process status {job_id}`")
        return
    result = client.wait_for_job_completion(job_id)
    if as_json:
        echo_json({"job_id": job_id, **result})
    else:
        typer.echo(f"Job {job_id}: {result['processed']} processed, {result['failed']} failed")
        if result["uploads"]:
            typer.echo(table(result["uploads"], SUMMARY_COLUMNS))
        for s in result["uploads"]:
            if s["status"] == "failed":
                typer.echo(f"failed {s['upload_id']}: {s['error']}", err=True)
    if result["failed"]:
        raise DatalakeError(f"{result['failed']} upload(s) failed; fix the cause, then "
                            "`datalake process retry UPLOAD_ID` (see `datalake process list`)")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print them as JSON.")) -> None:
    """Uploads waiting in staging (pending, processing, failed with the reason) and recent jobs."""
    client = client_for(ctx)
    uploads, jobs = client.list_uploads(), client.list_server_jobs()[-10:]
    if as_json:
        echo_json({"uploads": uploads, "jobs": jobs})
        return
    typer.echo(table(uploads, ["upload_id", "stage", "provider", "dataset", "task", "variant", "num_rows",
                               "uploaded_by", "error"]) if uploads else "No uploads in staging.")
    if jobs:
        typer.echo("\nRecent jobs:")
        typer.echo(table(jobs, ["job_id", "kind", "status", "started_at", "completed_at", "error"]))


@app.command("retry")
def retry(ctx: typer.Context,
          upload_id: str = typer.Argument(..., help="A failed upload (`datalake process list` shows them).")) -> None:
    """Send a failed upload back to pending."""
    client_for(ctx).retry_upload(upload_id)
    typer.echo(f"Upload {upload_id} is pending again; run `datalake process start`.")


@app.command("status")
def status(ctx: typer.Context,
           job_id: str = typer.Argument(..., help="The job (as `process start` printed it).")) -> None:
    """A job's record as JSON."""
    echo_json(client_for(ctx).get_job_status(job_id))

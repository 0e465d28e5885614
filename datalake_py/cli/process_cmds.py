"""`datalake process`: land pending uploads, list staged uploads and jobs, retry failures."""

from __future__ import annotations

import typer

from ..client import DatalakeClient
from ..errors import DatalakeError
from .output import echo_json, table

app = typer.Typer(no_args_is_help=True, help="Process pending uploads and follow processing jobs.")

SUMMARY_COLUMNS = ["upload_id", "partition", "status", "rows_in", "rows_written", "duplicate_rows",
                   "new_assets", "reused_assets", "new_bytes"]


def _client(ctx: typer.Context) -> DatalakeClient:
    s = ctx.find_root().obj
    return DatalakeClient(user_id=s.user_id, base_path=s.base_path, server_url=s.server_url, num_proc=s.num_proc)


@app.command("start")
def start(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print the job result as JSON.")) -> None:
    """Process every pending upload now and print what landed."""
    client = _client(ctx)
    job_id = client.trigger_processing()
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
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Uploads waiting in staging (pending, processing, failed with the reason) and recent jobs."""
    client = _client(ctx)
    uploads, jobs = client.list_uploads(), client.list_jobs()[-10:]
    if as_json:
        echo_json({"uploads": uploads, "jobs": jobs})
        return
    typer.echo(table(uploads, ["upload_id", "stage", "provider", "dataset", "task", "variant", "num_rows",
                               "uploaded_by", "error"]) if uploads else "No uploads in staging.")
    if jobs:
        typer.echo("\nRecent jobs:")
        typer.echo(table(jobs, ["job_id", "kind", "status", "started_at", "completed_at", "error"]))


@app.command("retry")
def retry(ctx: typer.Context, upload_id: str) -> None:
    """Send a failed upload back to pending."""
    _client(ctx).retry_upload(upload_id)
    typer.echo(f"Upload {upload_id} is pending again; run `datalake process start`.")


@app.command("status")
def status(ctx: typer.Context, job_id: str) -> None:
    """A job's record as JSON."""
    echo_json(_client(ctx).get_job_status(job_id))

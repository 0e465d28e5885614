"""`datalake publish s3://bucket/prefix`: the lake copied to S3-compatible storage for other engines."""

from __future__ import annotations

from typing import Optional

import typer

from .context import client_for
from .output import check_format, echo_json



def register(app: typer.Typer) -> None:
    app.command("publish")(publish)


def publish(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="Where to: s3://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url",
                                               help="An S3-compatible server's URL (default: AWS)."),
    glue_database: Optional[str] = typer.Option(None, "--glue-database",
                                                help="Register the catalog as the table `catalog` of this Glue database."),
    print_ddl: Optional[str] = typer.Option(None, "--print-ddl", help="athena or trino: print the statement that "
                                                                      "makes the published catalog a table; send nothing."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Copy the catalog, ledger, collections and assets under the prefix (only what changed; run it again
    after an interruption), then a manifest naming them. Credentials come from the AWS settings (env vars,
    profile files)."""
    check_format(fmt)
    client = client_for(ctx)
    if print_ddl is not None:
        typer.echo(client.publish_ddl(target, print_ddl, glue_database) + ";")
        return
    report = client.publish(target, endpoint_url=endpoint_url, glue_database=glue_database)
    if fmt == "json":
        echo_json(report.to_dict())
    else:
        typer.echo(report.summary())

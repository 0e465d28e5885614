"""`datalake server status`: what a datalake-server is doing."""

from __future__ import annotations

from typing import Optional

import typer

from .output import echo_json
from .context import client_for

app = typer.Typer(no_args_is_help=True, help="Ask a datalake-server how it is doing.")


@app.command("status")
def status(ctx: typer.Context,
           server: Optional[str] = typer.Option(None, "--server", help="Server URL (env DATALAKE_SERVER_URL).")) -> None:
    """The server's state, uploads per stage and running jobs (without a server: this lake's)."""
    echo_json(client_for(ctx, server).get_server_status())

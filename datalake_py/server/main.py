"""The `datalake-server` command."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
from pathlib import Path
from typing import Optional

import typer
from aiohttp import web

from .. import config
from ..errors import DatalakeError
from .app import ServerOptions, create_app

app = typer.Typer(add_completion=False)


def read_token(token_file: Path | None) -> str | None:
    """The token from --token-file, else DATALAKE_TOKEN; None when neither is set."""
    if token_file:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise DatalakeError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if not token:
            raise DatalakeError(f"the token file {token_file} is empty")
        return token
    return os.environ.get("DATALAKE_TOKEN") or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    base_path: Optional[Path] = typer.Option(None, "--base-path", help="The lake (env DATALAKE_HOME)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any non-loopback one needs a token."),
    port: int = typer.Option(8091, "--port", help="Port to listen on."),
    num_proc: Optional[int] = typer.Option(None, "--num-proc", help="Processing workers (env DATALAKE_NUM_PROC)."),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the token (or env DATALAKE_TOKEN)."),
    watch: bool = typer.Option(False, "--watch", help="Process new uploads automatically, then fingerprint their images."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Serve processing and build jobs for a lake over HTTP (JSON), and the lake's pages at /."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config.resolve(base_path=str(base_path) if base_path else None, num_proc=num_proc)
        token = read_token(token_file)
        if not is_loopback(host) and not token:
            raise DatalakeError(f"binding {host} needs a token: give --token-file FILE or set DATALAKE_TOKEN "
                                "(or bind 127.0.0.1)")
        application = create_app(ServerOptions(settings.base_path, settings.num_proc, token, watch,
                                                  user_id=settings.user_id))
    except DatalakeError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    gc.freeze()  # what is loaded now lives as long as the server: the collector need not walk it during jobs
    typer.echo(f"datalake-server on http://{host}:{port} for {Path(settings.base_path).resolve()}"
               f"{' (watching uploads)' if watch else ''}{' (token required)' if token else ''}")
    web.run_app(application, host=host, port=port, print=None, access_log=None)


def main() -> None:
    app(prog_name="datalake-server")

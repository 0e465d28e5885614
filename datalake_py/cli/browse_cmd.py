"""`datalake browse`: the lake's pages in a browser, served from this process."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("browse")
    def browse(ctx: typer.Context,
               host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on; off loopback needs a token."),
               port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: any free one)."),
               token_file: Optional[Path] = typer.Option(None, "--token-file",
                                                         help="File holding the token (or env DATALAKE_TOKEN)."),
               open_browser: bool = typer.Option(False, "--open", help="Also open the pages in the default browser.")) -> None:
        """Look at the lake in a browser: overview, gallery, samples with labels drawn, collections (read-only)."""
        from ..server.embedded import Browsing
        from ..server.main import read_token

        pages = Browsing(ctx.obj.base_path, host, port, read_token(token_file))
        typer.echo(f"Browsing the lake at {Path(ctx.obj.base_path).resolve()} on {pages.url} (Ctrl-C to stop)")
        if open_browser:
            webbrowser.open(pages.url)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            pages.stop()

"""`datalake init`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..schema import init_lake


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(ctx: typer.Context,
             path: Optional[Path] = typer.Argument(None, help="Lake folder (default: --base-path).")) -> None:
        """Create a lake: its folders and default rules in config/schema.yaml."""
        lake = init_lake(path or ctx.obj.base_path)
        typer.echo(f"Lake ready at {lake.root} (rules: {lake.schema_path})")

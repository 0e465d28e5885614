"""`datalake init` and `datalake migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..lake import Lake
from ..schema import init_lake


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(ctx: typer.Context,
             path: Optional[Path] = typer.Argument(None, help="Lake folder (default: --base-path).")) -> None:
        """Create a lake: its folders and default rules in config/schema.yaml."""
        lake = init_lake(path or ctx.obj.base_path)
        typer.echo(f"Lake ready at {lake.root} (rules: {lake.schema_path})")

    @app.command("migrate")
    def migrate(ctx: typer.Context,
                path: Optional[Path] = typer.Argument(None, help="Lake folder (default: --base-path).")) -> None:
        """Bring a lake made by an earlier datalake over to the current layout (safe to interrupt and run again)."""
        from ..migrate import migrate_lake  # here: it loads pyarrow, which `init` does without

        root = Lake(path or ctx.obj.base_path).root
        done = migrate_lake(root)
        if done["migrated"]:
            typer.echo(f"Lake at {root} migrated: its {done['assets']} assets now live at "
                       f"assets/ab/<hash>.<ext>; {done['files']} files of rows rewritten")
        else:
            typer.echo(f"Lake at {root} is already at the current layout")

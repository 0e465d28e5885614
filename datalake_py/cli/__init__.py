"""The `datalake` command line: thin commands over the core; errors print `Error: …` and exit 1."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from .. import __version__, config
from ..errors import DatalakeError


class _Group(TyperGroup):
    """Turns any DatalakeError raised by a command into `Error: <message>` on stderr and exit code 1."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except DatalakeError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False,
                  help="datalake: upload, process and query multimodal ML datasets.")


def _print_version(asked: bool) -> None:
    """`--version`: print the installed version and stop, whatever else the command line says."""
    if asked:
        typer.echo(f"datalake {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
    base_path: Optional[Path] = typer.Option(None, "--base-path", help="The lake folder (env DATALAKE_HOME; default ./lake)."),
    user: Optional[str] = typer.Option(None, "--user", help="Who you are in lineage columns (env DATALAKE_USER)."),
    num_proc: Optional[int] = typer.Option(None, "--num-proc", help="Worker count (env DATALAKE_NUM_PROC)."),
    server: Optional[str] = typer.Option(None, "--server", help="datalake-server URL (env DATALAKE_SERVER_URL)."),
    token: Optional[str] = typer.Option(None, "--token", help="The server's token (env DATALAKE_TOKEN)."),
) -> None:
    ctx.obj = config.resolve(base_path=str(base_path) if base_path else None, user_id=user, num_proc=num_proc,
                             server_url=server, token=token)


from . import browse_cmd, collections_cmds, config_cmds, curate_cmds, db_cmds, lake_cmds, lifecycle_cmds, process_cmds, publish_cmd, query_cmds, server_cmds, stats_cmd, upload_cmd  # noqa: E402

app.add_typer(config_cmds.app, name="config")
app.add_typer(process_cmds.app, name="process")
app.add_typer(server_cmds.app, name="server")
app.add_typer(db_cmds.app, name="db")
app.add_typer(db_cmds.docs_app, name="docs")
app.add_typer(collections_cmds.app, name="collections")
app.add_typer(curate_cmds.app, name="curate")
lake_cmds.register(app)
upload_cmd.register(app)
query_cmds.register(app)
stats_cmd.register(app)
browse_cmd.register(app)
lifecycle_cmds.register(app)
publish_cmd.register(app)


def main() -> None:
    app(prog_name="datalake")

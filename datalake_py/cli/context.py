"""What every command builds from the global options (`--base-path`, `--user`, ...)."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ..client import DatalakeClient


def settle_imports() -> None:
    """Exempt what the command has loaded so far (pandas, DuckDB, pyarrow: some 80,000 objects that
    live as long as the process) from garbage collection, which otherwise walks them all again and
    again during an upload: about 6% of its time. A command line process may; a library may not."""
    gc.freeze()


def client_for(ctx: typer.Context, server: str | None = None) -> "DatalakeClient":
    """The client the global options (and a command's own --server) describe (imported here: the
    client brings pandas and DuckDB, which commands such as `--help` do without)."""
    from ..client import DatalakeClient

    settle_imports()
    s = ctx.find_root().obj
    return DatalakeClient(user_id=s.user_id, base_path=s.base_path, server_url=server or s.server_url,
                          num_proc=s.num_proc, token=s.token)

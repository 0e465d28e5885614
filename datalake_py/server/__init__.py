"""datalake-server: shared processing jobs over HTTP for a team's lake."""

from .app import ServerOptions, create_app

__all__ = ["ServerOptions", "create_app"]

"""The dbt-duckdb plugin of the `published` target (profiles/profiles.yml): it registers the files
of one publish (copy_files.CopyFiles) with each DuckDB connection dbt opens, so the project reads
the copy's `s3://` URLs as it reads a lake folder."""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from .copy_files import CopyFiles, open_copy
from .target import check_endpoint, open_store, parse_target


class Plugin(BasePlugin):
    """Config: `url` (s3://bucket/prefix), `endpoint_url` ('' for AWS's own), `publish_id`."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        target = parse_target(plugin_config["url"])
        store = open_store(check_endpoint(plugin_config.get("endpoint_url") or None))
        self.files: CopyFiles = open_copy(store, target, plugin_config["publish_id"])

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.register_filesystem(self.files)

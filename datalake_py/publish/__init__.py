"""Publishing the lake to S3-compatible object storage, where Athena, Glue, Trino and Spark read it
(docs/design.md, "The published copy"; docs/internals.md, "Publishing").

`publish` copies the catalog, the ledger, the collections, the assets, the rules and the layout
record under an `s3://bucket/prefix` in the lake's own layout, and writes a manifest naming them
last; `table_ddl` gives the statement that makes the published catalog a table.
"""

from .publisher import PublishReport, publish, publish_ddl
from .table import DIALECTS, catalog_columns, catalog_location, table_ddl
from .target import PublishError, parse_target

__all__ = ["DIALECTS", "PublishError", "PublishReport", "catalog_columns", "catalog_location", "parse_target",
           "publish", "publish_ddl", "table_ddl"]

"""One row per (task, required meta field, allowed value) from the lake's config/schema.yaml.

`allowed_value` is null for a field that takes any value. The rules are read at build time
(and checked) by datalake itself, so tasks added with `datalake config task create` are
enforced without editing any model.
"""

import os

import pyarrow as pa

from datalake.lake import Lake
from datalake.schema import load_schema


def model(dbt, session):
    dbt.config(materialized="table")
    schema = load_schema(Lake(os.environ.get("DATALAKE_HOME", "lake")))
    rows = [
        {"task": rule.name, "field": field, "allowed_value": value}
        for rule in schema.tasks.values()
        for field in rule.required_fields
        for value in rule.allowed_values.get(field) or [None]
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema([("task", pa.string()), ("field", pa.string()),
                                                        ("allowed_value", pa.string())]))

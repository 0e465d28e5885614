"""One row per (task, required meta field, allowed value) from the lake's config/schema.yaml.

`allowed_value` is null for a field that takes any value. The rules file comes through the `lake`
source (so the lake folder is set in one place) and is parsed and checked by datalake itself, so
tasks added with `datalake config task create` are enforced without editing any model.
"""

from pathlib import Path

from datalake.schema import parse_schema


def model(dbt, session):
    dbt.config(materialized="table")
    [(filename, content)] = dbt.source("lake", "rules").select("filename, content").fetchall()
    schema = parse_schema(content, Path(filename))
    rows = [
        (rule.name, field, value)
        for rule in schema.tasks.values()
        for field in rule.required_fields
        for value in rule.allowed_values.get(field) or [None]
    ]
    session.execute("create or replace temp table task_rules_read (task varchar, field varchar, allowed_value varchar)")
    if rows:
        session.executemany("insert into task_rules_read values (?, ?, ?)", rows)
    return session.table("task_rules_read")

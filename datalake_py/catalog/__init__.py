"""The catalog database: its dbt build, queries, search and the check of the store against it."""

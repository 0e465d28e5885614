"""SQL text helpers shared by the parts that write SQL: values always go as parameters."""

from __future__ import annotations


def quote(name: str) -> str:
    """An identifier (column or table name) quoted for SQL; values always go as parameters."""
    return '"' + name.replace('"', '""') + '"'

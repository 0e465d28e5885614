"""datalake: a data lake manager for multimodal machine-learning datasets.

The public names load on first use, so `import datalake.lake` (as the dbt project's rules model
does) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.4.0"

_PUBLIC = {
    "DatalakeClient": "client", "DatalakeProcessor": "processing.processor", "DuckDBClient": "catalog.db",
    "DbBuildError": "errors", "DatalakeError": "errors", "ValidationError": "errors", "ConfigError": "errors",
    "NotFoundError": "errors", "ConflictError": "errors", "StorageError": "errors", "LayoutError": "errors",
    "migrate_lake": "migrate", "PublishError": "publish", "PublishReport": "publish",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'datalake' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)

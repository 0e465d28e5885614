"""datalake: a data lake manager for multimodal machine-learning datasets."""

from .client import DatalakeClient
from .db import DbBuildError, DuckDBClient
from .errors import ConfigError, ConflictError, DatalakeError, NotFoundError, ValidationError
from .processor import DatalakeProcessor

__version__ = "0.1.0"
__all__ = ["DatalakeClient", "DatalakeProcessor", "DuckDBClient", "DbBuildError", "DatalakeError", "ValidationError", "ConfigError",
           "NotFoundError", "ConflictError", "__version__"]

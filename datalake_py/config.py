"""Defaults for the client, the CLI and the server: config.yaml, then env, then explicit values."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

KEYS = ("base_path", "server_url", "user_id", "num_proc")
ENV = {"base_path": "DATALAKE_HOME", "user_id": "DATALAKE_USER", "server_url": "DATALAKE_SERVER_URL",
       "num_proc": "DATALAKE_NUM_PROC", "token": "DATALAKE_TOKEN"}  # a token never comes from config.yaml


@dataclass
class Settings:
    base_path: str = "./lake"
    server_url: str | None = None
    user_id: str = ""
    num_proc: int = 0
    token: str | None = None

    def __post_init__(self) -> None:
        self.user_id = self.user_id or _default_user()
        self.num_proc = self.num_proc or (os.cpu_count() or 1)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def config_files() -> list[Path]:
    """Where config.yaml is looked up, first match wins: the current folder, then ~/.config/datalake/."""
    return [Path.cwd() / "config.yaml", Path.home() / ".config" / "datalake" / "config.yaml"]


def read_config_file() -> dict[str, Any]:
    for path in config_files():
        if path.is_file():
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path} is not valid YAML: {exc}") from None
            if not isinstance(doc, dict):
                raise ConfigError(f"{path} must be a mapping of {', '.join(KEYS)}")
            unknown = set(doc) - set(KEYS)
            if unknown:
                raise ConfigError(f"{path} has unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(KEYS)}")
            return doc
    return {}


def resolve(**given: Any) -> Settings:
    """Settings from explicit values (not None) over env vars over config.yaml over defaults."""
    values: dict[str, Any] = {k: v for k, v in read_config_file().items() if v is not None}
    for key, var in ENV.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    values.update({k: v for k, v in given.items() if v is not None})
    if "num_proc" in values:
        try:
            values["num_proc"] = int(values["num_proc"])
        except (TypeError, ValueError):
            raise ConfigError(f"num_proc must be a whole number, got {values['num_proc']!r}") from None
        if values["num_proc"] < 1:
            raise ConfigError(f"num_proc must be at least 1, got {values['num_proc']}")
    values["base_path"] = str(values.get("base_path", Settings.base_path))
    return Settings(**values)

"""The installed package: its version, and a database the duckdb releases users have can open."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from conftest import image_bytes, process
from datalake.cli import app as cli

OLDEST_DUCKDB = "1.4.0"  # the oldest DuckDB the README promises reads the lake's database


def test_version_option_prints_the_installed_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"datalake {importlib.metadata.version('datalake')}\n"


def oldest_duckdb() -> Path:
    """A folder holding duckdb OLDEST_DUCKDB, installed once into this environment and kept."""
    folder = Path(sys.prefix) / f"duckdb-{OLDEST_DUCKDB}"
    if not folder.is_dir():
        partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--target", str(partial), f"duckdb=={OLDEST_DUCKDB}"], check=True)
        try:
            partial.rename(folder)
        except OSError:  # another run installed it first
            shutil.rmtree(partial)
    return folder


def read_with_oldest_duckdb(db_path: Path) -> dict:
    """The DuckDB version and each mart's row count, as duckdb OLDEST_DUCKDB reads `db_path`."""
    script = ("import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
              "counts = {t: con.sql(f'select count(*) from {t}').fetchone()[0] "
              "          for t in ('catalog', 'assets', 'partitions', 'uploads')}; "
              "print(json.dumps({'version': duckdb.__version__, **counts}))")
    env = {**os.environ, "PYTHONPATH": str(oldest_duckdb())}
    out = subprocess.run([sys.executable, "-c", script, str(db_path)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_the_database_opens_in_the_oldest_duckdb_promised_after_each_build(client):
    client.upload_raw(pd.DataFrame({"image": [image_bytes(i) for i in range(3)], "n": range(3)}),
                      provider="huggingface", dataset="coco_2017")
    process(client)
    client.build_db()
    assert read_with_oldest_duckdb(client.db_path) == {
        "version": OLDEST_DUCKDB, "catalog": 3, "assets": 3, "partitions": 1, "uploads": 1}

    client.upload_raw(pd.DataFrame({"n": [7]}), provider="test", dataset="notes")
    process(client)
    assert client.build_db()["incremental"] is True
    assert read_with_oldest_duckdb(client.db_path) == {
        "version": OLDEST_DUCKDB, "catalog": 4, "assets": 3, "partitions": 2, "uploads": 2}

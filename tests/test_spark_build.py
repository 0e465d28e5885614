"""One dbt project, two engines: `dbt build --target spark` (dbt-spark's session method, a local
pyspark) over the demo lake builds every mart DuckDB builds, with the same rows.

Each mart is compared by its row count and a checksum of its rows, values made comparable first
(Spark's and DuckDB's Python types for the same value differ: timestamps, lists, maps, nulls)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from typing import Any

import duckdb
import pandas as pd
import pytest
import xxhash
from typer.testing import CliRunner

from conftest import image_bytes, process

from datalake import DatalakeClient
from datalake.catalog.db import PROJECT_DIR
from datalake.cli import app as cli

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None,
    reason="the Spark build needs a Java runtime: `make test` installs one (apt-get install default-jre-headless)")

MARTS = sorted(path.stem for path in (PROJECT_DIR / "models" / "marts").glob("*.sql"))
PARTS = 100  # one-row uploads added to the demo lake

# Reads the marts the spark target built: the metastore and warehouse it keeps under the lake's
# db/spark/ (profiles/profiles.yml), each mart saved as a pandas pickle.
DUMP = """
import sys
from pyspark.sql import SparkSession
lake, out, marts = sys.argv[1], sys.argv[2], sys.argv[3:]
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.catalogImplementation", "hive")
         .config("spark.sql.warehouse.dir", f"{lake}/db/spark/warehouse")
         .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                 f"jdbc:derby:;databaseName={lake}/db/spark/metastore_db;create=true")
         .config("spark.sql.session.timeZone", "UTC").getOrCreate())
for mart in marts:
    spark.table(f"main.{mart}").toPandas().to_pickle(f"{out}/{mart}.pkl")
"""


def comparable(value: Any) -> Any:
    """A value as plain JSON-able Python, the same whichever engine's Python types hold it."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "asDict"):  # a Spark struct
        value = value.asDict()
    if isinstance(value, dict):
        return {str(k): comparable(v) for k, v in sorted(value.items())}
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if hasattr(value, "isoformat"):
        return pd.Timestamp(value).tz_localize(None).isoformat() if pd.Timestamp(value).tzinfo else \
            pd.Timestamp(value).isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def fingerprint(frame: pd.DataFrame) -> tuple[int, str]:
    """Rows and a checksum of their values, independent of row and column order."""
    columns = sorted(frame.columns)
    rows = sorted(json.dumps([comparable(row[c]) for c in columns], default=str)
                  for row in frame.to_dict("records"))
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


def many_parts_and_a_rewritten_one(client: DatalakeClient) -> None:
    """Add to the lake more part files than the names of which fit in 32,700 characters (Spark's
    metastore keeps no longer view text) at this path, and a part a retraction rewrote, whose rows
    keep their numbers (`_row_number`)."""
    for seed in range(PARTS):
        client.upload_raw(pd.DataFrame({"image": [image_bytes(1000 + seed)]}), provider="huggingface",
                          dataset="many", license="CC0-1.0")
    client.upload_raw(pd.DataFrame({"image": [image_bytes(s) for s in (2000, 2001, 2002)]}), provider="huggingface",
                      dataset="trio", license="CC0-1.0")
    process(client)
    client.retract(hashes=[xxhash.xxh3_128_hexdigest(image_bytes(2001))], reason="a rewritten part")


def test_spark_builds_every_mart_with_the_rows_duckdb_builds(demo_lake, tmp_path):
    lake = tmp_path / ("lake-" + "x" * 200)
    shutil.copytree(demo_lake, lake)
    client = DatalakeClient(user_id="demo", base_path=lake)
    many_parts_and_a_rewritten_one(client)
    parts = list((lake / "catalog").rglob("part-*.parquet"))
    assert sum(len(str(p)) for p in parts) > 32_700
    client.build_db(full_refresh=True)  # one build, as Spark's: the catalog's `_build` is 1 in both
    out = tmp_path / "spark-out"
    out.mkdir()
    built = CliRunner().invoke(cli, ["--base-path", str(lake), "db", "update", "--target", "spark"])
    assert built.exit_code == 0, built.output
    assert built.stdout.startswith("Built on Spark in ") and f"tables in {lake}/db/spark/warehouse" in built.stdout
    results = json.loads((lake / "db" / "spark" / "dbt-target" / "run_results.json").read_text())["results"]
    assert {r["status"] for r in results} == {"success", "pass"}
    subprocess.run([sys.executable, "-c", DUMP, str(lake), str(out), *MARTS], cwd=out, check=True,
                   capture_output=True)
    with duckdb.connect(str(client.db_path), read_only=True) as con:
        duckdb_marts = {mart: fingerprint(con.execute(f"select * from main.{mart}").df()) for mart in MARTS}
    spark_marts = {mart: fingerprint(pd.read_pickle(out / f"{mart}.pkl")) for mart in MARTS}
    assert spark_marts == duckdb_marts
    assert duckdb_marts["catalog"][0] > PARTS and duckdb_marts["collection_members"][0] > 0

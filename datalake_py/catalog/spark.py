"""The lake's dbt project built on Spark (`datalake db update --target spark`): the same marts, in a
local pyspark's warehouse under the lake's db/spark/ (profiles/profiles.yml, target `spark`).

Searches, pages and exports keep reading the DuckDB database; this build is for teams whose
engines are Spark's, and checks that the project's SQL stays portable. Spark builds every mart
whole (docs/design.md). It needs `pip install 'datalake[spark]'` and a Java runtime.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from typing import Any

from ..errors import ConfigError, DbBuildError
from ..fs import file_lock
from ..lake import Lake, utc_now
from ..schema import load_schema
from .db import run_results, dbt_env
from .dbt_worker import PROJECT_DIR


def build_on_spark(lake: Lake) -> dict[str, Any]:
    """Run `dbt build --target spark` on the lake; its summary, or DbBuildError naming what failed."""
    lake.require()
    load_schema(lake)  # the rules file checked with datalake's own parser first, as for DuckDB
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("dbt.adapters.spark") is None:
        raise ConfigError("building on Spark needs pyspark and dbt-spark: pip install 'datalake[spark]'")
    if shutil.which("java") is None:
        raise ConfigError("building on Spark needs a Java runtime on PATH (on Debian: apt-get install "
                          "default-jre-headless)")
    folder = lake.db_dir / "spark"
    target = folder / "dbt-target"
    started = time.monotonic()
    with file_lock(lake.lake_lock("spark-build")):
        (target / "run_results.json").unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, "-c", "from dbt.cli.main import cli; cli()", "build", "--target", "spark",
             "--exclude-resource-type", "unit_test", "--project-dir", str(PROJECT_DIR),
             "--profiles-dir", str(PROJECT_DIR / "profiles"), "--target-path", str(target),
             "--log-path", str(lake.logs)],
            env=dbt_env(lake), cwd=PROJECT_DIR, capture_output=True, text=True)
        results = run_results(lake, target)
    failing = [r for r in results if r["status"] in ("fail", "error")]
    if done.returncode or failing:
        detail = "\n  ".join(f"{r['unique_id'].split('.')[-1]}: {r['status']}: {r.get('message') or ''}".strip()
                             for r in failing) or done.stdout[-2000:]
        raise DbBuildError(f"dbt build on Spark failed:\n  {detail}")
    return {"target": "spark", "built_at": utc_now(), "seconds": round(time.monotonic() - started, 2),
            "nodes": len(results), "warehouse": str(folder / "warehouse"),
            "warnings": [f"{r['unique_id'].split('.')[-1]}: {r.get('message') or ''}" for r in results
                         if r["status"] == "warn"]}

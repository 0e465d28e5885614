"""The lake's DuckDB database: built by dbt from the catalog files, read by everyone else.

A build runs `dbt build` on a copy of the current database (so incremental models only add
what is new) and renames the result into place: readers keep the file they opened, new readers
get the new one, and a failed build leaves the previous database as it was. Builds take turns
under a lock. The file is a cache: delete it and the next build makes it again.

dbt runs in one child process per Python process, started at the first build and kept
(`dbt_worker.DbtWorker`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from ..errors import DatalakeError, DbBuildError, NotFoundError, ValidationError
from ..fs import file_lock
from ..lake import PART_FILES, Lake, utc_now
from ..schema import load_schema
from ..sql import quote
from .dbt_worker import PROJECT_DIR, DbtWorker

RULES_TEST = "task_meta_rules"
PARTS_TEST = "catalog_holds_every_part_file"
LICENSES_TEST = "dataset_licenses_known"
MEMORY_LIMIT = "50%"  # of the machine's memory, for DuckDB during a build



def dbt_vars(lake: Lake, db_path: Path | None = None) -> dict[str, str]:
    """The environment variables dbt needs for this lake (no usage tracking: hosts may be offline).

    DuckDB spills what does not fit in its memory limit (DATALAKE_DB_MEMORY_LIMIT, default 50% of
    the machine's memory) to the lake's db/.tmp/, so a lake larger than memory still builds."""
    return {"DATALAKE_HOME": str(lake.root), "DATALAKE_DB_PATH": str(db_path or lake.db_path),
            "DATALAKE_DB_MEMORY_LIMIT": os.environ.get("DATALAKE_DB_MEMORY_LIMIT", MEMORY_LIMIT),
            "DATALAKE_DB_TEMP_DIR": str(lake.db_dir / ".tmp"), "DO_NOT_TRACK": "1"}


def dbt_env(lake: Lake, db_path: Path | None = None) -> dict[str, str]:
    """The environment plain `dbt` needs for this lake."""
    return {**os.environ, **dbt_vars(lake, db_path)}


def dbt_args(lake: Lake, args: list[str]) -> list[str]:
    """A dbt command on the lake's project; its logs go to the lake's logs/."""
    return [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR / "profiles"),
            "--target-path", str(lake.dbt_target), "--log-path", str(lake.logs)]


def run_dbt(lake: Lake, args: list[str]) -> subprocess.CompletedProcess:
    """Run a dbt command in the foreground, its output on this terminal (`docs serve`)."""
    command = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", *dbt_args(lake, args)]
    return subprocess.run(command, env=dbt_env(lake), cwd=PROJECT_DIR)


def _run_dbt_kept(lake: Lake, args: list[str], db_path: Path, copy_vars: dict[str, str] | None = None) -> str | None:
    """Run a dbt command on `db_path` in the kept dbt process; None, or what went wrong.

    dbt runs in the database's folder and is given the file's bare name: dbt-duckdb reads its
    path as a URL, so a `?` or `#` in the lake's path would end it there."""
    env = {**dbt_vars(lake, Path(db_path.name)), **(copy_vars or {})}
    return DbtWorker.run(dbt_args(lake, args), env, cwd=db_path.parent)


def build_db(lake: Lake, full_refresh: bool = False, check_all: bool = False,
             copy_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """Build (or update) the database; its summary, or DbBuildError naming what failed.

    An update reads only the lake files that changed since the last build, and its tests check
    only the rows those add (macros/lake.sql). `full_refresh` builds everything again; `check_all`
    tests every row, and runs the project's unit tests too. The rules file is checked first, with
    datalake's own parser: a bad one raises ConfigError naming the problem, and nothing is built.
    `copy_vars` builds from a published copy instead (publish/reader.py): the environment of the
    profile's `published` target."""
    lake.require(copy_ok=copy_vars is not None)
    load_schema(lake)
    if "?" in str(lake.db_dir):
        raise ValidationError(f"the lake's path {str(lake.root)!r} has a '?', under which DuckDB cannot write "
                              "its database; rename or move the lake folder")
    started = time.monotonic()
    with file_lock(lake.lake_lock("build")):
        work = lake.db_work_path("building")
        for leftover in (work, work.with_name(work.name + ".wal")):
            leftover.unlink(missing_ok=True)
        incremental = not full_refresh and _can_update(lake.db_path)
        if incremental:
            shutil.copyfile(lake.db_path, work)
        (lake.dbt_target / "run_results.json").unlink(missing_ok=True)
        args = ["build", *([] if incremental else ["--full-refresh"]),
                *(["--vars", "{check_all: true}"] if check_all else ["--exclude-resource-type", "unit_test"]),
                *(["--target", "published"] if copy_vars else [])]
        try:
            error = _run_dbt_kept(lake, args, work, copy_vars)
            results = run_results(lake)
            failures = [_describe_failure(r, work) for r in results if r["status"] in ("fail", "error")]
            if error or failures:
                detail = "\n  ".join(failures) or error[-2000:]
                raise DbBuildError(f"dbt build failed; the database was left as it was:\n  {detail}")
            warning_lines = [_describe_warning(r, work) for r in results if r["status"] == "warn"]
            os.replace(work, lake.db_path)
        finally:
            work.unlink(missing_ok=True)
    return {"built_at": utc_now(), "seconds": round(time.monotonic() - started, 2),
            "incremental": incremental, "nodes": len(results), "warnings": warning_lines, **db_info(lake)}


def warned(built: dict[str, Any]) -> dict[str, Any]:
    """A build's summary, its warnings raised as UserWarnings so that a user sees them."""
    for warning in built.get("warnings", []):
        warnings.warn(warning, stacklevel=3)
    return built


def _can_update(path: Path) -> bool:
    """Whether the database at `path` can be updated rather than built again: it exists, its builds
    record what they change (databases made by datalake 0.2 and earlier do not), its partitions
    count their bytes (those made by 0.3 do not), and its part files record their last row number
    (those made before retraction do not)."""
    if not path.exists():
        return False
    with open_db(path) as con:
        return con.execute(
            "select count(*) from information_schema.columns where (table_schema, table_name, column_name) "
            "in (('lake_build', 'builds', 'build'), ('main', 'partitions', 'bytes'), "
            "('main', 'part_files', 'last_row_number'))").fetchone()[0] == 3


def run_results(lake: Lake, target: Path | None = None) -> list[dict[str, Any]]:
    """The node results of the last dbt run in `target` (default: the lake's dbt target folder)."""
    path = (target or lake.dbt_target) / "run_results.json"
    try:
        return json.loads(path.read_text())["results"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def _describe_failure(result: dict[str, Any], work: Path) -> str:
    """One line per failing node; for the meta rules test one line per task, field and bad value,
    for the part files test one line per part file the catalog does not hold exactly."""
    name = result["unique_id"].split(".")[2] if result["unique_id"].count(".") >= 2 else result["unique_id"]
    if result["status"] == "fail" and name == PARTS_TEST:
        lines = [f"{file}: {in_file} row(s) in the file, {in_db} in the catalog"
                 for file, in_file, in_db in _stored_failures(result, work)]
        return ("the catalog does not hold exactly the rows of these part files (a damaged file, or one "
                "replaced while the build ran: check the file, then build again):\n    "
                + "\n    ".join(lines or [result["message"]]))
    if result["status"] == "fail" and RULES_TEST in result["unique_id"]:
        lines = [f"task {t!r} field {f!r}: value {v!r} in {n} row(s) ({p})"
                 for t, f, v, n, p in _stored_failures(result, work)]
        return "schema rules (config/schema.yaml) broken:\n    " + "\n    ".join(lines or [result["message"]])
    return f"{name}: {result['status']}: {result.get('message') or ''}".strip()


def _describe_warning(result: dict[str, Any], work: Path) -> str:
    """One line per test that warned; for the license test one line per dataset it names."""
    if LICENSES_TEST in result["unique_id"]:
        lines = [f"{p}/{d}: {problem}" + (f" {license!r}" if license else "")
                 for p, d, license, problem in _stored_failures(result, work)]
        return ("datasets without a known license (set one for the provider in config/schema.yaml, or upload "
                "with --license):\n    " + "\n    ".join(lines or [result["message"]]))
    return _describe_failure(result, work)


def _stored_failures(result: dict[str, Any], work: Path) -> list[tuple]:
    """The rows a failing test stored in the database being built (none if they cannot be read)."""
    try:
        with duckdb.connect(str(work), read_only=True) as con:
            return con.execute(f"select * from {result['relation_name']} order by all").fetchall()
    except duckdb.Error:
        return []


def require_db(path: Path) -> Path:
    if not path.exists():
        raise NotFoundError(f"no database at {path} yet; build it with `datalake db update` (or client.build_db())")
    return path


def open_db(path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to a database file; read-only ones cannot reach files outside it.

    Read-only connections attach the file to a fresh in-memory database: DuckDB shares one open
    database per path within a process, which would keep showing a file a build has replaced.
    """
    require_db(path)
    if not read_only:
        return duckdb.connect(str(path))
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ? AS lake (READ_ONLY)", [str(path)])
    con.execute("USE lake")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the database holds a table or view `name` (a database built by an older datalake may not)."""
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = 'main' "
                            "and table_name = ?", [name]).fetchone()[0])


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the lake's database."""
    return open_db(lake.db_path)


def generate_docs(lake: Lake) -> Path:
    """Write the dbt docs site for the lake (from a copy of the database, so readers are undisturbed)."""
    lake.require()
    with file_lock(lake.lake_lock("build")):
        work = lake.db_work_path("docs")
        shutil.copyfile(require_db(lake.db_path), work)
        try:
            error = _run_dbt_kept(lake, ["docs", "generate"], work)
        finally:
            work.unlink(missing_ok=True)
    if error:
        raise DatalakeError(f"dbt docs generate failed:\n{error[-2000:]}")
    return lake.dbt_target / "index.html"


def db_info(lake: Lake) -> dict[str, Any]:
    """Whether the database exists, its tables with row counts, and whether it is behind the lake:
    an upload in the ledger it lacks, or a part file whose rows its catalog does not hold exactly.
    A folder reading a published copy has no lake files to compare with: `behind` is left out."""
    if not lake.db_path.exists():
        in_lake = len(list(lake.upload_ledger.glob("*.parquet")))
        return {"path": str(lake.db_path), "exists": False, "behind": True, "uploads_in_lake": in_lake,
                "uploads_missing": in_lake, "tables": {}}
    with connect(lake) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' "
            "and table_type = 'BASE TABLE' order by 1").fetchall()]
        counts = {t: con.execute(f"select count(*) from {quote(t)}").fetchone()[0] for t in tables}
        compared = {} if lake.reads_copy() else _compared_with_lake(lake, con, tables)
    stat = lake.db_path.stat()
    return {"path": str(lake.db_path), "exists": True, "size_bytes": stat.st_size,
            "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime)), "tables": counts,
            **compared}


def _compared_with_lake(lake: Lake, con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, Any]:
    """uploads_in_lake, uploads_missing (from the ledger) and `behind`, for db_info."""
    in_lake = sorted(p.stem for p in lake.upload_ledger.glob("*.parquet"))
    in_db = {r[0] for r in con.execute("select upload_id from uploads").fetchall()} if "uploads" in tables else set()
    held = dict(con.execute("select _file, num_rows from part_files").fetchall()) if "part_files" in tables else {}
    missing = [u for u in in_lake if u not in in_db]
    return {"uploads_in_lake": len(in_lake), "uploads_missing": len(missing),
            "behind": bool(missing) or _part_rows(lake) != held}


def _part_rows(lake: Lake) -> dict[str, int | None]:
    """Rows of each non-empty part file, from its parquet footer (None for a file that cannot be read)."""
    rows: dict[str, int | None] = {}
    for part in lake.catalog.glob(PART_FILES):
        try:
            num_rows = pq.read_metadata(part).num_rows
        except (OSError, pa.ArrowException):  # gone meanwhile, or not parquet: the build will say
            num_rows = None
        if num_rows != 0:
            rows[str(part)] = num_rows
    return rows


DIALECTS = ("duckdb", "trino", "athena", "presto", "spark", "hive")  # what `dialect` may name


def run_query(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None,
              dialect: str = "duckdb") -> pd.DataFrame:
    """One read-only query as a DataFrame, written in `dialect` (translated to DuckDB's); a clear
    error when it is not a query, does not parse or fails."""
    sql = to_duckdb(sql, dialect)
    check_read_only(sql)
    try:
        return con.execute(sql, params).df()
    except duckdb.Error as exc:
        raise ValidationError(f"query failed: {exc}") from None


def to_duckdb(sql: str, dialect: str) -> str:
    """`sql`, written in another engine's dialect (Trino, Athena, Spark SQL…), as DuckDB SQL;
    ValidationError naming the line and column where it stops making sense."""
    if dialect == "duckdb":
        return sql
    if dialect not in DIALECTS:
        raise ValidationError(f"unknown SQL dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    try:
        statements = sqlglot.transpile(sql, read=dialect, write="duckdb", unsupported_level=ErrorLevel.RAISE)
    except sqlglot.errors.TokenError as exc:
        raise ValidationError(f"the {dialect} SQL does not parse: {exc}; check for an unclosed quote or "
                              "comment") from None
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first['line']}, column {first['col']}" if "line" in first else ""
        detail = first.get("description") or str(exc).splitlines()[0]
        raise ValidationError(f"the {dialect} SQL does not parse{where}: {detail}") from None
    except sqlglot.errors.SqlglotError as exc:
        raise ValidationError(f"the {dialect} SQL cannot be run here: {str(exc).splitlines()[0]}") from None
    return ";\n".join(statements)


def check_read_only(sql: str) -> None:
    """Refuse anything but one query (SELECT, WITH, set operations, DESCRIBE, SHOW)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.TokenError as exc:
        raise ValidationError(f"the SQL does not parse: {exc}; check for an unclosed quote or comment") from None
    except sqlglot.errors.SqlglotError as exc:
        raise ValidationError(f"the SQL does not parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ValidationError(f"give exactly one SQL statement (got {len(statements)})")
    if not isinstance(statements[0], (exp.Query, exp.Describe, exp.Show)):
        raise ValidationError(f"only queries are allowed here (got {statements[0].key.upper()}); "
                              "the database is rebuilt from the lake's files, change those instead")


class DuckDBClient:
    """Local querying of a lake database file; read-only by default."""

    def __init__(self, db_path: str | Path, read_only: bool = True):
        self.read_only = read_only
        self.con = open_db(Path(db_path), read_only)

    def __enter__(self) -> "DuckDBClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def execute_query(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        """Run SQL (values as `params`) and return a DataFrame; only queries when read-only."""
        if self.read_only:
            return run_query(self.con, sql, params)
        return self.con.execute(sql, params).df()

    def list_tables(self) -> list[str]:
        return [r[0] for r in self.con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' order by 1").fetchall()]

    def get_table_info(self, table: str) -> pd.DataFrame:
        """Columns of a table: name, type, nullable."""
        if table not in self.list_tables():
            raise NotFoundError(f"no table {table!r}; tables: {', '.join(self.list_tables())}")
        return self.con.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = 'main' and table_name = ? order by ordinal_position", [table]).df()

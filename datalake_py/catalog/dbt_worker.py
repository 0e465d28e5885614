"""A child process that keeps dbt loaded and runs the dbt commands of its parent, one at a time.

Importing dbt and loading its adapter cost about 2 s; a process that builds more than once (the
server, a notebook, a script) pays that once. dbt's process-wide state (working folder,
environment, the database dbt-duckdb keeps open) stays out of the parent.

Protocol, one JSON line each way: the parent writes {"args": [...], "env": {...}, "cwd": "..."}
(dbt runs in folder `cwd`) to the child's stdin; the child answers {"error": null or "what went
wrong"} on its stdout. Anything dbt prints goes to stderr. The child ends when its stdin closes,
that is when its parent ends.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import datalake

_PACKAGE_DIR = Path(datalake.__file__).resolve().parent
# The dbt project (dbt_project.yml, models/, macros/, profiles/, …): an installed package holds it
# as `datalake/project/`; in a source checkout (the editable install) it is the repository root.
PROJECT_DIR = _PACKAGE_DIR / "project" if (_PACKAGE_DIR / "project").is_dir() else _PACKAGE_DIR.parent


def run_command(args: list[str], env: dict[str, str], cwd: str) -> str | None:
    """Run one dbt command here, in folder `cwd`; None when it succeeded, else what went wrong.

    dbt-duckdb keeps its database open between commands; it is closed after each one, as a
    build's file is renamed next and a later build must not write through a handle to it.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    os.environ.update(env)
    os.chdir(cwd)
    try:
        result = dbtRunner().invoke([*args, "--log-level", "none"])  # dbt's log file keeps everything
    except Exception as exc:  # dbt raises for some start-up problems instead of reporting them
        return f"{type(exc).__name__}: {exc}"
    finally:
        held = DuckDBConnectionManager._ENV
        DuckDBConnectionManager.close_all_connections()
        if held is not None:
            held.close()
    if result.success:
        return None
    return str(result.exception or "dbt reported a failure (see logs/dbt.log)")


def serve() -> None:
    """The child's loop: answer each request line until stdin closes."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not mix with answers
    for line in sys.stdin:
        request = json.loads(line)
        answers.write(json.dumps({"error": run_command(request["args"], request["env"], request["cwd"])}) + "\n")
        answers.flush()


class DbtWorker:
    """The parent's handle on its dbt child, started at the first command and kept."""

    _child: subprocess.Popen | None = None
    _lock = threading.Lock()

    @classmethod
    def run(cls, args: list[str], env: dict[str, str], cwd: Path) -> str | None:
        """Run a dbt command in the child, in folder `cwd`; None when it succeeded, else what went wrong."""
        request = json.dumps({"args": args, "env": env, "cwd": str(cwd)}) + "\n"
        with cls._lock:
            child = cls._started()
            try:
                child.stdin.write(request)
                child.stdin.flush()
                answer = child.stdout.readline()
            except OSError:  # a broken pipe: the child is gone
                answer = ""
            except BaseException:  # interrupted: an answer may still come, so this child is done
                cls._end(child)
                raise
            if not answer:
                cls._end(child)
                return "the dbt process stopped unexpectedly (out of memory?); see logs/dbt.log"
            return json.loads(answer)["error"]

    @classmethod
    def _end(cls, child: subprocess.Popen) -> None:
        child.kill()
        child.wait()
        cls._child = None

    @classmethod
    def _started(cls) -> subprocess.Popen:
        if cls._child is None or cls._child.poll() is not None:
            cls._child = subprocess.Popen(
                [sys.executable, "-m", "datalake.catalog.dbt_worker"], cwd=PROJECT_DIR, text=True, bufsize=1,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            atexit.register(cls._stop, cls._child)
        return cls._child

    @staticmethod
    def _stop(child: subprocess.Popen) -> None:
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    serve()

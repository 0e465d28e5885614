"""A child process that keeps dbt loaded and runs the dbt commands of its parent, one at a time.

Importing dbt and loading its adapter cost about 2 s; a process that builds more than once (the
server, a notebook, a script) pays that once. dbt's process-wide state (working folder,
environment, the database dbt-duckdb keeps open) stays out of the parent.

Protocol, JSON lines: the parent writes {"args": [...], "env": {...}, "cwd": "..."} (dbt runs in
folder `cwd`) to the child's stdin; the child writes {"done": n, "total": m} on its stdout as each
of the m nodes (models, snapshots, tests) of the command finishes, then answers {"error": null or
"what went wrong"}. The parent draws the nodes done as a progress bar (on a terminal). Anything
dbt prints goes to stderr. The child ends when its stdin closes, that is when its parent ends.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import datalake
from datalake.progress import progress

_PACKAGE_DIR = Path(datalake.__file__).resolve().parent
# The dbt project (dbt_project.yml, models/, macros/, profiles/, …): an installed package holds it
# as `datalake/project/`; in a source checkout (the editable install) it is the repository root.
PROJECT_DIR = _PACKAGE_DIR / "project" if (_PACKAGE_DIR / "project").is_dir() else _PACKAGE_DIR.parent


def run_command(args: list[str], env: dict[str, str], cwd: str,
                node_done: Callable[[int, int], None] = lambda done, total: None) -> str | None:
    """Run one dbt command here, in folder `cwd`; None when it succeeded, else what went wrong.
    `node_done(done, total)` is called as each node finishes, once dbt has said how many it runs.

    dbt-duckdb keeps its database open between commands; it is closed after each one, as a
    build's file is renamed next and a later build must not write through a handle to it.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    os.environ.update(env)
    os.chdir(cwd)
    run: set[str] = set()  # the nodes executed (ephemeral models are compiled only)
    counts = {"total": 0, "done": 0}  # the nodes the command runs (told as each starts), those finished

    def on_event(event: Any) -> None:
        """Count the nodes finished among those executed (ephemeral models finish without running)."""
        name, data = event.info.name, event.data
        if name == "LogStartLine":
            counts["total"] = data.total
        elif name == "NodeExecuting":
            run.add(data.node_info.unique_id)
        elif name == "NodeFinished" and data.node_info.unique_id in run and counts["total"]:
            counts["done"] += 1
            node_done(counts["done"], counts["total"])

    try:  # dbt's log file keeps everything
        result = dbtRunner(callbacks=[on_event]).invoke([*args, "--log-level", "none"])
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

    lock = threading.Lock()  # dbt finishes nodes in several threads

    def answer(message: dict[str, Any]) -> None:
        with lock:
            answers.write(json.dumps(message) + "\n")
            answers.flush()

    for line in sys.stdin:
        request = json.loads(line)
        error = run_command(request["args"], request["env"], request["cwd"],
                            lambda done, total: answer({"done": done, "total": total}))
        answer({"error": error})


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
                answer = cls._answer(child)
            except OSError:  # a broken pipe: the child is gone
                answer = ""
            except BaseException:  # interrupted: an answer may still come, so this child is done
                cls._end(child)
                raise
            if not answer:
                cls._end(child)
                return "the dbt process stopped unexpectedly (out of memory?); see logs/dbt.log"
            return json.loads(answer)["error"]

    @staticmethod
    def _answer(child: subprocess.Popen) -> str:
        """The child's answer line ('' if it is gone), the nodes it reports done drawn as a bar meanwhile."""
        with contextlib.ExitStack() as stack:
            bar = None
            while (line := child.stdout.readline()) and "done" in (message := json.loads(line)):
                if bar is None:
                    bar = stack.enter_context(progress(total=message["total"], desc="dbt", unit="node"))
                bar.update(1)
            return line

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

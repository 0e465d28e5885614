"""The `datalake` command line through Typer's CliRunner: exit codes and the exact messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import catalog_rows, image_bytes
from datalake.cli import app

runner = CliRunner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def lake(tmp_path) -> Path:
    result = run("init", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    return tmp_path / "lake"


@pytest.fixture
def data(tmp_path) -> Path:
    images = [{"bytes": image_bytes(i), "path": f"{i}.png"} for i in range(3)]
    pq.write_table(pa.table({"image": images, "label": ["a", "b", "c"]}), tmp_path / "data.parquet")
    return tmp_path / "data.parquet"


def test_init_upload_process_list(lake, data):
    base = ["--base-path", str(lake), "--user", "carol"]
    result = run(*base, "upload", str(data), "--provider", "huggingface", "--dataset", "coco_2017")
    assert result.exit_code == 0, result.output
    assert "3 rows, 3 assets -> huggingface/coco_2017/raw/image" in result.stdout
    result = run(*base, "upload", str(data), "--provider", "huggingface", "--dataset", "coco_2017",
                 "--task", "ocr", "--variant", "base_ocr", "--meta", "lang=ko", "--meta", "src=real")
    assert result.exit_code == 0, result.output
    listed = run(*base, "process", "list")
    assert listed.stdout.count("pending") == 2
    result = run(*base, "process", "start", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["processed"] == 2 and {u["rows_written"] for u in summary["uploads"]} == {3}
    rows = catalog_rows(lake)
    assert {r["_uploaded_by"] for r in rows} == {"carol"}
    assert {(r["task"], r.get("lang")) for r in rows} == {("raw", None), ("ocr", "ko")}
    status = run(*base, "process", "status", summary["job_id"])
    assert json.loads(status.stdout)["status"] == "completed"
    assert "No uploads in staging." in run(*base, "process", "list").stdout


def test_config_commands(lake):
    base = ["--base-path", str(lake)]
    assert run(*base, "config", "provider", "create", "hf").stdout == "Provider 'hf' registered.\n"
    assert "hf" in run(*base, "config", "provider", "list").stdout
    result = run(*base, "config", "task", "create", "ocr2", "--required", "lang,src",
                 "--allowed", "lang=ko,en,ja", "--allowed", "src=real,synthetic")
    assert result.exit_code == 0, result.output
    listed = run(*base, "config", "task", "list").stdout
    assert re.search(r"^ocr2 +lang,src +lang=ko,en,ja; src=real,synthetic$", listed, re.M)
    assert run(*base, "config", "task", "remove", "ocr2").exit_code == 0
    assert run(*base, "config", "provider", "remove", "hf").exit_code == 0
    result = run(*base, "config", "provider", "remove", "hf")
    assert (result.exit_code, result.stderr) == (1, "Error: provider 'hf' is not registered\n")


@pytest.mark.parametrize("args, message", [
    (["--provider", "hf", "--dataset", "d"],
     "Error: provider 'hf' is not registered; add it with `datalake config provider create hf` "
     "(registered: aihub, huggingface, inhouse, opensource, test)\n"),
    (["--provider", "test", "--dataset", "../x"],
     "Error: dataset name '../x' is not allowed: use letters, digits, '_', '.' and '-', "
     "not starting with '.', at most 128 characters\n"),
    (["--provider", "test", "--dataset", "d", "--task", "ocr", "--variant", "v", "--meta", "lang=ko"],
     "Error: task 'ocr' requires meta field 'src' (allowed: real, synthetic); add it, e.g. --meta src=...\n"),
    (["--provider", "test", "--dataset", "d", "--task", "ocr", "--variant", "v", "--meta", "lang=xx",
      "--meta", "src=real"],
     "Error: meta lang='xx' is not allowed for task 'ocr'; allowed: ko, en, ja, multi\n"),
    (["--provider", "test", "--dataset", "d", "--task", "ocr", "--variant", "v", "--meta", "lang=ko",
      "--meta", "src=real", "--meta", "x=1"],
     "Error: meta field 'x' is not defined for task 'ocr' (its fields: lang, src)\n"),
    (["--dataset", "d"], "Error: missing --provider; give it (or run in a terminal for a guided upload)\n"),
    (["--provider", "test", "--dataset", "d", "--meta", "novalue"],
     "Error: --meta 'novalue' must look like FIELD=value\n"),
])
def test_bad_upload_options_exit_1_with_the_exact_message(lake, data, args, message):
    result = run("--base-path", str(lake), "upload", str(data), *args)
    assert (result.exit_code, result.stderr) == (1, message)
    assert not any((lake / "staging" / "pending").iterdir())


def test_corrupt_image_and_not_parquet(lake, tmp_path):
    pq.write_table(pa.table({"image": [b"GIF89a broken"]}), tmp_path / "bad.parquet")
    result = run("--base-path", str(lake), "upload", str(tmp_path / "bad.parquet"), "-p", "test", "-d", "d")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: 1 row(s) of parquet file {tmp_path / 'bad.parquet'} cannot be "
                                    "uploaded (rows counted from 0):\n  row 0: image header is not readable")
    (tmp_path / "x.parquet").write_text("not parquet")
    result = run("--base-path", str(lake), "upload", str(tmp_path / "x.parquet"), "-p", "test", "-d", "d")
    assert result.exit_code == 1 and "is not a readable parquet file" in result.stderr
    assert "Traceback" not in result.output


def test_process_failure_and_retry(lake):
    base = ["--base-path", str(lake)]
    for i, value in enumerate(["1", "one"]):
        path = lake.parent / f"s{i}.parquet"
        pq.write_table(pa.table({"score": [int(value)] if value.isdigit() else [value]}), path)
        assert run(*base, "upload", str(path), "-p", "test", "-d", "d").exit_code == 0
        started = run(*base, "process", "start")
    assert started.exit_code == 1
    assert "failed" in started.stdout and "column 'score' is string in this upload but int64" in started.stderr
    assert started.stderr.rstrip().endswith("Error: 1 upload(s) failed; fix the cause, then "
                                            "`datalake process retry UPLOAD_ID` (see `datalake process list`)")
    failed_id = next((lake / "staging" / "failed").iterdir()).name
    result = run(*base, "process", "retry", failed_id)
    assert result.exit_code == 0 and (lake / "staging" / "pending" / failed_id).is_dir()
    result = run(*base, "process", "retry", "nope")
    assert (result.exit_code, result.stderr) == (
        1, "Error: upload 'nope' is not among the failed uploads; `datalake process list` shows them\n")


def test_missing_lake_says_how_to_create_it(tmp_path):
    result = run("--base-path", str(tmp_path / "none"), "process", "list")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no lake at {tmp_path / 'none'} (config/schema.yaml is missing); "
                             f"create one with `datalake init {tmp_path / 'none'}`\n")


def test_env_and_config_yaml_defaults_with_flags_winning(lake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(f"base_path: {lake}\nuser_id: from_file\nnum_proc: 3\n")
    shown = run("config", "show", env={"DATALAKE_HOME": "", "DATALAKE_USER": ""}).stdout
    assert f"base_path: {lake}" in shown and "user_id: from_file" in shown and "num_proc: 3" in shown
    shown = run("config", "show", env={"DATALAKE_USER": "from_env"}).stdout
    assert "user_id: from_env" in shown
    shown = run("--user", "from_flag", "config", "show", env={"DATALAKE_USER": "from_env"}).stdout
    assert "user_id: from_flag" in shown
    (tmp_path / "config.yaml").write_text("colour: blue\n")
    result = run("config", "show")
    assert result.exit_code == 1 and "has unknown key(s) colour" in result.stderr


def test_python_dash_m_is_the_same_cli(lake):
    env = {**os.environ, "DATALAKE_HOME": str(lake)}
    out = subprocess.run([sys.executable, "-m", "datalake", "config", "provider", "list"],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and "huggingface" in out.stdout
    out = subprocess.run([sys.executable, "-m", "datalake", "upload", "x.parquet", "--dataset", "d"],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert (out.returncode, out.stderr) == (
        1, "Error: missing --provider; give it (or run in a terminal for a guided upload)\n")


def test_guided_upload_asks_for_what_is_missing_in_a_terminal(lake, data):
    """Run in a real pseudo-terminal: provider, dataset, task, variant and each meta field are asked for."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "DATALAKE_HOME": str(lake), "DATALAKE_USER": "dana"}
    proc = subprocess.Popen([sys.executable, "-m", "datalake", "upload", str(data)], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    os.close(slave)
    for answer in ("nosuch", "huggingface", "guided", "ocr", "v1", "ko", "real"):
        os.write(master, (answer + "\n").encode())
    out, err = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0, err
    assert "provider: aihub, huggingface, inhouse, opensource, test" in out
    assert "'nosuch' is not one of" in out
    assert "lang: ko, en, ja, multi" in out
    assert "-> huggingface/guided/ocr/v1" in out
    manifest = json.loads(next((lake / "staging" / "pending").glob("*/manifest.json")).read_text())
    assert manifest["meta"] == {"lang": "ko", "src": "real"} and manifest["uploaded_by"] == "dana"


def test_progress_bars_are_not_drawn_when_piped(lake, data):
    """Off a terminal stderr stays empty (tests/test_terminal.py checks the bars drawn on one)."""
    env = {**os.environ, "DATALAKE_HOME": str(lake), "TERM": "xterm"}
    piped = subprocess.run([sys.executable, "-m", "datalake", "upload", str(data), "-p", "huggingface", "-d", "bars"],
                           capture_output=True, env=env, stdin=subprocess.DEVNULL)
    assert piped.returncode == 0 and piped.stderr == b""


def test_db_search_query_download(lake, data, tmp_path):
    base = ["--base-path", str(lake)]
    run(*base, "upload", str(data), "-p", "huggingface", "-d", "coco_2017")
    assert run(*base, "process", "start").exit_code == 0
    result = run(*base, "db", "update")
    assert result.exit_code == 0 and "catalog 3" in result.stdout
    assert json.loads(run(*base, "db", "info").stdout)["behind"] is False
    found = run(*base, "search", "--provider", "huggingface", "--dataset", "coco_*", "--format", "json")
    assert sorted(r["label"] for r in json.loads(found.stdout)) == ["a", "b", "c"]
    found = run(*base, "search", "--text", "B", "--column", "label", "--format", "csv")
    assert found.stdout.splitlines()[1].split(",")[0].endswith(":1")
    result = run(*base, "query", "select count(*) as n from catalog", "--format", "json")
    assert json.loads(result.stdout) == [{"n": 3}]
    result = run(*base, "query", "drop table catalog")
    assert result.exit_code == 1 and result.stderr.startswith("Error: only queries are allowed here (got DROP)")
    result = run(*base, "search", "--format", "xml")
    assert (result.exit_code, result.stderr) == (1, "Error: --format must be one of table, json, csv\n")


def test_the_command_line_starts_without_the_data_libraries():
    """`datalake --help` and commands that touch no data load neither pandas, pyarrow, DuckDB nor
    datasets, so every call starts quickly."""
    probe = ("import sys; from typer.testing import CliRunner; from datalake.cli import app; "
             "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
             "print(sorted(m for m in ('pandas', 'pyarrow', 'duckdb', 'datasets') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"

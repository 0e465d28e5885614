"""What `datalake` shows on a terminal: search tables that fit 120 columns whatever the labels hold,
notes on stderr saying what was left out and how to see it, and downloads of nothing refused."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import image_bytes
from datalake import DatalakeClient
from datalake.cli import app

ROWS = 130
HOSTILE = ["<script>alert(1)</script>\nsecond line\r\n\tthird", "\x1b[2J\x1b[31mred\x1b[0m screen",
           "한국어 라벨 " * 40, "word " * 400, ""]


def label(i: int) -> str:
    return f"{i:03d} {HOSTILE[i % len(HOSTILE)]}"


def columns_wide(line: str) -> int:
    """Terminal columns a line takes: wide East Asian characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)


def run(lake: Path, *args: str):
    return CliRunner().invoke(app, ["--base-path", str(lake), *args])


def on_a_terminal(args: list[str], stream: str, columns: int, env: dict | None = None):
    """Run `datalake ARGS` with its `stream` (stdout or stderr) on a pseudo-terminal `columns`
    wide: the finished process (the other stream captured) and what the terminal received."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: slave}
    done = subprocess.run([sys.executable, "-m", "datalake", *args], stdin=subprocess.DEVNULL, env=env, **streams)
    os.close(slave)
    received = b""
    with contextlib.suppress(OSError):  # EIO once the other side is closed and all is read
        while chunk := os.read(master, 65536):
            received += chunk
    os.close(master)
    return done, received.decode(errors="replace")


def drawn_on_a_terminal(lake: Path, *args: str) -> str:
    """What `datalake ARGS` draws on stderr when stderr is a terminal of 100 columns."""
    env = {**os.environ, "DATALAKE_HOME": str(lake), "DATALAKE_USER": "erin", "TERM": "xterm"}
    done, drawn = on_a_terminal(list(args), "stderr", 100, env)
    assert done.returncode == 0, drawn
    return drawn


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """A built lake of ROWS OCR rows whose labels hold markup, escape sequences, newlines, Korean
    and very long text, with a long `caption` column and a short `page` column beside them."""
    root = tmp_path_factory.mktemp("terminal")
    images = [{"bytes": image_bytes(i), "path": f"{i}.png"} for i in range(ROWS)]
    pq.write_table(pa.table({"image": images, "label": [label(i) for i in range(ROWS)],
                             "caption": ["a caption that goes on " * 5 + str(i) for i in range(ROWS)],
                             "page": [f"p{i}\nx" for i in range(ROWS)]}), root / "data.parquet")
    client = DatalakeClient(user_id="alice", base_path=root / "lake", create_dirs=True, num_proc=2)
    client.upload_task(root / "data.parquet", "huggingface", "coco_2017", "ocr", "base_ocr",
                       meta={"lang": "ko", "src": "real"})
    client.wait_for_job_completion(client.trigger_processing())
    client.build_db()
    return root / "lake"


def test_a_search_table_fits_120_columns_with_partition_short_hash_label_and_meta(lake):
    result = run(lake, "search")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + 100  # one line per row: newlines in values do not break rows
    assert max(columns_wide(line) for line in lines) <= 120
    assert lines[0].split() == ["partition", "hash", "label", "page", "lang", "src"]
    hashes = set(pd.read_json(io.StringIO(run(lake, "search", "--limit", "0", "--format", "json").stdout))["hash"])
    for line in lines[1:]:
        partition, short, number = line.split()[:3]
        assert partition == "huggingface/coco_2017/ocr/base_ocr"
        assert len(short) == 12 and any(h.startswith(short) for h in hashes)
        assert line.endswith("ko    real")
    assert "\x1b" not in result.stdout and "\t" not in result.stdout
    assert "<script>alert(1)</script> second line third" in result.stdout
    assert "…" in result.stdout  # the long labels are cut
    assert "showing 100 of 130 matches; use --limit N (or --limit 0 for all)" in result.stderr
    assert "--format json or csv shows them in full" in result.stderr
    assert re.search(r"not shown: .*caption.*_file.*; choose columns with --columns", result.stderr)


def test_a_search_table_fits_a_narrower_terminal(lake):
    """On a terminal (stdout a pseudo-terminal of 80 columns) the table fits its width."""
    done, shown = on_a_terminal(["--base-path", str(lake), "search", "--limit", "20"], "stdout", 80)
    assert done.returncode == 0, done.stderr
    lines = shown.splitlines()
    assert len(lines) == 21 and lines[0].startswith("partition") and max(map(columns_wide, lines)) <= 80
    assert max(map(columns_wide, lines)) > 70  # the label takes the room there is
    assert "cut with … to fit 80 characters" in done.stderr.decode()


def test_limit_zero_shows_every_match_and_no_truncation_note(lake):
    result = run(lake, "search", "--limit", "0")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1 + ROWS
    assert "showing" not in result.stderr
    assert "showing" not in run(lake, "search", "--limit", str(ROWS)).stderr
    assert "showing 7 of 130 matches" in run(lake, "search", "--limit", "7", "--format", "csv").stderr
    narrowed = run(lake, "search", "--limit", "3", "--text", "한국어")
    assert "showing 3 of 26 matches" in narrowed.stderr


def test_columns_choose_what_the_table_shows(lake):
    result = run(lake, "search", "--columns", "hash,lang,partition", "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["hash", "lang", "partition"]
    assert all(re.fullmatch(r"[0-9a-f]{32}\s+ko\s+huggingface/coco_2017/ocr/base_ocr", line) for line in lines[1:])
    wide = run(lake, "search", "--columns", "label,caption,_file,path,row_id")
    assert max(columns_wide(line) for line in wide.stdout.splitlines()) <= 120


def test_an_unknown_column_names_the_columns_there_are(lake):
    result = run(lake, "search", "--columns", "hash,nosuch")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: --columns names no column of the results: nosuch; choose among: ")
    assert all(name in result.stderr for name in ("partition", "label", "caption", "lang", "_upload_id"))


def test_json_and_csv_keep_every_column_in_full(lake):
    rows = json.loads(run(lake, "search", "--limit", "0", "--format", "json").stdout)
    assert sorted(r["label"] for r in rows) == sorted(label(i) for i in range(ROWS))
    assert {"_file", "_upload_id", "row_id", "path", "caption"} <= set(rows[0])
    assert all(len(r["hash"]) == 32 for r in rows)
    result = run(lake, "search", "--limit", "0", "--format", "csv")
    assert result.stderr == ""
    read = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode(), newline="")))  # .stdout drops \\r
    assert sorted(r["label"] for r in read) == sorted(label(i) for i in range(ROWS))
    chosen = pd.read_csv(io.StringIO(run(lake, "search", "--format", "csv", "--columns", "label,page").stdout))
    assert list(chosen.columns) == ["label", "page"] and chosen["page"].str.contains("\n").all()


def test_query_tables_cut_long_values_and_say_how_to_see_them(lake):
    result = run(lake, "query", "select * from catalog order by label")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + ROWS and max(columns_wide(line) for line in lines) <= 120
    assert "--format json or csv shows them in full" in result.stderr
    full = json.loads(run(lake, "query", "select label from catalog order by label", "--format", "json").stdout)
    assert [r["label"] for r in full] == sorted(label(i) for i in range(ROWS))
    short = run(lake, "query", "select 1 as n")
    assert (short.stdout, short.stderr) == ("n\n1\n", "")


def test_a_download_of_no_rows_writes_nothing_and_fails(lake, tmp_path):
    for output in (tmp_path / "ds", tmp_path / "rows.parquet"):
        result = run(lake, "download", "-o", str(output), "--provider", "nosuch", "--as-collection", "nothing")
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr == (f"Error: the search matched no rows, so nothing was written to {output}; "
                                 "widen the filters (`datalake search` with the same ones shows what they match)\n")
        assert not output.exists()
    assert list(tmp_path.iterdir()) == []
    assert "nothing" not in run(lake, "collections", "list").stdout


def test_exporting_an_empty_collection_writes_nothing_and_fails(lake, tmp_path):
    client = DatalakeClient(user_id="alice", base_path=lake)
    client.import_collection(client.search(limit=1).head(0), "empty")
    result = run(lake, "collections", "export", "empty", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and result.stderr.count("Error:") == 1
    assert "there are no rows to write" in result.stderr
    assert list(tmp_path.iterdir()) == []
    client.delete_collection("empty")


def test_progress_bars_on_a_terminal_show_their_totals(tmp_path):
    """Upload counts the source's rows, processing its rows and assets, `db update` dbt's nodes,
    download and validation their rows and assets: each bar shows the total it moves towards."""
    rows = 40
    images = [{"bytes": image_bytes(1000 + i), "path": f"{i}.png"} for i in range(rows)]
    pq.write_table(pa.table({"image": images, "label": [f"l{i}" for i in range(rows)]}), tmp_path / "d.parquet")
    lake = tmp_path / "lake"
    DatalakeClient(base_path=lake, create_dirs=True)
    upload = drawn_on_a_terminal(lake, "upload", str(tmp_path / "d.parquet"), "-p", "test", "-d", "bars")
    assert re.search(r"read parquet file .*\b0/40 \[", upload)
    process = drawn_on_a_terminal(lake, "process", "start")
    assert re.search(r"process: .*\b0/40 \[", process) and re.search(r"store assets: .*\b0/40 \[", process)
    update = drawn_on_a_terminal(lake, "db", "update")
    totals = {int(t) for t in re.findall(r"dbt: .*?\b\d+/(\d+) \[", update)}
    assert len(totals) == 1 and totals.pop() >= 20  # models, snapshots and tests of the project
    download = drawn_on_a_terminal(lake, "download", "-o", str(tmp_path / "out"))
    assert re.search(r"export: .*\b0/40 \[", download)
    validate = drawn_on_a_terminal(lake, "db", "validate")
    assert re.search(r"validate: .*\b0/40 \[", validate)

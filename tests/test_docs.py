"""The README tells the truth: its sessions print what it shows, every command has help, links resolve.

The README's shell session is its ```console block: lines starting with `$ ` are commands, the
lines after each are what that command prints (standard output and standard error, as a terminal
shows them). Its Python session is the ```python block after the comment naming this file, and
what it prints is the ```text block right after it. In expected output, `...` stands for any text
within one line (upload and job ids, timestamps, the folder the session runs in, byte counts of
encoded images), so the README can show real output that differs from run to run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from datalake.cli import app
from datalake.server.main import app as server_app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = "..."


def shell_session() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `$ ` line of the README's console block."""
    blocks = re.findall(r"```console\n(.*?)```", README, re.S)
    assert len(blocks) == 1, "the README holds exactly one ```console block: its shell session"
    steps: list[tuple[str, list[str]]] = []
    for line in blocks[0].splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def python_session() -> tuple[str, list[str]]:
    """The README's Python session and the lines it prints."""
    found = re.search(r"<!-- tests/test_docs\.py runs this script[^\n]*-->\n```python\n(.*?)```\n\n```text\n(.*?)```",
                      README, re.S)
    assert found, "the README's Python session (a ```python block after a comment naming tests/test_docs.py, " \
                  "then a ```text block of its output) is missing"
    return found.group(1), found.group(2).splitlines()


def matches(expected: list[str], printed: str) -> bool:
    """Whether the printed text is the expected lines, `...` standing for any text within a line."""
    lines = [line.rstrip() for line in printed.splitlines()]
    patterns = [".*".join(re.escape(part) for part in line.rstrip().split(PLACEHOLDER)) for line in expected]
    return len(lines) == len(patterns) and all(re.fullmatch(p, line) for p, line in zip(patterns, lines))


def session_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment with this test's `datalake` first on PATH and no settings of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALAKE_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HOME"] = str(tmp_path / "home")  # no ~/.config/datalake/config.yaml
    return env


def test_readme_shell_session_prints_what_the_readme_shows(tmp_path: Path) -> None:
    work = tmp_path / "session"
    work.mkdir()
    env = session_env(tmp_path)
    for command, expected in shell_session():
        done = subprocess.run(command, shell=True, cwd=work, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}"
        assert matches(expected, done.stdout), (
            f"$ {command}\nprinted:\n{done.stdout}\nthe README shows:\n" + "\n".join(expected))


def test_readme_python_session_prints_what_the_readme_shows(tmp_path: Path) -> None:
    code, expected = python_session()
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=session_env(tmp_path),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout
    assert matches(expected, done.stdout), f"printed:\n{done.stdout}\nthe README shows:\n" + "\n".join(expected)


def test_placeholders_match_within_one_line_only() -> None:
    assert matches(["Job ...: 1 processed"], "Job process-1: 1 processed\n")
    assert not matches(["Job ...: 1 processed"], "Job process-1: 2 processed\n")
    assert not matches(["a ... b"], "a\nb\n")
    assert not matches(["one line"], "one line\nand another\n")


def commands(command: Any, path: str) -> list[tuple[str, Any]]:
    """(full name, command) of a command of the command line and of every command below it."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += commands(sub, f"{path} {name}")
    return found


CLI = commands(typer.main.get_command(app), "datalake") + [("datalake-server", typer.main.get_command(server_app))]


@pytest.mark.parametrize("name, command", CLI, ids=[name for name, _ in CLI])
def test_every_command_and_option_has_help(name: str, command: Any) -> None:
    about = (command.help or command.short_help or "").strip()
    assert about, f"`{name} --help` says nothing about the command"
    silent = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert not silent, f"`{name} --help` says nothing about: {', '.join(silent)}"
    program, *args = name.split()
    result = CliRunner().invoke(server_app if program == "datalake-server" else app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert about.split()[0] in result.output


def test_readme_names_every_top_level_command() -> None:
    root = typer.main.get_command(app)
    missing = [name for name in root.commands if f"datalake {name}" not in README]
    assert not missing, f"the README never shows: {', '.join(f'datalake {n}' for n in missing)}"
    assert "datalake-server" in README


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_links_lead_to_files_of_this_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.is_relative_to(ROOT) and linked.exists(), f"{page.name} links to {target}, not in the repository"
        if anchor and linked.suffix == ".md":
            assert anchor in heading_anchors(linked.read_text(encoding="utf-8")), f"{page.name}: no heading {target}"

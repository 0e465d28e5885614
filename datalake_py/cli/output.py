"""Plain-text tables and JSON for command output.

Tables are made to be read on a terminal: each cell on one line (whitespace collapsed, control
characters shown as `?`, so a value cannot move the cursor or add lines), cut with `…` so that
no line is wider than the terminal (120 columns off a terminal).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import sys
import unicodedata
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import typer

from ..errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

CUT = "…"
GAP = "  "  # between two columns
WIDTH = 120  # the width of a table when stdout is no terminal
MIN_WIDTH = 6  # a column is cut to no fewer characters than this (its own width when narrower)
FRAME_FORMATS = ("table", "json", "csv")  # how commands print rows
REPORT_FORMATS = ("table", "json")  # how commands print a report (a leakage check, a retraction, a publish)
SHORT_HASH = 12  # hex digits of the hash a table shows
SHOWN = 20  # rows a table of findings shows before saying how many more there are


def table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """The rows as aligned columns, values in full (for short listings: nothing is cut)."""
    rows = list(rows)
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def note(message: str) -> None:
    """A remark about the output (what was left out, how to see it) on stderr, apart from the data."""
    typer.echo(message, err=True)


def terminal_width() -> int:
    """The width tables fit: the terminal's when stdout is one, else WIDTH."""
    return shutil.get_terminal_size((WIDTH, 24)).columns if sys.stdout.isatty() else WIDTH


def one_line(text: str, limit: int) -> str:
    """`text` on one line: runs of whitespace become one space, other control characters `?`;
    only the first characters are looked at, enough to fill `limit` columns."""
    bound = limit * 4
    text = " ".join(text[:bound].split()) + (CUT if len(text) > bound else "")
    return "".join("?" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


def _char_width(ch: str) -> int:
    """Columns a character takes on a terminal: 2 for wide East Asian ones, 0 for combining marks."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)


def cut(text: str, width: int) -> str:
    """`text` if it fits `width` columns, else its start and `…` within `width` columns."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for ch in text:
        used += _char_width(ch)
        if used > width - 1:
            break
        kept.append(ch)
    return "".join(kept) + CUT


def _fitted(natural: list[int], room: int) -> list[int]:
    """Column widths within `room` (gaps excluded): the widest columns are narrowed to one cap, the
    largest that fits; the columns cut to it share what is left over."""
    if sum(natural) <= room:
        return natural
    cap = MIN_WIDTH
    while sum(min(w, cap + 1) for w in natural) <= room:
        cap += 1
    widths = [min(w, cap) for w in natural]
    spare = room - sum(widths)
    for i, w in enumerate(natural):
        if w > widths[i] and spare > 0:
            widths[i] += 1
            spare -= 1
    return widths


def fit_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> tuple[str, list[str], bool]:
    """The rows as aligned columns no wider than `width` on a terminal.

    Columns that do not fit even at MIN_WIDTH each are left out, from the last. Returns the text,
    the names of the columns left out, and whether any value was cut.
    """
    header = [one_line(h, width) for h in header]
    cells = [[one_line(v, width) for v in row] for row in rows]
    natural = [max([display_width(h), *(display_width(row[i]) for row in cells)]) for i, h in enumerate(header)]
    shown = len(header)
    while shown > 1 and sum(min(w, MIN_WIDTH) for w in natural[:shown]) + len(GAP) * (shown - 1) > width:
        shown -= 1
    widths = _fitted(natural[:shown], width - len(GAP) * (shown - 1))
    lines = [_line(header[:shown], widths)] + [_line(row[:shown], widths) for row in cells]
    was_cut = any(w < n for w, n in zip(widths, natural))
    return "\n".join(lines), list(header[shown:]), was_cut


def first_rows(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]], total: int, width: int) -> str:
    """`title (total):` over the first SHOWN of `rows` as a table fitted to `width`, then how many
    more there are (--format json lists every one)."""
    shown = [[str(v) for v in row] for row in itertools.islice(rows, SHOWN)]
    text, _, _ = fit_table([str(h) for h in header], shown, width)
    more = f"\n... and {total - SHOWN:,} more (--format json lists every one)" if total > SHOWN else ""
    return f"{title} ({total:,}):\n{text}{more}"


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    padded = []
    for value, width in zip(values, widths):
        value = cut(value, width)
        padded.append(value + " " * (width - display_width(value)))
    return GAP.join(padded).rstrip()


def check_format(fmt: str, formats: tuple[str, ...] = REPORT_FORMATS) -> None:
    """ValidationError unless `fmt` is one of `formats`."""
    if fmt not in formats:
        raise ValidationError(f"--format must be one of {', '.join(formats)}")


def print_frame(frame: "pd.DataFrame", fmt: str, short_hash: bool = False) -> None:
    """The rows on stdout: json and csv with every value in full, a table fitted to the terminal
    (`short_hash`: the hash column shows its first SHORT_HASH digits)."""
    check_format(fmt, FRAME_FORMATS)
    if fmt == "json":
        echo_json(frame.to_dict(orient="records"))
    elif fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False, color=True)  # escape codes in values are data: kept
    elif not len(frame):
        typer.echo("(no rows)")
    else:
        _print_table(frame, short_hash)


def _print_table(frame: "pd.DataFrame", short_hash: bool) -> None:
    """The rows as a table no wider than the terminal; on stderr, what it left out or cut."""
    import pandas as pd

    width = terminal_width()
    if short_hash and "hash" in frame.columns:
        frame = frame.assign(hash=frame["hash"].str[:SHORT_HASH])
    rows = [["" if pd.api.types.is_scalar(v) and pd.isna(v) else str(v) for v in row]
            for row in frame.itertuples(index=False)]
    text, left_out, was_cut = fit_table([str(c) for c in frame.columns], rows, width)
    typer.echo(text)
    if left_out:
        note(f"{len(left_out)} column(s) did not fit in {width} characters: {', '.join(left_out)}; "
             "choose fewer with --columns, or see all with --format json")
    short_hash = short_hash and "hash" in frame.columns
    if was_cut or short_hash:
        note(f"long values are cut with {CUT} to fit {width} characters"
             + (f" (hash to its first {SHORT_HASH} digits)" if short_hash else "")
             + "; --format json or csv shows them in full")


@contextlib.contextmanager
def warnings_printed() -> Iterator[None]:
    """Run a block, then print the warnings it raised (a build's datasets without a known license,
    a collection mixing licenses) as `Warning: ...` lines on standard error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        typer.echo(f"Warning: {warning.message}", err=True)


"""`datalake stats`: what the rows of a search hold, summed up (client.stats)."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from ..curation import DEFAULT_THRESHOLD
from ..errors import ValidationError
from .context import client_for
from .curate_cmds import THRESHOLD_OPTION
from .output import CUT, cut, echo_json, fit_table, note, one_line, terminal_width
from .query_cmds import FILTER_OPTIONS, search_filters

FORMATS = ("table", "json")
FILTERS = ("providers", "datasets", "tasks", "variants", "meta")  # the search filters client.stats takes
PARTITION_COLUMNS = ["partition", "rows", "assets", "bytes", "size p50", "types", "dup rows", "label p50", "near-dups"]
PARTITION_LEGEND = ("Per partition (medians of image size and label length; near-dups: images with a near-duplicate "
                    f"within {DEFAULT_THRESHOLD} bits):")


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats_cmd(ctx: typer.Context,
                  provider: List[str] = FILTER_OPTIONS["provider"], dataset: List[str] = FILTER_OPTIONS["dataset"],
                  task: List[str] = FILTER_OPTIONS["task"], variant: List[str] = FILTER_OPTIONS["variant"],
                  meta: List[str] = FILTER_OPTIONS["meta"],
                  threshold: Optional[int] = THRESHOLD_OPTION,
                  fmt: str = typer.Option("table", "--format", help="table or json (every figure in full).")) -> None:
        """Rows, assets, bytes, image sizes, file types, meta values, duplicates, near-duplicates and
        label lengths of the rows a search with the same filters matches, and per partition."""
        if fmt not in FORMATS:
            raise ValidationError(f"--format must be one of {', '.join(FORMATS)}")
        filters = search_filters(provider, dataset, task, variant, meta, None, None, None, 0)
        found = client_for(ctx).stats(**{f: filters[f] for f in FILTERS}, threshold=threshold)
        if fmt == "json":
            echo_json(found)
        elif not found["rows"]:
            typer.echo("(no rows)")
        else:
            _print_summary(found)


def _print_summary(found: dict[str, Any]) -> None:
    """The totals as lines, then one table row per partition, all within the terminal's width."""
    width = terminal_width()
    lines = _summary_lines(found)
    shown = [cut(one_line(line, width), width) for line in lines]
    typer.echo("\n".join(shown) + "\n\n" + cut(PARTITION_LEGEND, width))
    rows = [[p["partition_key"], f"{p['num_rows']:,}", f"{p['num_assets']:,}", f"{p['bytes']:,}",
             _size(p), _counts(p["file_types"]), f"{p['duplicate_rows']:,}", _or_blank(p["label_length_p50"]),
             _or_dash(p["near_duplicate_assets"])] for p in found["partitions"]]
    text, left_out, was_cut = fit_table(PARTITION_COLUMNS, rows, width)
    typer.echo(text)
    if left_out:
        note(f"{len(left_out)} column(s) did not fit in {width} characters: {', '.join(left_out)}; "
             "see all with --format json")
    if was_cut or shown != lines:
        note(f"long values are cut with {CUT} to fit {width} characters; --format json shows them in full")


def _summary_lines(found: dict[str, Any]) -> list[str]:
    images, labels, near = found["images"], found["labels"], found["near_duplicates"]
    lines = [f"rows {found['rows']:,}; assets {found['assets']:,}; bytes {found['bytes']:,}; "
             f"duplicate rows dropped at upload {found['duplicate_rows']:,}"]
    if images["count"]:
        lines.append(f"images {images['count']:,}: width p5/p50/p95 {_slashed(images['width'])} px, "
                     f"height {_slashed(images['height'])} px")
    if found["file_types"]:
        lines.append(f"file types: {_counts(found['file_types'])}")
    for field, values in found["meta"].items():
        more = values["distinct"] - len(values["top"])
        lines.append(f"meta {field}: {_counts(values['top'])}" + (f" (and {more:,} more values)" if more else ""))
    if labels["rows"]:
        lines.append(f"labels {labels['rows']:,} rows: length p5/p50/p95 {_slashed(labels['length'])} characters")
    if near["fingerprinted"]:
        lines.append(f"near-duplicates within {near['threshold']} bits: {near['groups']:,} group(s) of "
                     f"{near['images']:,} image(s), among {near['fingerprinted']:,} fingerprinted")
    elif images["count"]:
        lines.append("near-duplicates: no image has a fingerprint yet (`datalake curate index`, then `datalake db update`)")
    lines.append("licenses: " + _licenses(found["partitions"]))
    return lines


def _licenses(partitions: list[dict[str, Any]]) -> str:
    """Each license with the datasets under it: `CC-BY-4.0 (p/d1, p/d2); none (p/d3)`."""
    datasets: dict[str, list[str]] = {}
    for p in partitions:
        names = datasets.setdefault(p["license"] or "none", [])
        if f"{p['provider']}/{p['dataset']}" not in names:
            names.append(f"{p['provider']}/{p['dataset']}")
    return "; ".join(f"{license} ({', '.join(names)})" for license, names in sorted(datasets.items()))


def _slashed(percentiles: dict[str, int]) -> str:
    return "/".join(f"{v:,}" for v in percentiles.values())


def _size(row: dict[str, Any]) -> str:
    return "" if row["width_p50"] is None else f"{row['width_p50']}x{row['height_p50']}"


def _or_blank(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} {n:,}" for value, n in counts.items())


def _or_dash(value: int | None) -> str:
    """A count, or `-` where it is not known (no image of the partition has a fingerprint yet)."""
    return "-" if value is None else f"{value:,}"

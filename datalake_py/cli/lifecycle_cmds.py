"""`datalake retract`, `datalake gc` and `datalake retractions list`: data leaving the lake for good.

Both removing commands show their plan (a dry run) first and ask before changing anything,
unless --yes; with --dry-run they stop after the plan. With --format json the plan or the result
is the one JSON document on stdout; the question, when asked, goes to stderr after the plan's summary.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, List, Optional

import typer

from ..errors import ValidationError
from .context import client_for
from .output import SHORT_HASH, check_format, echo_json, first_rows, fit_table, note, terminal_width

if TYPE_CHECKING:
    from ..lifecycle import GarbageReport, Retraction

FORMAT_OPTION = typer.Option("table", "--format", help="table or json (every item in full).")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Show what would go and stop: nothing changes.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask before removing.")
RETRACTION_COLUMNS = ["retraction_id", "started_at", "retracted_by", "reason", "rows", "assets", "bytes", "complete"]

retractions_app = typer.Typer(no_args_is_help=True, help="The retraction ledger: what left the lake, when, who and why.")


def register(app: typer.Typer) -> None:
    app.command("retract")(retract)
    app.command("gc")(gc)
    app.add_typer(retractions_app, name="retractions")


def retract(
    ctx: typer.Context,
    provider: List[str] = typer.Option([], "--provider", "-p", help="Exact name; repeatable."),
    dataset: List[str] = typer.Option([], "--dataset", "-d", help="Exact name; repeatable."),
    task: List[str] = typer.Option([], "--task", "-t", help="Exact name; repeatable."),
    variant: List[str] = typer.Option([], "--variant", "-v", help="Exact name; repeatable."),
    hash_: List[str] = typer.Option([], "--hash", help="An asset's hash: the rows that point at it; repeatable."),
    upload: Optional[str] = typer.Option(None, "--upload", help="The rows of this upload id."),
    reason: str = typer.Option("", "--reason", help="Why the data goes (required: the retraction ledger records it)."),
    dry_run: bool = DRY_RUN_OPTION,
    yes: bool = YES_OPTION,
    force: bool = typer.Option(False, "--force", help="Also remove the rows from the collection versions holding "
                                                      "them (their metadata records it)."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Remove rows for good (each given filter must hold) with the assets no other row references; shows
    the plan and asks first."""
    check_format(fmt)
    if not reason.strip():
        raise ValidationError("give --reason TEXT: why this data goes (the retraction ledger records it)")
    client = client_for(ctx)
    asked = {"providers": provider, "datasets": dataset, "tasks": task, "variants": variant, "hashes": hash_,
             "upload_id": upload, "reason": reason, "force": force}
    plan = client.retract(**asked, dry_run=True)
    if fmt == "table":
        typer.echo(_retraction_plan(plan))
    if dry_run:
        if fmt == "json":
            echo_json(plan.to_dict())
        return
    from ..lifecycle.retraction import refuse_blocked  # loaded with the client already

    refuse_blocked(plan)  # before asking: the question would be for nothing
    if not yes:
        _confirm("Retract this for good?", fmt, plan.summary())
    done = client.retract(**asked)
    if fmt == "json":
        echo_json(done.to_dict())
    else:
        typer.echo(dataclasses.replace(done, database=None).summary())  # the database's state: a warning below
    if done.database not in ("rebuilt", "absent"):
        typer.echo(f"Warning: the database was not rebuilt, so it still lists the rows: {done.database}; "
                   "run `datalake db update` once that is fixed", err=True)


def gc(ctx: typer.Context, dry_run: bool = DRY_RUN_OPTION, yes: bool = YES_OPTION, fmt: str = FORMAT_OPTION) -> None:
    """Remove asset files no row or collection references, and what runs that ended early left; shows
    them and asks first."""
    check_format(fmt)
    client = client_for(ctx)
    plan = client.collect_garbage(dry_run=True)
    if fmt == "table" and (dry_run or plan.assets or plan.leftovers):
        typer.echo(_garbage_plan(plan))
    if dry_run:
        if fmt == "json":
            echo_json(plan.to_dict())
        return
    if (plan.assets or plan.leftovers) and not yes:
        _confirm("Remove these files for good?", fmt, plan.summary())
    done = client.collect_garbage()  # with nothing to remove it only finishes retractions a killed run left
    if fmt == "json":
        echo_json(done.to_dict())
    else:
        typer.echo(done.summary())


@retractions_app.command("list")
def list_(ctx: typer.Context, fmt: str = FORMAT_OPTION) -> None:
    """Every retraction, oldest first: when, who, why, and what it removed."""
    check_format(fmt)
    records = client_for(ctx).list_retractions()
    if fmt == "json":
        echo_json(records)
    elif not records:
        typer.echo("No retractions.")
    else:
        rows = [[r["retraction_id"], r.get("started_at") or "", r["retracted_by"], r["reason"], f"{r['rows']:,}",
                 f"{len(r['assets']):,}", f"{r['bytes']:,}", "yes" if r.get("completed_at") else "no (gc finishes it)"]
                for r in records]
        typer.echo(fit_table(RETRACTION_COLUMNS, rows, terminal_width())[0])


def _confirm(question: str, fmt: str, summary: str) -> None:
    """Ask `question` (with --format json on stderr, after the plan's summary); on no, stop: exit 1."""
    if fmt == "json":
        note(summary)
    try:
        agreed = typer.confirm(question, default=False, err=fmt == "json")
    except typer.Abort:  # no answer: the input ended
        agreed = False
    if not agreed:
        note("Nothing was changed.")
        raise typer.Exit(1)


def _retraction_plan(plan: "Retraction") -> str:
    width = terminal_width()
    blocks = [plan.summary()]
    if plan.parts:
        blocks.append(first_rows("Part files", ["partition", "rows", "part"],
                                 ([p["partition"], f"{p['rows']:,}", p["part"]] for p in plan.parts),
                                 len(plan.parts), width))
    if plan.assets:
        blocks.append(_asset_files(plan.assets, width))
    return "\n\n".join(blocks)


def _garbage_plan(plan: "GarbageReport") -> str:
    width = terminal_width()
    blocks = [plan.summary()]
    if plan.assets:
        blocks.append(_asset_files(plan.assets, width))
    if plan.leftovers:
        blocks.append(first_rows("Leftovers", ["bytes", "path", "what"],
                                 ([f"{x['bytes']:,}", x["path"], x["what"]] for x in plan.leftovers),
                                 len(plan.leftovers), width))
    return "\n\n".join(blocks)


def _asset_files(assets: list[dict], width: int) -> str:
    return first_rows("Asset files", ["hash", "bytes", "path"],
                      ([a["hash"][:SHORT_HASH], f"{a['bytes']:,}", f"assets/{a['path']}"] for a in assets),
                      len(assets), width)

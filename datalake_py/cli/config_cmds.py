"""`datalake config`: the settings in use, and the providers and tasks of config/schema.yaml."""

from __future__ import annotations

from typing import List, Optional

import typer

from .. import schema as rules
from ..errors import ValidationError
from ..lake import Lake
from ..licenses import LICENSE_HELP
from .output import table

app = typer.Typer(no_args_is_help=True, help="Show settings; list, create and remove providers and tasks.")
provider_app = typer.Typer(no_args_is_help=True, help="Providers uploads may name.")
task_app = typer.Typer(no_args_is_help=True, help="Tasks and their required meta fields.")
app.add_typer(provider_app, name="provider")
app.add_typer(task_app, name="task")


def _lake(ctx: typer.Context) -> Lake:
    return Lake(ctx.find_root().obj.base_path).require()


@app.command("show")
def show(ctx: typer.Context) -> None:
    """The settings in use (flags over env over config.yaml) and the lake's rules file."""
    s = ctx.find_root().obj
    typer.echo(f"base_path: {s.base_path}\nuser_id: {s.user_id}\nserver_url: {s.server_url or ''}\n"
               f"num_proc: {s.num_proc}")
    typer.echo(f"rules: {Lake(s.base_path).schema_path}")


@provider_app.command("list")
def provider_list(ctx: typer.Context) -> None:
    """List registered providers."""
    schema = rules.load_schema(_lake(ctx))
    rows = [{"provider": n, "description": d, "license": schema.licenses[n].id if n in schema.licenses else ""}
            for n, d in sorted(schema.providers.items())]
    typer.echo(table(rows, ["provider", "description", "license"]))


@provider_app.command("create")
def provider_create(ctx: typer.Context, name: str = typer.Argument(..., help="The provider's name."),
                    description: str = typer.Option("", "--description", "-d", help="Who or what it is."),
                    license: Optional[str] = typer.Option(None, "--license", help=LICENSE_HELP),
                    license_name: Optional[str] = typer.Option(None, "--license-name", help="With --license other."),
                    license_url: Optional[str] = typer.Option(None, "--license-url", help="With --license other.")
                    ) -> None:
    """Register a provider, with the license of its datasets if given."""
    rules.add_provider(_lake(ctx), name, description, license, license_name, license_url)
    typer.echo(f"Provider {name!r} registered.")


@provider_app.command("remove")
def provider_remove(ctx: typer.Context, name: str = typer.Argument(..., help="The provider's name.")) -> None:
    """Unregister a provider (stored data stays)."""
    rules.remove_provider(_lake(ctx), name)
    typer.echo(f"Provider {name!r} removed.")


@task_app.command("list")
def task_list(ctx: typer.Context) -> None:
    """List tasks with their required fields and allowed values."""
    schema = rules.load_schema(_lake(ctx))
    rows = [{"task": t.name, "required": ",".join(t.required_fields),
             "allowed": "; ".join(f"{k}={','.join(v)}" for k, v in t.allowed_values.items())}
            for t in sorted(schema.tasks.values(), key=lambda t: t.name)]
    typer.echo(table(rows, ["task", "required", "allowed"]))


def parse_allowed(items: List[str]) -> dict[str, list[str]]:
    allowed: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--allowed {item!r} must look like FIELD=value1,value2")
        allowed[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return allowed


@task_app.command("create")
def task_create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The task's name."),
    required: str = typer.Option("", "--required", help="Comma-separated required meta fields."),
    allowed: List[str] = typer.Option([], "--allowed", help="FIELD=v1,v2 (repeatable): allowed values."),
    description: str = typer.Option("", "--description", "-d", help="What the task's labels are."),
) -> None:
    """Register a task: `--required lang,src --allowed lang=ko,en --allowed src=real,synthetic`."""
    fields = [f.strip() for f in required.split(",") if f.strip()]
    rules.add_task(_lake(ctx), name, fields, parse_allowed(allowed), description)
    typer.echo(f"Task {name!r} registered (required: {', '.join(fields) or 'none'}).")


@task_app.command("remove")
def task_remove(ctx: typer.Context, name: str = typer.Argument(..., help="The task's name.")) -> None:
    """Unregister a task (stored data stays)."""
    rules.remove_task(_lake(ctx), name)
    typer.echo(f"Task {name!r} removed.")

"""The lake's rules in config/schema.yaml: registered providers and tasks with their meta fields."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from .errors import ConfigError, ConflictError, NotFoundError, ValidationError
from .fs import file_lock, write_text_atomic
from .lake import RAW_TASK, Lake, check_name
from .licenses import License, check_license

LANGS = ["ko", "en", "ja", "multi"]
SRCS = ["real", "synthetic"]

DEFAULT_SCHEMA: dict[str, Any] = {
    "providers": {
        "aihub": {"description": "AI Hub datasets"},
        "huggingface": {"description": "Hugging Face Hub datasets"},
        "opensource": {"description": "Other open-source datasets"},
        "inhouse": {"description": "Data made in-house"},
        "test": {"description": "For trying things out"},
    },
    "tasks": {
        **{
            name: {"required_fields": ["lang", "src"], "allowed_values": {"lang": LANGS, "src": SRCS}}
            for name in ("ocr", "kie", "vqa", "layout")
        },
        "document_conversion": {
            "required_fields": ["lang", "src", "mod"],
            "allowed_values": {"lang": LANGS, "src": SRCS, "mod": ["page", "table", "chart"]},
        },
    },
}

BOX_FORMATS = ("xyxy", "xywh", "polygon")  # [x1, y1, x2, y2], [x, y, w, h], corners [[x, y], ...] or flat

HEADER = (
    "# datalake rules: the providers uploads may name, and each task's required meta fields.\n"
    "# Edit by hand or with `datalake config provider|task create|remove`.\n"
)


@dataclass(frozen=True)
class BoxRule:
    """Where a task's labels keep the boxes to draw over the image: JSON paths (as in the search's
    `json_path`) to the boxes and to their text (box i goes with text i), and how a box is written."""
    path: str
    text: str | None = None
    format: str = "xyxy"

    def to_yaml(self) -> dict[str, str]:
        return {"path": self.path, **({"text": self.text} if self.text else {}), "format": self.format}


@dataclass
class TaskRule:
    name: str
    required_fields: list[str]
    allowed_values: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    boxes: BoxRule | None = None

    def check_meta(self, meta: dict[str, Any]) -> dict[str, str]:
        """Return meta as strings if it holds exactly the required fields with allowed values."""
        fields = ", ".join(self.required_fields) or "none"
        for key in meta:
            if key not in self.required_fields:
                raise ValidationError(
                    f"meta field {key!r} is not defined for task {self.name!r} (its fields: {fields})"
                )
        checked: dict[str, str] = {}
        for key in self.required_fields:
            allowed = self.allowed_values.get(key)
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            if key not in meta or meta[key] is None or meta[key] == "":
                raise ValidationError(
                    f"task {self.name!r} requires meta field {key!r}{hint}; add it, e.g. --meta {key}=..."
                )
            value = str(meta[key])
            if allowed and value not in allowed:
                raise ValidationError(
                    f"meta {key}={value!r} is not allowed for task {self.name!r}; allowed: {', '.join(allowed)}"
                )
            checked[key] = value
        return checked

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"required_fields": list(self.required_fields)}
        if self.allowed_values:
            out["allowed_values"] = {k: list(v) for k, v in self.allowed_values.items()}
        if self.description:
            out["description"] = self.description
        if self.boxes:
            out["boxes"] = self.boxes.to_yaml()
        return out


@dataclass
class Schema:
    providers: dict[str, str]  # name -> description
    tasks: dict[str, TaskRule]
    licenses: dict[str, License] = field(default_factory=dict)  # provider name -> its license, if it has one

    def require_provider(self, name: str) -> str:
        check_name(name, "provider")
        if name not in self.providers:
            raise ValidationError(
                f"provider {name!r} is not registered; add it with `datalake config provider create {name}`"
                f" (registered: {', '.join(sorted(self.providers)) or 'none'})"
            )
        return name

    def require_task(self, name: str) -> TaskRule:
        check_name(name, "task")
        if name not in self.tasks:
            raise ValidationError(
                f"task {name!r} is not registered; add it with "
                f"`datalake config task create {name} --required FIELD,...`"
                f" (registered: {', '.join(sorted(self.tasks)) or 'none'})"
            )
        return self.tasks[name]

    def to_yaml(self) -> str:
        doc = {
            "providers": {name: self._provider_yaml(name) for name in sorted(self.providers)},
            "tasks": {name: rule.to_yaml() for name, rule in sorted(self.tasks.items())},
        }
        return HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

    def _provider_yaml(self, name: str) -> dict[str, str]:
        license = self.licenses.get(name)
        fields = {k: v for k, v in license.fields().items() if v} if license else {}
        return {**({"description": self.providers[name]} if self.providers[name] else {}), **fields}


def _problem(path: Path, where: str, what: str) -> ConfigError:
    return ConfigError(f"{path} is invalid: {where} {what}; fix the file or restore it with `datalake init`")


def _string_list(value: Any, path: Path, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise _problem(path, where, "must be a list of strings")
    return [str(v) for v in value]


def _parse_task(name: str, body: Any, path: Path) -> TaskRule:
    where = f"tasks.{name}"
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _problem(path, where, "must be a mapping with required_fields and allowed_values")
    unknown = set(body) - {"required_fields", "allowed_values", "description", "boxes"}
    if unknown:
        raise _problem(path, where, f"has unknown key(s) {', '.join(sorted(unknown))}")
    required = _string_list(body.get("required_fields", []), path, f"{where}.required_fields")
    for f in required:
        _checked(lambda: check_name(f, "meta field"), path, f"{where}.required_fields")
    allowed_raw = body.get("allowed_values") or {}
    if not isinstance(allowed_raw, dict):
        raise _problem(path, where + ".allowed_values", "must be a mapping of field to a list of values")
    allowed = {}
    for key, values in allowed_raw.items():
        if key not in required:
            raise _problem(path, f"{where}.allowed_values.{key}", "names a field missing from required_fields")
        allowed[key] = _string_list(values, path, f"{where}.allowed_values.{key}")
    boxes = _parse_boxes(body["boxes"], path, f"{where}.boxes") if body.get("boxes") is not None else None
    return TaskRule(name, required, allowed, str(body.get("description") or ""), boxes)


def _parse_boxes(body: Any, path: Path, where: str) -> BoxRule:
    example = "e.g. {path: '$.elements[*].bbox', text: '$.elements[*].text', format: xyxy}"
    if not isinstance(body, dict):
        raise _problem(path, where, f"must be a mapping with path, text and format, {example}")
    unknown = set(body) - {"path", "text", "format"}
    if unknown:
        raise _problem(path, where, f"has unknown key(s) {', '.join(sorted(map(str, unknown)))} ({example})")
    if "path" not in body:
        raise _problem(path, where, f"needs a path to the boxes, {example}")
    text = body.get("text")
    form = body.get("format", "xyxy")
    if form not in BOX_FORMATS:
        raise _problem(path, f"{where}.format", f"must be one of {', '.join(BOX_FORMATS)} (got {form!r})")
    return BoxRule(_json_path(body["path"], path, f"{where}.path"),
                   None if text is None else _json_path(text, path, f"{where}.text"), form)


def _json_path(value: Any, path: Path, where: str) -> str:
    """`value` if it is a JSON path DuckDB reads (the search's `json_path` syntax), else ConfigError."""
    if not isinstance(value, str) or not value.startswith("$"):
        raise _problem(path, where, f"must be a JSON path starting with '$', e.g. $.elements[*].bbox (got {value!r})")
    import duckdb  # here: the rules are read by commands (`datalake --help`, `config`) that do without DuckDB

    with duckdb.connect() as con:
        try:
            con.execute("select json_extract('{}'::json, ?)", [value])
        except duckdb.Error as exc:
            raise _problem(path, where, f"is not a JSON path DuckDB reads ({str(exc).splitlines()[0]})") from None
    return value


def _checked(fn, path: Path, where: str):
    try:
        return fn()
    except ValidationError as exc:
        raise _problem(path, where, f"holds a bad name: {exc}") from None


def parse_schema(text: str, path: Path) -> Schema:
    """Parse and check the rules; any problem raises ConfigError naming where it is."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise _problem(path, "the file", "must be a mapping with 'providers' and 'tasks'")
    unknown = set(doc) - {"providers", "tasks"}
    if unknown:
        raise _problem(path, "the file", f"has unknown top-level key(s) {', '.join(sorted(unknown))}")
    providers_raw = doc.get("providers") or {}
    if isinstance(providers_raw, list):
        providers_raw = {p: {} for p in _string_list(providers_raw, path, "providers")}
    if not isinstance(providers_raw, dict):
        raise _problem(path, "providers", "must be a mapping (or list) of provider names")
    providers, licenses = {}, {}
    for name, body in providers_raw.items():
        _checked(lambda: check_name(name, "provider"), path, "providers")
        providers[name] = str((body or {}).get("description", "")) if isinstance(body, (dict, type(None))) else ""
        license = _provider_license(body, path, f"providers.{name}")
        if license:
            licenses[name] = license
    tasks_raw = doc.get("tasks") or {}
    if not isinstance(tasks_raw, dict):
        raise _problem(path, "tasks", "must be a mapping of task name to its rules")
    tasks = {}
    for name, body in tasks_raw.items():
        _checked(lambda: check_name(name, "task"), path, "tasks")
        if name == RAW_TASK:
            raise _problem(path, f"tasks.{RAW_TASK}", "is reserved for raw uploads")
        tasks[name] = _parse_task(name, body, path)
    return Schema(providers, tasks, licenses)


PROVIDER_KEYS = {"description", "license", "license_name", "license_url"}


def _provider_license(body: Any, path: Path, where: str) -> License | None:
    """A provider's license (`license`, with `license_name` and `license_url` for `other`), if it has one."""
    if not isinstance(body, dict):
        return None
    unknown = set(body) - PROVIDER_KEYS
    if unknown:
        raise _problem(path, where, f"has unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                                    f"(a provider takes {', '.join(sorted(PROVIDER_KEYS))})")
    try:
        return check_license(*(None if body.get(k) is None else str(body[k])
                               for k in ("license", "license_name", "license_url")))
    except ValidationError as exc:
        raise _problem(path, f"{where}.license", f"is wrong: {exc}") from None


def default_schema() -> Schema:
    return parse_schema(yaml.safe_dump(DEFAULT_SCHEMA), Path("default schema"))


def load_schema(lake: Lake) -> Schema:
    lake.require(copy_ok=True)
    return parse_schema(lake.schema_path.read_text(encoding="utf-8"), lake.schema_path)


def write_default_schema(lake: Lake) -> bool:
    """Write the default rules unless the lake already has some; True if written."""
    with file_lock(lake.lake_lock("schema")):
        if lake.schema_path.exists():
            return False
        write_text_atomic(lake.schema_path, default_schema().to_yaml())
        return True


def init_lake(base_path: str | Path) -> Lake:
    """Create the lake's folders and default rules; an existing lake is left as it is."""
    lake = Lake(base_path)
    if lake.reads_copy():
        lake.require()  # refused: the folder reads a published copy
    new = not lake.schema_path.is_file()
    lake.create()
    if new:
        lake.record_layout()
    write_default_schema(lake)
    return lake


@contextlib.contextmanager
def edit_schema(lake: Lake) -> Iterator[Schema]:
    """Read-modify-write the rules under a lock; the new file replaces the old one atomically."""
    lake.require()
    with file_lock(lake.lake_lock("schema")):
        schema = load_schema(lake)
        yield schema
        write_text_atomic(lake.schema_path, schema.to_yaml())


def add_provider(lake: Lake, name: str, description: str = "", license: str | None = None,
                 license_name: str | None = None, license_url: str | None = None) -> None:
    """Register a provider, with the license of its datasets if given (see licenses.check_license)."""
    check_name(name, "provider")
    checked = check_license(license, license_name, license_url)
    with edit_schema(lake) as schema:
        if name in schema.providers:
            raise ConflictError(f"provider {name!r} is already registered")
        schema.providers[name] = description
        if checked:
            schema.licenses[name] = checked


def remove_provider(lake: Lake, name: str) -> None:
    with edit_schema(lake) as schema:
        if name not in schema.providers:
            raise NotFoundError(f"provider {name!r} is not registered")
        del schema.providers[name]
        schema.licenses.pop(name, None)


def add_task(lake: Lake, name: str, required_fields: list[str],
             allowed_values: dict[str, list[str]] | None = None, description: str = "") -> TaskRule:
    check_name(name, "task")
    if name == RAW_TASK:
        raise ValidationError(f"task name {RAW_TASK!r} is reserved for raw uploads; choose another name")
    for f in required_fields:
        check_name(f, "meta field")
    allowed = allowed_values or {}
    for key, values in allowed.items():
        if key not in required_fields:
            raise ValidationError(
                f"--allowed {key}=... names a field that is not required; add it with --required {key}"
            )
        if not values:
            raise ValidationError(f"--allowed {key}= lists no values")
    rule = TaskRule(name, list(required_fields), {k: list(v) for k, v in allowed.items()}, description)
    with edit_schema(lake) as schema:
        if name in schema.tasks:
            raise ConflictError(f"task {name!r} is already registered; remove it first to redefine it")
        schema.tasks[name] = rule
    return rule


def remove_task(lake: Lake, name: str) -> None:
    with edit_schema(lake) as schema:
        if name not in schema.tasks:
            raise NotFoundError(f"task {name!r} is not registered")
        del schema.tasks[name]

"""The server's retraction and garbage-collection jobs: each request body is checked (keys, types,
names, a reason) before its job starts, so a bad one is a 400 and never a failed job."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..errors import ValidationError
from ..lake import Lake
from ..lifecycle import Selection, collect_garbage, retract
from ..lifecycle.retraction import check_reason

Work = Callable[[threading.Event], Any]
NAME_LISTS = ("providers", "datasets", "tasks", "variants", "hashes")
RETRACT_KEYS = {**{key: "a list of strings" for key in NAME_LISTS}, "upload_id": "a string",
                "reason": "a string", "user": "a string", "dry_run": "true or false", "force": "true or false"}
GC_KEYS = {"dry_run": "true or false"}
JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
              dict: "an object"}


def retraction_work(lake: Lake, body: Any, server_user: str) -> Work:
    """The job a `POST /retract` body asks for: its result is the retraction's record (its plan
    with `dry_run`). `user` names who asks (default: the user the server runs as)."""
    body = _checked(body, RETRACT_KEYS, "a retraction")
    selection = Selection.of(**{key: body.get(key) for key in (*NAME_LISTS, "upload_id")})
    reason = check_reason(body.get("reason"))
    user = body.get("user") or server_user
    dry_run, force = body.get("dry_run", False), body.get("force", False)
    return lambda _stop: retract(lake, selection, reason, user, dry_run, force).to_dict()


def garbage_work(lake: Lake, body: Any) -> Work:
    """The job a `POST /gc` body (none: `{}`) asks for: its result is the garbage report."""
    dry_run = _checked(body or {}, GC_KEYS, "a garbage collection").get("dry_run", False)
    return lambda _stop: collect_garbage(lake, dry_run).to_dict()


def _checked(body: Any, keys: dict[str, str], what: str) -> dict[str, Any]:
    """`body` if it is an object of known keys whose values have their types (null: not given)."""
    known = ", ".join(keys)
    if not isinstance(body, dict):
        raise ValidationError(f"the request body must be a JSON object; {what} takes {known}")
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise ValidationError(f"unknown key(s) {', '.join(unknown)}; {what} takes {known}")
    for key, value in body.items():
        if value is not None and not _has_type(value, keys[key]):
            raise ValidationError(f"`{key}` must be {keys[key]}, not {JSON_TYPES.get(type(value), 'that')}")
    return {key: value for key, value in body.items() if value is not None}


def _has_type(value: Any, kind: str) -> bool:
    if kind == "a list of strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, bool) if kind == "true or false" else isinstance(value, str)

"""The manifests of a published copy: `_manifests/<publish_id>.json` names every object of one
publish with its size and hash, and is written after all of them, so a manifest that exists
describes a complete copy. Readers use the newest (publish ids sort by time); `_manifests/latest`
names it too, for readers that cannot list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .target import Target

FOLDER = "_manifests"
LATEST = f"{FOLDER}/latest"
HASH_METADATA = "xxh3-128"  # the user metadata key an object's content hash is kept under
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """One object of a publish: its key, size and content hash (xxh3-128 hex)."""

    key: str
    size: int
    hash: str


def manifest_key(publish_id: str) -> str:
    return f"{FOLDER}/{publish_id}.json"


def manifest_keys(remote: dict[str, int]) -> list[str]:
    """The keys of the manifests in a listing, oldest first."""
    return sorted(k for k in remote if k.startswith(f"{FOLDER}/") and k.endswith(".json"))


def newest_manifest(fs: Any, target: Target, remote: dict[str, int]) -> dict[str, Entry]:
    """The objects the newest complete manifest names, by key ({} when the copy has none)."""
    keys = manifest_keys(remote)
    if not keys:
        return {}
    record = json.loads(fs.cat_file(target.path(keys[-1])))
    return {o["key"]: Entry(o["key"], o["size"], o["hash"]) for o in record["objects"]}


def write_manifest(fs: Any, target: Target, record: dict[str, Any]) -> str:
    """Write the manifest of a finished publish, then `latest`; the manifest's key."""
    key = manifest_key(record["publish_id"])
    text = json.dumps(record, ensure_ascii=False, indent=1) + "\n"
    fs.pipe_file(target.path(key), text.encode("utf-8"))
    fs.pipe_file(target.path(LATEST), (record["publish_id"] + "\n").encode("utf-8"))
    return key


def manifest_record(publish_id: str, started_at: str, completed_at: str, entries: list[Entry]) -> dict[str, Any]:
    return {"format": FORMAT, "publish_id": publish_id, "started_at": started_at, "completed_at": completed_at,
            "hash": "xxh3-128", "objects": [{"key": e.key, "size": e.size, "hash": e.hash} for e in entries]}

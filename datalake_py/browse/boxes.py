"""The boxes and polygons a label holds, in image pixels, to draw over its image with their text.

A task's `boxes` rule in config/schema.yaml says where they are: JSON paths evaluated by DuckDB,
so they read exactly as the search's `json_path`. Without a rule the common shapes are found at
any depth of the label: `bbox` (COCO `[x, y, w, h]` beside COCO keys, else `[x1, y1, x2, y2]`
when that reads as a box, else `[x, y, w, h]`), `box` / `bbox_xyxy` / `xyxy` / `boxes`
(`[x1, y1, x2, y2]`), objects with `x, y, w, h` and the like, and polygons under `points`,
`polygon`, `poly`, `quad` or `segmentation`. A shape's text is a string beside it (`text`,
`label`, ...). Labels are user data: whatever they hold, nothing raises, bad shapes are skipped.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import duckdb

from ..schema import BoxRule

Point = tuple[float, float]
Points = tuple[Point, ...]

TEXT_KEYS = ("text", "transcription", "label", "value", "category", "name", "key", "answer")
COCO_KEYS = frozenset({"category_id", "area", "image_id", "iscrowd"})
XYXY_KEYS = ("box", "bbox_xyxy", "xyxy")
POLYGON_KEYS = ("points", "polygon", "poly", "quad", "segmentation")
RECTANGLE_FIELDS = (  # objects that are a box, the first that matches: (their keys, the format)
    (("x", "y", "w", "h"), "xywh"),
    (("x", "y", "width", "height"), "xywh"),
    (("left", "top", "width", "height"), "xywh"),
    (("x1", "y1", "x2", "y2"), "xyxy"),
    (("xmin", "ymin", "xmax", "ymax"), "xyxy"),
)


@dataclass(frozen=True)
class Shape:
    """A box or polygon to draw: its corners in image pixels (a box: clockwise from top-left) and its text."""
    points: Points
    text: str | None


def find_shapes(label: Any, rule: BoxRule | None = None, limit: int = 1000) -> list[Shape]:
    """The shapes in `label`, a catalog cell (a JSON string, a dict or list; anything else has none),
    at most `limit`, in the label's order; `rule` is the task's `boxes` rule, None for the defaults."""
    if rule is not None and not isinstance(rule, BoxRule):
        raise TypeError(f"rule must be a BoxRule (a task's `boxes` rule) or None, not {type(rule).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be a whole number of shapes (int), not {type(limit).__name__}")
    if limit < 0:
        raise ValueError(f"limit must be 0 or more shapes; got {limit}")
    shapes = _ruled(label, rule) if rule else _found(label)
    return list(itertools.islice(shapes, limit))


# --- with a rule: JSON paths evaluated by DuckDB ---------------------------------------------

@functools.cache
def _json_db() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that only evaluates JSON paths; each call takes its own cursor (thread-safe)."""
    return duckdb.connect()


def _ruled(label: Any, rule: BoxRule) -> Iterator[Shape]:
    """Box i of `rule.path` with text i of `rule.text` (a box that is not one still takes its text's place)."""
    document = _json_text(label)
    if document is None:
        return
    with _json_db().cursor() as con:
        try:
            boxes = _selected(con, document, rule.path, lambda v: _points(v, rule.format) is not None)
            texts = _selected(con, document, rule.text, lambda v: False) if rule.text else []
        except duckdb.Error:  # not JSON (the rules were checked when config/schema.yaml was read)
            return
    for box, text in itertools.zip_longest(boxes, texts[:len(boxes)]):
        points = _points(box, rule.format)
        if points:
            yield Shape(points, _text(text))


def _json_text(label: Any) -> str | None:
    if isinstance(label, str):
        return label
    if isinstance(label, (bytes, bytearray)):
        return label.decode("utf-8", "replace")
    if isinstance(label, (dict, list)):
        try:
            return json.dumps(label, default=str)
        except (ValueError, RecursionError):
            return None
    return None


def _selected(con: duckdb.DuckDBPyConnection, document: str, path: str, is_one: Callable[[Any], bool]) -> list[Any]:
    """The values `path` selects in `document`: each one for a path with a wildcard; else the one
    value, or the items of the list it is unless `is_one(list)` (a path may select the list of boxes)."""
    value = con.execute("select json_extract(?::json, ?)", [document, path]).fetchone()[0]
    if value is None:
        return []
    if isinstance(value, list):
        return [json.loads(v) for v in value]
    value = json.loads(value)
    return value if isinstance(value, list) and not is_one(value) else [value]


def _points(value: Any, form: str) -> Points | None:
    if form == "polygon":
        return _polygon(value)
    box = _numbers(value, 4)
    if box is None:
        return None
    return _xyxy(*box) if form == "xyxy" else _xywh(*box)


# --- without a rule: the common shapes, anywhere in the label -------------------------------

def _found(label: Any) -> Iterator[Shape]:
    """The shapes of every object in the label, depth first in the label's order."""
    stack, seen = [_parsed(label)], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            text = _sibling_text(node)
            yield from (Shape(points, text) for points in _object_shapes(node))
            children = list(node.values())
        else:
            children = list(node)
        stack.extend(child for child in reversed(children) if isinstance(child, (dict, list, tuple)))


def _parsed(label: Any) -> dict | list | tuple:
    """The label's JSON objects and lists; an empty list when it holds none."""
    if isinstance(label, (str, bytes, bytearray)):
        try:
            label = json.loads(label)
        except (ValueError, RecursionError):
            return []
    return label if isinstance(label, (dict, list, tuple)) else []


def _object_shapes(node: dict) -> Iterator[Points]:
    """The shapes one JSON object is or holds under the keys the defaults know."""
    box = _numbers(node.get("bbox"), 4)
    if box:
        x1, y1, x2, y2 = box
        coco = not COCO_KEYS.isdisjoint(node)
        yield from _present(_xyxy(*box) if not coco and x2 > x1 and y2 > y1 else _xywh(*box))
    for key in XYXY_KEYS:
        yield from _present(_xyxy(*box) if (box := _numbers(node.get(key), 4)) else None)
    boxes = node.get("boxes")
    for item in boxes if isinstance(boxes, (list, tuple)) else []:
        yield from _present(_xyxy(*box) if (box := _numbers(item, 4)) else None)
    for keys, form in RECTANGLE_FIELDS:
        if all(key in node for key in keys):
            box = _numbers([node[key] for key in keys], 4)
            yield from _present(None if box is None else _xyxy(*box) if form == "xyxy" else _xywh(*box))
            break
    for key in POLYGON_KEYS:
        yield from _polygons(node.get(key))
    if node.get("shape_type") == "rectangle":  # LabelMe: two opposite corners under `points`
        corners = _pairs(node.get("points"))
        if corners and len(corners) == 2:
            (ax, ay), (bx, by) = corners
            yield from _present(_xyxy(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)))


def _polygons(value: Any) -> Iterator[Points]:
    """A polygon, or each polygon of a list of them (COCO `segmentation`)."""
    polygon = _polygon(value)
    if polygon:
        yield polygon
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _present(_polygon(item))


def _sibling_text(node: dict) -> str | None:
    for key in TEXT_KEYS:
        text = _text(node.get(key))
        if text is not None:
            return text
    return None


# --- shapes from numbers ------------------------------------------------------------------

def _present(points: Points | None) -> list[Points]:
    return [points] if points else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """`value` as `count` finite numbers, or None."""
    if not isinstance(value, (list, tuple)) or len(value) != count:
        return None
    found = tuple(_number(v) for v in value)
    return None if None in found else found


def _pairs(value: Any) -> list[Point] | None:
    """Points from `[[x, y], ...]`, `[{x, y}, ...]` or a flat `[x, y, x, y, ...]`, or None."""
    if not isinstance(value, (list, tuple)):
        return None
    flat = _numbers(value, len(value))
    if flat is not None:
        return list(zip(flat[0::2], flat[1::2])) if flat and len(flat) % 2 == 0 else None
    pairs = [_numbers([item.get("x"), item.get("y")] if isinstance(item, dict) else item, 2) for item in value]
    return None if not pairs or None in pairs else pairs


def _polygon(value: Any) -> Points | None:
    points = _pairs(value)
    return tuple(points) if points and len(points) >= 3 else None


def _xyxy(x1: float, y1: float, x2: float, y2: float) -> Points | None:
    """The corners of a box, clockwise from top-left; None when it has a negative size."""
    if x2 < x1 or y2 < y1:
        return None
    return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))


def _xywh(x: float, y: float, w: float, h: float) -> Points | None:
    if not (math.isfinite(x + w) and math.isfinite(y + h)):
        return None
    return _xyxy(x, y, x + w, y + h)


def _text(value: Any) -> str | None:
    """A string as it is, a number as its digits; anything else is no text."""
    if isinstance(value, str):
        return value
    return None if _number(value) is None else str(value)

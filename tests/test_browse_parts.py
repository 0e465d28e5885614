"""The gallery's parts: the boxes and polygons found in labels, and thumbnails cached by content hash."""

from __future__ import annotations

import io
import json
import shutil
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import xxhash
from PIL import Image

from datalake import ValidationError
from datalake.browse.boxes import Shape, find_shapes
from datalake.browse.thumbnails import THUMBNAIL_SIZE, thumbnail, thumbnail_path
from datalake.lake import Lake, asset_relpath
from datalake.schema import BoxRule, init_lake, load_schema

from conftest import process

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def box(x1: float, y1: float, x2: float, y2: float, text: str | None = None) -> Shape:
    """The shape of a box given by two corners: its four corners clockwise from top-left."""
    return Shape(((x1, y1), (x2, y1), (x2, y2), (x1, y2)), text)


# --- boxes found without a rule ----------------------------------------------------------------

def test_the_demo_label_gives_each_word_its_box():
    label = json.dumps({"elements": [{"text": "영수증", "bbox": [8, 8, 44, 28]},
                                     {"text": "total", "bbox": [8, 36, 68, 56]}]}, ensure_ascii=False)
    assert find_shapes(label) == [box(8, 8, 44, 28, "영수증"), box(8, 36, 68, 56, "total")]


def test_a_coco_annotation_is_x_y_width_height_with_its_polygons():
    label = {"annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 20, 30, 40],
                              "segmentation": [[10, 20, 40, 20, 40, 60], [0, 0, 5, 0, 5, 5, 0, 5]]}]}
    assert find_shapes(label) == [
        box(10, 20, 40, 60),
        Shape(((10, 20), (40, 20), (40, 60)), None),
        Shape(((0, 0), (5, 0), (5, 5), (0, 5)), None),
    ]


@pytest.mark.parametrize("item, expected", [
    ({"bbox": [10, 20, 5, 5]}, box(10, 20, 15, 25)),  # not x1 < x2: read as x, y, w, h
    ({"box": [1, 2, 3, 4]}, box(1, 2, 3, 4)),
    ({"bbox_xyxy": [1, 2, 3, 4]}, box(1, 2, 3, 4)),
    ({"xyxy": [1.5, 2, 3, 4.25]}, box(1.5, 2, 3, 4.25)),
    ({"x": 1, "y": 2, "w": 3, "h": 4}, box(1, 2, 4, 6)),
    ({"x": 1, "y": 2, "width": 3, "height": 4}, box(1, 2, 4, 6)),
    ({"left": 1, "top": 2, "width": 3, "height": 4}, box(1, 2, 4, 6)),
    ({"x1": 1, "y1": 2, "x2": 3, "y2": 4}, box(1, 2, 3, 4)),
    ({"xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}, box(1, 2, 3, 4)),
    ({"points": [[0, 0], [10, 0], [5, 8]]}, Shape(((0, 0), (10, 0), (5, 8)), None)),
    ({"polygon": [0, 0, 10, 0, 5, 8]}, Shape(((0, 0), (10, 0), (5, 8)), None)),
    ({"quad": [{"x": 0, "y": 0}, {"x": 9, "y": 0}, {"x": 9, "y": 9}, {"x": 0, "y": 9}]}, box(0, 0, 9, 9)),
    ({"poly": [[1, 1], [4, 1], [4, 3]], "transcription": "hello"}, Shape(((1, 1), (4, 1), (4, 3)), "hello")),
    ({"points": [[30, 40], [10, 20]], "shape_type": "rectangle", "label": "cat"}, box(10, 20, 30, 40, "cat")),
])
def test_each_common_shape_is_found(item, expected):
    assert find_shapes(json.dumps({"objects": [item]})) == [expected]


def test_a_list_of_boxes_and_texts_of_many_kinds():
    label = [{"boxes": [[0, 0, 2, 2], [1, 1, 3, 3]], "category": "table"},
             {"x": 0, "y": 0, "w": 1, "h": 1, "value": 7},
             {"x": 0, "y": 0, "w": 1, "h": 1, "name": {"not": "text"}, "answer": "yes"}]
    assert find_shapes(json.dumps(label)) == [box(0, 0, 2, 2, "table"), box(1, 1, 3, 3, "table"),
                                              box(0, 0, 1, 1, "7"), box(0, 0, 1, 1, "yes")]


def test_shapes_are_found_at_any_depth_in_the_labels_order():
    label: dict = {"bbox": [0, 0, 1, 1], "text": "top"}
    node = label
    for depth in range(200):
        node["child"] = {"pages": [{"text": f"at {depth}", "bbox": [depth, depth, depth + 1, depth + 1]}]}
        node = node["child"]
    shapes = find_shapes(json.dumps(label))
    assert [s.text for s in shapes] == ["top"] + [f"at {depth}" for depth in range(200)]
    assert shapes[-1] == box(199, 199, 200, 200, "at 199")
    assert len(find_shapes(json.dumps(label), limit=5)) == 5


@pytest.mark.parametrize("label", [
    None, 3.5, float("nan"), "", "{not json", "just words", "[1, 2, 3, 4]", '"a string"', b"\xff\xfe",
    "[" * 100_000 + "]" * 100_000,
    '{"bbox": [1, 2, 3]}', '{"bbox": [1, 2, 3, 4, 5]}', '{"bbox": ["1", "2", "3", "4"]}',
    '{"bbox": [NaN, 0, 1, 1]}', '{"bbox": [Infinity, 0, 1, 1]}', '{"bbox": [true, 0, 1, 1]}',
    '{"bbox": [1e308, 1e308, 1e308, 1e308], "iscrowd": 0}', '{"box": [5, 5, 1, 1]}', '{"x": 0, "y": 0, "w": -1, "h": 2}',
    '{"bbox": null, "boxes": "many", "points": [[0, 0], [1, 1]], "polygon": [0, 0, 1, 1, 2]}',
    '{"segmentation": {"counts": "abc", "size": [10, 10]}, "quad": [[0, 0], [1], [2, 2]]}',
])
def test_a_label_without_a_readable_shape_gives_none(label):
    assert find_shapes(label) == []


def test_wrong_arguments_are_named():
    with pytest.raises(TypeError, match="rule must be a BoxRule"):
        find_shapes("{}", rule={"path": "$.a"})
    with pytest.raises(TypeError, match="limit must be a whole number of shapes"):
        find_shapes("{}", limit="10")
    with pytest.raises(ValueError, match="limit must be 0 or more shapes; got -1"):
        find_shapes("{}", limit=-1)


# --- boxes found by a task's rule --------------------------------------------------------------

def test_a_rule_pairs_each_box_with_its_text():
    rule = BoxRule("$.words[*].b", "$.words[*].t", "xywh")
    label = {"words": [{"t": "a", "b": [1, 1, 2, 2]}, {"t": "skipped", "b": [1, 2]}, {"t": 3, "b": [0, 0, 1, 1]}],
             "bbox": [0, 0, 9, 9]}  # the defaults would find this one: the rule does not
    assert find_shapes(json.dumps(label), rule) == [box(1, 1, 3, 3, "a"), box(0, 0, 1, 1, "3")]
    assert find_shapes(label, rule) == find_shapes(json.dumps(label), rule)


@pytest.mark.parametrize("rule, label, expected", [
    (BoxRule("$.b", "$.t", "xyxy"), {"b": [[0, 0, 1, 1], [2, 2, 3, 3]], "t": ["x", "y"]},
     [box(0, 0, 1, 1, "x"), box(2, 2, 3, 3, "y")]),
    (BoxRule("$.b", "$.t", "xyxy"), {"b": [0, 0, 1, 1], "t": "only"}, [box(0, 0, 1, 1, "only")]),
    (BoxRule("$.b", None, "xyxy"), {"b": [[0, 0, 1, 1], [3, 3, 2, 2]]}, [box(0, 0, 1, 1)]),
    (BoxRule("$.regions[*].shape", "$.regions[*].id", "polygon"),
     {"regions": [{"id": 1, "shape": [[0, 0], [4, 0], [4, 4]]}, {"id": 2, "shape": [0, 0, 5, 0, 5, 5, 0, 5]}]},
     [Shape(((0, 0), (4, 0), (4, 4)), "1"), box(0, 0, 5, 5, "2")]),
    (BoxRule("$..bbox", None, "xyxy"), {"a": {"bbox": [0, 0, 1, 1]}, "b": [{"bbox": [1, 1, 2, 2]}]},
     [box(0, 0, 1, 1), box(1, 1, 2, 2)]),
    (BoxRule("$.missing", "$.t", "xyxy"), {"t": "x"}, []),
])
def test_a_rule_reads_the_json_paths_as_the_search_does(rule, label, expected):
    assert find_shapes(json.dumps(label), rule) == expected


@pytest.mark.parametrize("label", [None, 7, "{not json", "[1, NaN", '{"b": "text"}', '{"b": [1, 2, "x", 4]}'])
def test_a_rule_on_a_label_without_boxes_gives_none(label):
    assert find_shapes(label, BoxRule("$.b", "$.t", "xyxy")) == []


def test_a_task_rule_in_the_lake_finds_the_boxes_of_stored_rows(client, tmp_path):
    """The rule in config/schema.yaml: dbt builds the lake with it; stored rows give their boxes and thumbnails."""
    lake = client.lake
    lake.schema_path.write_text(lake.schema_path.read_text().replace(
        "  ocr:\n", "  ocr:\n    boxes: {path: '$.elements[*].bbox', text: '$.elements[*].text', format: xywh}\n"))
    label = {"elements": [{"text": "영수증", "bbox": [4, 4, 40, 20]}, {"text": "합계", "bbox": [4, 30, 20, 10]}]}
    client.upload_task(pd.DataFrame({"image": [jpeg_bytes(Image.new("RGB", (640, 320), "orange"))], "label": [label]}),
                       provider="test", dataset="docs", task="ocr", variant="v", meta={"lang": "ko", "src": "real"})
    (tmp_path / "doc.pdf").write_bytes(PDF)
    client.upload_raw(pd.DataFrame({"file_path": [str(tmp_path / "doc.pdf")]}), provider="test", dataset="docs")
    process(client)
    client.build_db()
    rules = load_schema(Lake(lake.root)).tasks
    rows = {row.task: row for row in client.search().itertuples()}
    assert find_shapes(rows["ocr"].label, rules["ocr"].boxes) == [box(4, 4, 44, 24, "영수증"), box(4, 30, 24, 40, "합계")]
    with Image.open(thumbnail(lake, rows["ocr"].hash, rows["ocr"].path)) as image:
        assert image.size == (256, 128)
    assert rows["raw"].path.endswith(".pdf") and thumbnail(lake, rows["raw"].hash, rows["raw"].path) is None


# --- thumbnails --------------------------------------------------------------------------------

def jpeg_bytes(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def store(lake: Lake, data: bytes, ext: str) -> tuple[str, str]:
    """Put `data` in the lake's store as processing does: (its hash, its path under assets/)."""
    digest = xxhash.xxh3_128_hexdigest(data)
    relpath = asset_relpath(digest, ext)
    (lake.assets / relpath).write_bytes(data)
    return digest, relpath


def cache_files(lake: Lake) -> list[str]:
    return sorted(str(p.relative_to(lake.cache)) for p in lake.cache.rglob("*") if p.is_file())


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return init_lake(tmp_path / "lake")


def test_a_jpeg_thumbnail_is_at_most_256_pixels_and_kept_by_hash(lake):
    digest, relpath = store(lake, jpeg_bytes(Image.new("RGB", (1200, 900), (200, 30, 30))), "jpg")
    made = thumbnail(lake, digest, relpath)
    assert made == thumbnail_path(lake, digest) == lake.root / "cache" / "thumbnails" / digest[:2] / f"{digest}.jpg"
    with Image.open(made) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (THUMBNAIL_SIZE, 192))
        red, green, blue = image.getpixel((128, 96))
        assert red > 180 and green < 60 and blue < 60


def test_a_small_image_keeps_its_size(lake):
    digest, relpath = store(lake, png_bytes(Image.new("L", (40, 10), 128)), "png")
    with Image.open(thumbnail(lake, digest, relpath)) as image:
        assert (image.mode, image.size) == ("RGB", (40, 10))


def test_transparency_becomes_white(lake):
    rgba = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    rgba.paste((0, 160, 0, 255), (150, 0, 300, 100))
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([0, 0, 0, 0, 0, 200])
    palette.paste(1, (50, 0, 100, 100))
    palette.info["transparency"] = 0
    for data in (png_bytes(rgba), png_bytes(palette)):
        digest, relpath = store(lake, data, "png")
        with Image.open(thumbnail(lake, digest, relpath)) as image:
            width, height = image.size
            assert min(image.getpixel((5, height // 2))) > 245  # the transparent half: white, not black
            assert max(image.getpixel((width - 5, height // 2))) < 250  # the opaque half keeps its colour


def test_a_photo_taken_sideways_comes_out_upright(lake):
    stored = Image.new("RGB", (600, 200), (220, 0, 0))  # as the camera stored it: red left, blue right
    stored.paste((0, 0, 220), (300, 0, 600, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    digest, relpath = store(lake, jpeg_bytes(stored, exif=exif.tobytes()), "jpg")
    with Image.open(thumbnail(lake, digest, relpath)) as image:
        assert image.size == (85, THUMBNAIL_SIZE)
        top, bottom = image.getpixel((42, 20)), image.getpixel((42, 236))
        assert top[0] > 180 and top[2] < 60 and bottom[2] > 180 and bottom[0] < 60


def bomb_png() -> bytes:
    """A tiny PNG whose header claims 100,000 x 100,000 pixels."""
    data = bytearray(png_bytes(Image.new("L", (1, 1))))
    header = b"IHDR" + struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[12:33] = header + struct.pack(">I", zlib.crc32(header))
    return bytes(data)


@pytest.mark.parametrize("data, ext", [
    (PDF, "pdf"),
    ("영수증 합계\n".encode(), "txt"),
    (jpeg_bytes(Image.new("RGB", (400, 300), "teal"))[:600], "jpg"),  # cut short
    (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "jpg"),  # not a JPEG after its first bytes
    (bomb_png(), "png"),
])
def test_an_asset_that_is_not_a_readable_image_has_no_thumbnail(lake, data, ext):
    digest, relpath = store(lake, data, ext)
    assert thumbnail(lake, digest, relpath) is None
    assert thumbnail(lake, digest, relpath) is None
    assert not thumbnail_path(lake, digest).exists()


def test_a_missing_asset_has_no_thumbnail_until_it_is_stored(lake):
    data = png_bytes(Image.new("RGB", (30, 30), "navy"))
    digest = xxhash.xxh3_128_hexdigest(data)
    assert thumbnail(lake, digest, asset_relpath(digest, "png")) is None
    store(lake, data, "png")
    assert thumbnail(lake, digest, asset_relpath(digest, "png")) == thumbnail_path(lake, digest)


def test_a_symlink_in_the_store_is_never_followed(lake, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = png_bytes(Image.new("RGB", (30, 30), "olive"))
    digest = xxhash.xxh3_128_hexdigest(data)
    relpath = asset_relpath(digest, "png")
    (outside / f"{digest}.png").write_bytes(data)
    (lake.assets / relpath).symlink_to(outside / f"{digest}.png")
    assert thumbnail(lake, digest, relpath) is None
    (lake.assets / relpath).unlink()
    shutil.rmtree(lake.assets / digest[:2])
    (lake.assets / digest[:2]).symlink_to(outside)  # the shard folder itself leads out of the lake
    assert thumbnail(lake, digest, relpath) is None
    assert cache_files(lake) == []


@pytest.mark.parametrize("digest, relpath", [
    ("not-a-hash", "no/not-a-hash.png"),
    ("../../etc/passwd", "../../etc/passwd"),
    ("A" * 32, "AA/" + "A" * 32 + ".png"),
])
def test_a_value_that_is_not_a_hash_is_refused(lake, digest, relpath):
    with pytest.raises(ValidationError, match="is not an asset hash"):
        thumbnail(lake, digest, relpath)
    with pytest.raises(ValidationError, match="is not an asset hash"):
        thumbnail_path(lake, digest)


@pytest.mark.parametrize("relpath", ["../../../etc/passwd", "{h2}/{other}.png", "{h2}/{digest}", "/{h2}/{digest}.png"])
def test_a_path_that_is_not_the_store_path_of_the_hash_is_refused(lake, relpath):
    digest, _ = store(lake, png_bytes(Image.new("RGB", (8, 8))), "png")
    relpath = relpath.format(h2=digest[:2], digest=digest, other="0" * 32)
    with pytest.raises(ValidationError, match=f"is not the store path of asset {digest}"):
        thumbnail(lake, digest, relpath)
    assert cache_files(lake) == []


def test_many_requests_for_one_thumbnail_at_once_make_one_file(lake):
    digest, relpath = store(lake, jpeg_bytes(Image.new("RGB", (2000, 1500), "purple")), "jpg")
    start = threading.Barrier(8)

    def ask(_: int) -> Path | None:
        start.wait()
        return thumbnail(lake, digest, relpath)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(ask, range(8)))
    assert made == [thumbnail_path(lake, digest)] * 8
    assert [f for f in cache_files(lake) if not f.endswith(".lock")] == [f"thumbnails/{digest[:2]}/{digest}.jpg"]
    with Image.open(made[0]) as image:
        assert image.size == (THUMBNAIL_SIZE, 192)


def test_a_deleted_cache_is_made_again(lake):
    digest, relpath = store(lake, jpeg_bytes(Image.new("RGB", (500, 500), "gold")), "jpg")
    first = thumbnail(lake, digest, relpath).read_bytes()
    shutil.rmtree(lake.cache)
    assert thumbnail(lake, digest, relpath).read_bytes() == first

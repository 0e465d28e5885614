"""The perceptual fingerprint on real image files: each kind of variant of a picture stays within
the default threshold of it, distinct pictures do not, and what is not an image gives none."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from datalake.curation import DEFAULT_THRESHOLD
from datalake.curation.fingerprint import distance, fingerprint


def picture(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo-like RGB picture, different for every seed: smooth random light at a few scales,
    a few shapes and a word drawn on it, and sensor-like noise."""
    rng = np.random.default_rng(seed)
    field = np.zeros((size[1], size[0], 3))
    for cells in (3, 6, 12):
        coarse = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
        field += np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float64) / 3
    image = Image.fromarray(field.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 60))
        w, h = rng.integers(30, 160, 2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + int(w), y + int(h)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw.text((int(rng.integers(10, size[0] // 2)), int(rng.integers(10, size[1] - 40))), f"photo {seed}",
              fill="white", font_size=28)
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, 6, (size[1], size[0], 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def crop5(image: Image.Image, edge: int) -> Image.Image:
    """The image less 5% at one edge: 0 right, 1 bottom, 2 left, 3 top."""
    w, h = image.size
    return image.crop([(0, 0, w - w // 20, h), (0, 0, w, h - h // 20), (w // 20, 0, w, h), (0, h // 20, w, h)][edge])


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def value(data: bytes) -> int:
    found = fingerprint(io.BytesIO(data))
    assert found is not None
    return found.value


VARIANTS = {
    "resized to 50%": lambda im: encoded(im.resize((im.width // 2, im.height // 2))),
    "resized to 150%": lambda im: encoded(im.resize((im.width * 3 // 2, im.height * 3 // 2))),
    "JPEG quality 50": lambda im: encoded(im, quality=50),
    "PNG": lambda im: encoded(im, "PNG"),
    "PNG to JPEG": lambda im: encoded(Image.open(io.BytesIO(encoded(im, "PNG"))), quality=85),
    "cropped by 5% at the right": lambda im: encoded(crop5(im, 0)),
    "cropped by 5% at the bottom": lambda im: encoded(crop5(im, 1)),
    "cropped by 5% at the left": lambda im: encoded(crop5(im, 2)),
    "cropped by 5% at the top": lambda im: encoded(crop5(im, 3)),
    "brightness +15%": lambda im: encoded(ImageEnhance.Brightness(im).enhance(1.15)),
    "brightness -15%": lambda im: encoded(ImageEnhance.Brightness(im).enhance(0.85)),
    "a 1-pixel border": lambda im: encoded(ImageOps.expand(im, border=1, fill="black")),
}


@pytest.mark.parametrize("kind", VARIANTS)
def test_every_kind_of_variant_is_within_the_default_threshold(kind):
    for seed in range(5):
        original = picture(seed)
        assert distance(value(encoded(original, quality=90)), value(VARIANTS[kind](original))) <= DEFAULT_THRESHOLD


def test_distinct_pictures_are_farther_apart_than_the_threshold():
    values = [value(encoded(picture(seed))) for seed in range(100, 140)]
    closest = min(distance(a, b) for i, a in enumerate(values) for b in values[i + 1:])
    assert closest > DEFAULT_THRESHOLD


def test_a_fingerprint_is_a_signed_64_bit_integer_with_the_image_size():
    found = fingerprint(io.BytesIO(encoded(picture(1), "PNG")))
    assert -2 ** 63 <= found.value < 2 ** 63 and (found.width, found.height) == (480, 360)
    assert distance(found.value, found.value) == 0 and distance(0, -1) == 64


def test_an_exif_rotated_jpeg_gives_its_upright_size_and_matches_the_turned_picture():
    original = picture(2)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    found = fingerprint(io.BytesIO(encoded(original, exif=exif.tobytes())))
    assert (found.width, found.height) == (360, 480)
    assert distance(found.value, value(encoded(original.transpose(Image.Transpose.ROTATE_270)))) <= DEFAULT_THRESHOLD


def test_a_transparent_png_is_fingerprinted_as_on_white():
    rgba = picture(3).convert("RGBA")
    mask = Image.new("L", rgba.size, 255)
    mask.paste(0, (0, 0, rgba.width // 2, rgba.height))  # the left half transparent
    rgba.putalpha(mask)
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    found = value(encoded(rgba, "PNG"))
    assert distance(found, value(encoded(on_white, quality=90))) <= DEFAULT_THRESHOLD
    assert distance(found, value(encoded(rgba.convert("RGB"), quality=90))) > DEFAULT_THRESHOLD  # alpha counts


def test_a_path_and_an_open_file_give_the_same_fingerprint(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(encoded(picture(5)))
    with path.open("rb") as source:
        assert fingerprint(path) == fingerprint(source) == fingerprint(io.BytesIO(path.read_bytes()))


def test_a_truncated_file_on_disk_gives_none(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(encoded(picture(6), "PNG")[:5000])
    assert fingerprint(path) is None


@pytest.mark.parametrize("data", [
    b"%PDF-1.4 not an image", b"plain text", b"", encoded(picture(4))[:400],
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
], ids=["pdf", "text", "empty", "truncated jpeg", "damaged png"])
def test_what_is_not_a_readable_image_gives_none(data):
    assert fingerprint(io.BytesIO(data)) is None


def test_a_decompression_bomb_gives_none():
    bomb = encoded(Image.new("L", (13000, 13000)), "PNG", optimize=True)  # 169 Mpx: over Pillow's limit
    assert fingerprint(io.BytesIO(bomb)) is None

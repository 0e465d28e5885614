"""The perceptual fingerprint on real image files: each kind of variant of a picture stays within
the default threshold of it, distinct pictures do not, and what is not an image gives none."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from datalake.curation.fingerprint import DEFAULT_THRESHOLD, distance, fingerprint


def picture(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo-like RGB picture: smooth random light at a few scales, different for every seed."""
    rng = np.random.default_rng(seed)
    field = np.zeros((size[1], size[0], 3))
    for cells in (3, 6, 12):
        coarse = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
        field += np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float64) / 3
    return Image.fromarray(field.clip(0, 255).astype(np.uint8))


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
    "brightness +15%": lambda im: encoded(ImageEnhance.Brightness(im).enhance(1.15)),
    "brightness -15%": lambda im: encoded(ImageEnhance.Brightness(im).enhance(0.85)),
    "a 1-pixel border": lambda im: encoded(ImageOps.expand(im, border=1, fill="black")),
}


@pytest.mark.parametrize("kind", VARIANTS)
def test_every_kind_of_variant_is_within_the_default_threshold(kind):
    for seed in range(5):
        original = picture(seed)
        assert distance(value(encoded(original, quality=90)), value(VARIANTS[kind](original))) <= DEFAULT_THRESHOLD


def test_a_crop_of_5_percent_is_within_a_wider_threshold():
    """A crop moves more bits than the other kinds: the default threshold finds 70% of them in
    bench/curation.py, a threshold of 14 (README, "Near-duplicates") finds 93% and these all."""
    for seed in range(12):
        original = picture(seed)
        cropped = encoded(original.crop((0, 0, original.width, original.height - original.height // 20)))
        assert distance(value(encoded(original, quality=90)), value(cropped)) <= 14


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
    rgba.putalpha(Image.new("L", rgba.size, 255).point(lambda _: 255))
    mask = Image.new("L", rgba.size, 255)
    mask.paste(0, (0, 0, 40, 40))
    rgba.putalpha(mask)
    flattened = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    assert distance(value(encoded(rgba, "PNG")), value(encoded(flattened, quality=90))) <= DEFAULT_THRESHOLD


@pytest.mark.parametrize("data", [
    b"%PDF-1.4 not an image", b"plain text", b"", encoded(picture(4))[:400],
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
], ids=["pdf", "text", "empty", "truncated jpeg", "damaged png"])
def test_what_is_not_a_readable_image_gives_none(data):
    assert fingerprint(io.BytesIO(data)) is None


def test_a_decompression_bomb_gives_none():
    bomb = encoded(Image.new("L", (13000, 13000)), "PNG", optimize=True)  # 169 Mpx: over Pillow's limit
    assert fingerprint(io.BytesIO(bomb)) is None

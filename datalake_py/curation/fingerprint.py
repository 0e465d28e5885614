"""Perceptual fingerprints: a 64-bit hash of what an image looks like, for finding near-duplicates.

The method is the DCT hash (pHash): the image in grey, shrunk to 32x32, transformed by a 2-D DCT;
each of the 64 lowest frequencies (8x8, the constant term left out and the next one taken) gives
one bit, set when it is above their median. Resizing, re-encoding, format changes, brightness and
a thin border move a few bits; two different photos differ in about half. JPEGs are decoded at
reduced scale (1/2 to 1/8), since 32x32 is all the hash needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..browse.thumbnails import FORMATS  # the formats decoded: Pillow's own decoders only
from ..errors import storage_problem

FINGERPRINT_BITS = 64
DEFAULT_THRESHOLD = 10  # Hamming distance at or under which two images are near-duplicates
SIDE = 32  # the grey image the DCT reads
LOW = 8  # the DCT's lowest LOW x LOW frequencies give the bits


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix of size n: `m @ x` transforms the columns of x."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2)
    return m


DCT = _dct_matrix(SIDE)[:LOW + 1]  # only the low frequencies are ever used


@dataclass(frozen=True)
class Fingerprint:
    value: int  # the 64 bits as a signed int64, so SQL engines compute bit_count(xor(a, b))
    width: int  # the image's own size, upright (EXIF orientation applied)
    height: int


def fingerprint(source: BinaryIO) -> Fingerprint | None:
    """The fingerprint of the image `source` holds; None when it holds no image Pillow reads (a PDF,
    text, a damaged or truncated file, a decompression bomb)."""
    try:
        with Image.open(source, formats=FORMATS) as image:
            if Image.MAX_IMAGE_PIXELS and image.width * image.height > Image.MAX_IMAGE_PIXELS:
                return None
            upright = _upright_size(image)
            image.draft("L", (SIDE * 4, SIDE * 4))
            grey = ImageOps.exif_transpose(_flattened(image).convert("L"))
            shrink = Image.Resampling.BOX if min(grey.size) >= SIDE else Image.Resampling.BILINEAR
            small = grey.resize((SIDE, SIDE), shrink)
    except Exception as exc:  # Pillow reports damaged files with errors of many kinds
        if storage_problem(exc):
            raise
        return None
    return Fingerprint(_bits(np.asarray(small, dtype=np.float64)), *upright)


def distance(a: int, b: int) -> int:
    """The number of bits in which two fingerprints differ."""
    return ((a ^ b) & (2 ** FINGERPRINT_BITS - 1)).bit_count()


def _bits(pixels: np.ndarray) -> int:
    low = (DCT @ pixels @ DCT.T)[:LOW, 1:LOW + 1]  # the constant term says only how bright it is
    bits = (low > np.median(low)).flatten()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - 2 ** 64 if value >= 2 ** 63 else value


def _flattened(image: Image.Image) -> Image.Image:
    """The image onto white where it is transparent, so a transparent PNG and its JPEG agree."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(white, rgba)
    return image


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The image's size as shown: width and height swapped when its EXIF orientation turns it."""
    orientation = image.getexif().get(0x0112, 1)
    return (image.height, image.width) if orientation in (5, 6, 7, 8) else (image.width, image.height)

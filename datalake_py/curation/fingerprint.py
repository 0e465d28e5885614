"""Perceptual fingerprints: a 64-bit hash of what an image looks like, for finding near-duplicates.

The method is the DCT hash (pHash): the image in grey, shrunk to 32x32, transformed by a 2-D DCT;
each of its 64 lowest frequencies (the 8x8 square, the constant term left out and the next
vertical one taken instead) gives one bit, set when it is above their median. Resizing,
re-encoding, format changes, brightness, a thin border and a crop of 5% at one edge move a few
bits; two different photos differ in about half. bench/curation.py measured it against a
difference hash, an average hash, a Haar wavelet hash and other choices of frequencies on real
photos (docs/benchmarks.md): it finds the most variants with the fewest chance pairs.
JPEGs are decoded at reduced scale (1/2 to 1/4 for a 640 px photo), since 32x32 is all the hash
needs; a coarser decode (1/8) loses half-size copies and thin borders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..images import on_white, read_image, rgb_or_rgba

FINGERPRINT_BITS = 64
SIDE = 32  # the grey image the DCT reads
LOW = 8  # the DCT's lowest LOW x LOW frequencies give the bits
DECODE = SIDE * 4  # a JPEG is decoded at the smallest scale at least this many pixels on each side


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


def fingerprint(source: Path | BinaryIO) -> Fingerprint | None:
    """The fingerprint of the image file `source` (a path, or a binary file open on one); None when
    it holds no image Pillow reads (a PDF, text, a damaged or truncated file, a decompression bomb)."""
    return read_image(source, _fingerprint_of)


def _fingerprint_of(image: Image.Image) -> Fingerprint:
    upright = _upright_size(image)
    image.draft("L", (DECODE, DECODE))
    ImageOps.exif_transpose(image, in_place=True)
    grey = on_white(rgb_or_rgba(image)).convert("L")
    shrink = Image.Resampling.BOX if min(grey.size) >= SIDE else Image.Resampling.BILINEAR
    small = grey.resize((SIDE, SIDE), shrink)
    return Fingerprint(_bits(np.asarray(small, dtype=np.float64)), *upright)


def distance(a: int, b: int) -> int:
    """The number of bits in which two fingerprints differ."""
    return ((a ^ b) & (2 ** FINGERPRINT_BITS - 1)).bit_count()


def _bits(pixels: np.ndarray) -> int:
    """The 64 bits of a SIDE x SIDE grey image, as a signed 64-bit integer."""
    freq = DCT @ pixels @ DCT.T
    low = np.append(freq[:LOW, :LOW].flatten()[1:], freq[LOW, 0])  # the constant term says only how bright it is
    return int.from_bytes(np.packbits(low > np.median(low)).tobytes(), "big", signed=True)


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The image's size as shown: width and height swapped when its EXIF orientation turns it."""
    orientation = image.getexif().get(0x0112, 1)
    return (image.height, image.width) if orientation in (5, 6, 7, 8) else (image.width, image.height)

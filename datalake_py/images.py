"""Reading the lake's images with Pillow, the same way wherever they are read (thumbnails,
fingerprints): only Pillow's own decoders, never a decompression bomb, transparency onto white."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

from PIL import Image

from .errors import storage_problem

# The formats read, all decoded by Pillow itself (never EPS or the like, which run other programs).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "TGA", "ICO")

T = TypeVar("T")


def read_image(source: Path | BinaryIO, use: Callable[[Image.Image], T]) -> T | None:
    """What `use` makes of the image in `source` (a path, or a binary file open on one); None when
    it holds no image Pillow reads (a PDF, text, a damaged or truncated file, a decompression bomb).
    A storage failure (a full disk, an I/O error) is raised, not taken for a bad image."""
    try:
        with Image.open(source, formats=FORMATS) as image:
            if Image.MAX_IMAGE_PIXELS and image.width * image.height > Image.MAX_IMAGE_PIXELS:
                return None  # Pillow itself refuses only twice as many pixels, in open
            return use(image)
    except Exception as exc:  # Pillow reports damaged files with errors of many kinds
        if storage_problem(exc):
            raise
        return None


def rgb_or_rgba(image: Image.Image) -> Image.Image:
    """`image` in RGBA when it has transparency (alpha or a transparent palette entry), else in RGB."""
    transparent = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    mode = "RGBA" if transparent else "RGB"
    return image if image.mode == mode else image.convert(mode)


def on_white(image: Image.Image) -> Image.Image:
    """An RGBA image flattened onto white (as a viewer shows it); RGB as it is."""
    if image.mode != "RGBA":
        return image
    white = Image.new("RGB", image.size, "white")
    white.paste(image, mask=image.getchannel("A"))
    return white

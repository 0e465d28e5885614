"""Thumbnails of the lake's images, made from the stored bytes with Pillow and cached by content hash.

A thumbnail is `cache/thumbnails/ab/<hash>.jpg` (RGB JPEG, longest side THUMBNAIL_SIZE, upright):
the cache folder is made on demand and deleting it loses nothing. An asset Pillow cannot read as
an image (a PDF, text, a damaged file, a decompression bomb) leaves an empty `<hash>.none` there
instead, so asking again costs a file check: a hash always names the same bytes. Store files are
reached as validation reaches them: only at the store path of their hash, never through a link.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from ..catalog.validation import MissingAsset, StoreFiles, UnsafeAsset, asset_file
from ..errors import ValidationError, storage_errors
from ..fs import file_lock, write_bytes_atomic
from ..images import on_white, read_image, rgb_or_rgba
from ..lake import Lake, check_hash

THUMBNAIL_SIZE = 256  # longest side, px
QUALITY = 80
NOT_AN_IMAGE = ".none"  # the suffix of the marker left for an asset that has no thumbnail
READ_BUFFER = 64 * 1024  # Pillow reads image headers in small pieces


def thumbnail_path(lake: Lake, digest: str) -> Path:
    """Where the thumbnail of the asset `digest` is kept (whether or not it is made yet)."""
    check_hash(digest)
    return lake.cache / "thumbnails" / digest[:2] / f"{digest}.jpg"


def thumbnail(lake: Lake, digest: str, relpath: str) -> Path | None:
    """The cached thumbnail of the asset `digest` stored at assets/<relpath>, made (atomically) if missing;
    None when the asset is not an image Pillow can read (a PDF, text, a damaged file), or is missing
    from the store or reached through a symlink there (never followed, and not remembered: it may be fixed).
    """
    path = thumbnail_path(lake, digest)
    if asset_file(lake, digest, relpath) is None:
        raise ValidationError(f"{relpath!r} is not the store path of asset {digest} (ab/<hash>.<ext>)")
    marker = path.with_suffix(NOT_AN_IMAGE)
    if _is_file(path):
        return path
    if _is_file(marker):
        return None
    store = StoreFiles(lake)
    with storage_errors(f"making the thumbnail of asset {digest}"):
        try:
            _, source = store.open(digest, relpath)
        except (MissingAsset, UnsafeAsset):
            return None
        except OSError as exc:
            raise store.unreadable(relpath, exc) from None
        with source:
            data = _thumbnail_bytes(io.BufferedReader(source, READ_BUFFER))
        with file_lock(lake.cache / "thumbnails" / ".lock"):  # writers of a file share its temporary name
            write_bytes_atomic(path if data else marker, data or b"")
    return path if data else None


def _is_file(path: Path) -> bool:
    """Whether `path` is a regular file (a symlink is not: it is replaced when the thumbnail is made)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _thumbnail_bytes(source: BinaryIO) -> bytes | None:
    """The JPEG thumbnail of the image `source` holds, or None when it holds no image Pillow reads."""
    return read_image(source, _thumbnail_of)


def _thumbnail_of(image: Image.Image) -> bytes:
    """An upright RGB JPEG of `image`, its longest side THUMBNAIL_SIZE."""
    image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # a JPEG is decoded at 1/2 to 1/8 scale
    small = rgb_or_rgba(image)
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    small = on_white(ImageOps.exif_transpose(small))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()

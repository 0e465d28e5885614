"""The content-addressed asset store: hashing, header probing and staging of asset bytes.

An asset is stored once per distinct content under `assets/<h[0:2]>/<h[2:4]>/<h>.<ext>`, where
h is the xxh3-128 hex digest of its exact bytes. Images are identified from their header only:
never decoded, never re-encoded.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import xxhash
from PIL import Image, UnidentifiedImageError

from .lake import EXT_PATTERN, Lake, asset_relpath

IMAGE_EXTS = {"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "ico", "jp2", "heic", "avif"}
FORMAT_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
              "TIFF": "tif", "ICO": "ico", "JPEG2000": "jp2"}
WHOLE_READ_LIMIT = 32 * 1024 * 1024
CHUNK = 8 * 1024 * 1024


class AssetProblem(Exception):
    """One asset that cannot be stored: a corrupt image or a missing file."""


@dataclass(frozen=True)
class AssetInfo:
    digest: str
    ext: str
    kind: str  # "image" or "file"
    size: int
    width: int | None = None
    height: int | None = None

    @property
    def relpath(self) -> str:
        return asset_relpath(self.digest, self.ext)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _probe_png_jpeg(head: bytes) -> tuple[str, int, int] | None:
    """The two most common formats read straight from their header bytes (no Pillow call)."""
    if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return ("png", width, height) if width and height else None
    if head[:3] != b"\xff\xd8\xff":
        return None
    i = 2
    while i + 9 <= len(head) and head[i] == 0xFF:
        marker = head[i + 1]
        if marker in JPEG_SOF:
            height, width = struct.unpack(">HH", head[i + 5:i + 9])
            return ("jpg", width, height) if width and height else None
        if marker == 0xFF:
            i += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
        else:
            i += 2 + struct.unpack(">H", head[i + 2:i + 4])[0]
    return None


def probe_image(head: bytes) -> tuple[str, int, int] | None:
    """(ext, width, height) read from an image header, or None when the bytes are not an image."""
    fast = _probe_png_jpeg(head)
    if fast:
        return fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(head)) as im:
                fmt, (width, height) = im.format or "", im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return FORMAT_EXT.get(fmt, fmt.lower() or "img"), width, height


def file_ext(name: str | None, head: bytes) -> str:
    """The extension of a non-image file: its own name's when sane, else sniffed, else `bin`."""
    suffix = Path(name).suffix.lower().lstrip(".") if name else ""
    if EXT_PATTERN.fullmatch(suffix):
        return suffix
    if head.startswith(b"%PDF"):
        return "pdf"
    return "bin"


def describe(head: bytes, digest: str, size: int, name: str | None, must_be_image: bool) -> AssetInfo:
    """Classify an asset from its first bytes; raise AssetProblem for an unreadable image."""
    probed = probe_image(head)
    if probed:
        ext, width, height = probed
        return AssetInfo(digest, ext, "image", size, width, height)
    suffix = Path(name).suffix.lower().lstrip(".") if name else ""
    if must_be_image or suffix in IMAGE_EXTS:
        label = f"{name!r}" if name else f"{size} bytes"
        raise AssetProblem(f"image header is not readable ({label}): the image is corrupt or not an image")
    return AssetInfo(digest, file_ext(name, head), "file", size)


class AssetStore:
    """Looks assets up in the lake's store, caching folder listings."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self._listings: dict[str, dict[str, str]] = {}
        self._tops = set(os.listdir(lake.assets)) if lake.assets.is_dir() else set()

    def find(self, digest: str) -> str | None:
        """The relative path of the stored asset with this digest, or None."""
        shard = f"{digest[0:2]}/{digest[2:4]}"
        listing = self._listings.get(shard)
        if listing is None:
            try:
                names = os.listdir(self.lake.assets / shard) if digest[0:2] in self._tops else []
            except FileNotFoundError:
                names = []
            listing = {n.split(".", 1)[0]: f"{shard}/{n}" for n in names if not n.startswith(".")}
            self._listings[shard] = listing
        return listing.get(digest)


class AssetStager:
    """Puts the bytes of an upload's new assets into its staging folder, one file per distinct content."""

    def __init__(self, store: AssetStore, folder: Path):
        self.store = store
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._shards: set[str] = set()
        self.seen: dict[str, AssetInfo] = {}
        self._lock = threading.Lock()

    def _claim(self, info: AssetInfo) -> bool:
        """True if this is the first time the upload sees this content and the lake lacks it."""
        with self._lock:
            if info.digest in self.seen:
                return False
            self.seen[info.digest] = info
        return self.store.find(info.digest) is None

    def put_bytes(self, data: bytes, name: str | None, must_be_image: bool) -> AssetInfo:
        info = describe(data, xxhash.xxh3_128_hexdigest(data), len(data), name, must_be_image)
        if self._claim(info):
            self._staged_path(info).write_bytes(data)
        return info

    def _staged_path(self, info: AssetInfo) -> Path:
        """`<folder>/<h[0:2]>/<hash>.<ext>`: writers spread over folders instead of contending on one."""
        shard = info.digest[0:2]
        if shard not in self._shards:
            (self.folder / shard).mkdir(exist_ok=True)
            self._shards.add(shard)
        return self.folder / shard / f"{info.digest}.{info.ext}"

    def put_file(self, path: Path, must_be_image: bool) -> AssetInfo:
        try:
            size = path.stat().st_size
            if size <= WHOLE_READ_LIMIT:
                return self.put_bytes(path.read_bytes(), path.name, must_be_image)
            return self._put_large_file(path, size, must_be_image)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise AssetProblem(f"file not found: {path}") from None
        except PermissionError:
            raise AssetProblem(f"file not readable (permission denied): {path}") from None

    def _put_large_file(self, path: Path, size: int, must_be_image: bool) -> AssetInfo:
        hasher = xxhash.xxh3_128()
        tmp = self.folder / f".{threading.get_ident()}.partial"
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            head = src.read(CHUNK)
            chunk = head
            while chunk:
                hasher.update(chunk)
                dst.write(chunk)
                chunk = src.read(CHUNK)
        try:
            info = describe(head, hasher.hexdigest(), size, path.name, must_be_image)
        except AssetProblem:
            tmp.unlink()
            raise
        if self._claim(info):
            os.replace(tmp, self._staged_path(info))
        else:
            tmp.unlink()
        return info

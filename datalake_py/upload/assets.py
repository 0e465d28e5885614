"""The content-addressed asset store: hashing, header probing, lookup, and writing new asset bytes.

An asset is stored once per distinct content and type under `assets/<h[0:2]>/<h>.<ext>`, where
h is the xxh3-128 hex digest of its exact bytes (an image's type comes from its bytes, another
file's from its name). Images are identified from their header only:
never decoded, never re-encoded.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import struct
import warnings
from pathlib import Path
from typing import Any, NamedTuple, Union

import xxhash

from ..errors import DatalakeError, ValidationError
from ..fs import LinkRefused, NotRegularFile, open_regular
from ..lake import asset_relpath, check_hash


IMAGE_EXTS = {"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "ico", "jp2", "heic", "avif"}
FORMAT_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
              "TIFF": "tif", "ICO": "ico", "JPEG2000": "jp2"}
MAX_SIDE = 2**31 - 1  # pixels; a larger side is a corrupt header
WHOLE_READ_LIMIT = 32 * 1024 * 1024
CHUNK = 8 * 1024 * 1024
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
EXT_PATTERN = re.compile(r"[a-z0-9]{1,10}")


class AssetProblem(Exception):
    """One asset that cannot be stored: a corrupt image or a missing file."""


class AssetInfo(NamedTuple):
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
    """(ext, width, height) read from an image header, or None when the bytes are not an image.
    AssetProblem for a header whose size cannot be true."""
    probed = _probe_png_jpeg(head) or _probe_other(head)
    if probed and max(probed[1], probed[2]) > MAX_SIDE:
        raise AssetProblem(f"image header claims {probed[1]}x{probed[2]} px: the image is corrupt")
    return probed


def _probe_other(head: bytes) -> tuple[str, int, int] | None:
    """Formats other than PNG and JPEG, from Pillow's reading of the header."""
    from PIL import Image, UnidentifiedImageError  # here: worker processes rarely need it

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
    """Looks assets up in the lake's store, never through a symbolic link."""

    def __init__(self, root: str | Path):
        self.root = str(root)  # the lake's assets/ folder
        self._listings: dict[str, dict[str, str]] = {}  # `ab`: {hash: relative path}
        self._checked: set[str] = set()  # store folders known to be real folders

    def holds(self, digest: str, ext: str) -> bool:
        """Whether the store holds this content as this type: one status call, however large the store."""
        path = f"{self.root}/{asset_relpath(digest, ext)}"
        if digest[0:2] not in self._checked:
            _check_real_folder(f"{self.root}/{digest[0:2]}")
            self._checked.add(digest[0:2])
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(mode):
            raise store_link_error(path)
        return True

    def find(self, digest: str) -> str | None:
        """The relative path of the stored asset with this digest whatever its type, or None; lists
        its store folder once (for uploads that name assets by hash only)."""
        shard = digest[0:2]
        if shard not in self._listings:
            try:
                names = real_folder_names(f"{self.root}/{shard}")
            except FileNotFoundError:
                names = []
            self._listings[shard] = {name.split(".", 1)[0]: f"{shard}/{name}" for name in names}
        return self._listings[shard].get(digest)


def store_link_error(path: str) -> DatalakeError:
    """The store holds a symbolic link, which datalake never follows."""
    return DatalakeError(f"the asset store holds a symbolic link at {path}; datalake never follows links in "
                         "its store: remove it (`datalake db validate` lists them), then upload again")


def _check_real_folder(folder: str) -> None:
    """An error if a store folder is a link (a missing one is made when an asset is stored in it)."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise store_link_error(folder)


def real_folder_names(folder: str | Path) -> list[str]:
    """The names in a store folder; an error if the folder or anything in it is a link."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise store_link_error(folder) from None
        raise
    try:
        with os.scandir(fd) as entries:
            names = []
            for entry in entries:
                if entry.is_symlink():
                    raise store_link_error(f"{folder}/{entry.name}")
                names.append(entry.name)
            return names
    finally:
        os.close(fd)


CellAsset = Union[AssetInfo, str, None]  # a cell's asset facts, its problem as text, or None when empty


class AssetWriter:
    """A worker (see `workers`) that reads an upload's asset cells and writes the bytes of assets
    the lake lacks to `<new>/<hash>.<ext>`, in the upload's own folder; processing moves them into
    the store. Called with cells of `mode` "file" (paths, relative to `base`) or "image" (bytes or
    Hugging Face Image structs, and paths of other files among rows out of the lake); gives a
    `CellAsset` per cell."""

    def __init__(self, store_root: str, new: str, mode: str):
        self.store = AssetStore(store_root)
        self.new = new
        self.mode = mode
        self.met: set[str] = set()  # store paths of the assets this worker met
        self._linked: dict[str, bool] = {}  # source folder: whether a symbolic link leads to it

    def __call__(self, cells: list[Any], base: str) -> list[CellAsset]:
        out: list[CellAsset] = []
        for cell in cells:
            try:
                out.append(self._asset(cell, base))
            except AssetProblem as exc:
                out.append(str(exc))
        return out

    def _asset(self, cell: Any, base: str) -> AssetInfo | None:
        if cell is None:
            return None
        if self.mode == "file":
            return self._from_file(self._file_path(base, cell), must_be_image=False)
        if isinstance(cell, dict):
            if cell.get("bytes") is not None:
                return self._from_bytes(cell["bytes"], cell.get("path"), must_be_image=True)
            if cell.get("path"):
                return self._from_file(self._file_path(base, cell["path"]), must_be_image=True)
            return None
        if isinstance(cell, str):  # a file that is no image, beside the images of rows out of the lake
            return self._from_file(self._file_path(base, cell), must_be_image=False)
        return self._from_bytes(cell, None, must_be_image=True)

    def _file_path(self, base: str, cell: str) -> str:
        """The file a path cell names: relative ones under `base` (a real path), never through a
        symbolic link below it; AssetProblem otherwise."""
        given = os.path.expanduser(cell)
        if os.path.isabs(given):
            return given
        path = os.path.normpath(os.path.join(base, given))
        folder = os.path.dirname(path)
        linked = self._linked.get(folder)
        if linked is None:
            linked = self._linked[folder] = os.path.realpath(folder) != folder
        if linked:
            raise AssetProblem(f"{cell} is reached through a symbolic link in {folder}; datalake reads regular "
                               "files only: give the path of the file itself")
        return path

    def _from_bytes(self, data: bytes, name: str | None, must_be_image: bool) -> AssetInfo:
        info = describe(data, xxhash.xxh3_128_hexdigest(data), len(data), name, must_be_image)
        if self._is_new(info):
            try:
                fd = os.open(f"{self.new}/{info.digest}.{info.ext}", NEW_FILE_FLAGS, 0o644)
            except FileExistsError:  # another worker of the upload wrote it
                return info
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        return info

    def _from_file(self, path: str, must_be_image: bool) -> AssetInfo:
        fd, size = open_regular_file(path)
        try:
            if size > WHOLE_READ_LIMIT:
                return self._copy_large_file(fd, path, size, must_be_image)
            data = _read_all(fd)
        finally:
            os.close(fd)
        return self._from_bytes(data, os.path.basename(path), must_be_image)

    def _is_new(self, info: AssetInfo) -> bool:
        """True if this worker meets this content (as this type) for the first time and the lake lacks it."""
        if info.relpath in self.met:
            return False
        self.met.add(info.relpath)
        return not self.store.holds(info.digest, info.ext)

    def _copy_large_file(self, src: int, path: str, size: int, must_be_image: bool) -> AssetInfo:
        """Copy while hashing (the name is known only at the end), then name the copy."""
        hasher = xxhash.xxh3_128()
        partial = f"{os.path.dirname(self.new)}/.{os.getpid()}.partial"
        dst = os.open(partial, WRITE_FLAGS, 0o644)
        try:
            head = chunk = os.read(src, CHUNK)
            while chunk:
                hasher.update(chunk)
                write_all(dst, chunk)
                chunk = os.read(src, CHUNK)
        finally:
            os.close(dst)
        try:
            info = describe(head, hasher.hexdigest(), size, os.path.basename(path), must_be_image)
            if self._is_new(info):
                os.replace(partial, f"{self.new}/{info.digest}.{info.ext}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return info


class StoreLookup:
    """A worker like `AssetWriter` for the hashes a task upload names: finds their assets in the
    store (their size is not looked up: 0) and writes nothing."""

    def __init__(self, store_root: str):
        self.store = AssetStore(store_root)

    def __call__(self, cells: list[Any], base: str) -> list[CellAsset]:
        return [None if digest is None else self._find(digest) for digest in cells]

    def _find(self, digest: Any) -> CellAsset:
        try:
            relpath = self.store.find(check_hash(digest))
        except ValidationError as exc:
            return str(exc)
        if relpath is None:
            return (f"hash {digest} is not in the lake's asset store; upload the data that carries it first, "
                    "or give the asset bytes instead of a hash")
        ext = relpath.rsplit(".", 1)[1]
        return AssetInfo(digest, ext, "image" if ext in IMAGE_EXTS else "file", 0)


SYSTEM_FOLDERS = ("/proc", "/sys")
NOT_REGULAR = "not a regular file (a folder, device, FIFO, socket or system file)"


def _system_devices() -> set[int]:
    """The devices of the kernel's own file systems, whose 'files' are views of the system."""
    devices = set()
    for folder in SYSTEM_FOLDERS:
        with contextlib.suppress(OSError):
            devices.add(os.stat(folder).st_dev)
    return devices


SYSTEM_DEVICES = _system_devices()


def open_regular_file(path: str) -> tuple[int, int]:
    """A descriptor of `path` and its size if it is a regular file, not a system file, reached
    without a symbolic link at its end; AssetProblem naming what it is otherwise."""
    try:
        fd, info = open_regular(path)
    except FileNotFoundError:
        raise AssetProblem(f"file not found: {path}") from None
    except PermissionError:
        raise AssetProblem(f"file not readable (permission denied): {path}") from None
    except LinkRefused:
        raise AssetProblem(f"{path} is a symbolic link; datalake reads regular files only: give the "
                           "path of the file itself") from None
    except OSError as exc:
        if isinstance(exc, (NotRegularFile, NotADirectoryError)) or exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):
            raise AssetProblem(f"{NOT_REGULAR}: {path}") from None  # ENXIO, EOPNOTSUPP: a socket
        raise
    if info.st_dev in SYSTEM_DEVICES:
        os.close(fd)
        raise AssetProblem(f"{NOT_REGULAR}: {path}")
    return fd, info.st_size


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

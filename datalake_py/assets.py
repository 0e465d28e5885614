"""The content-addressed asset store: hashing, header probing and staging of asset bytes.

An asset is stored once per distinct content under `assets/<h[0:2]>/<h[2:4]>/<h>.<ext>`, where
h is the xxh3-128 hex digest of its exact bytes. Images are identified from their header only:
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
from typing import Any, NamedTuple, Sequence

import xxhash

from .errors import DatalakeError


IMAGE_EXTS = {"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "ico", "jp2", "heic", "avif"}
FORMAT_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
              "TIFF": "tif", "ICO": "ico", "JPEG2000": "jp2"}
MAX_SIDE = 2**31 - 1  # pixels; a larger side is a corrupt header
WHOLE_READ_LIMIT = 32 * 1024 * 1024
CHUNK = 8 * 1024 * 1024
GROUP_BYTES = 16 * 1024 * 1024  # new asset bytes held before they are journalled and written
JOURNAL_FILE = "assets.journal"
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
EXT_PATTERN = re.compile(r"[a-z0-9]{1,10}")


def asset_relpath(digest: str, ext: str) -> str:
    """Where an asset lives, relative to assets/: `ab/cd/<hash>.<ext>`."""
    return f"{digest[0:2]}/{digest[2:4]}/{digest}.{ext}"


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


class StagedCells(NamedTuple):
    """What staging a list of cells gave, as columns, so that an answer from a staging child is a
    few lists whatever its length (quick to pickle, and no object per cell for the collector).

    For each cell its asset's hash and store path (both None for an empty cell or a problem);
    the problems as text by cell index; and the facts of each asset met there for the first
    time by this stager, as plain tuples in the order of `AssetInfo`.
    """

    digests: list[str | None]
    paths: list[str | None]
    problems: dict[int, str]
    first: list[tuple]


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
    from PIL import Image, UnidentifiedImageError  # here: staging processes rarely need it

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
    """Looks assets up in the lake's store, caching folder listings.

    It also finds the copies of assets that other uploads have staged completely (those in the
    `settled` folders: pending, processing, failed), so that an upload carrying the same content
    links that copy instead of writing the bytes again.
    """

    def __init__(self, root: str | Path, settled: Sequence[str] = ()):
        self.root = str(root)  # the lake's assets/ folder
        self.settled = settled
        self._listings: dict[str, tuple[dict[str, str], dict[str, list[str]]]] = {}
        self._settled_uploads: dict[str, bool] = {}
        self._tops = _store_folders(self.root)

    def find(self, digest: str) -> str | None:
        """The relative path of the stored asset with this digest, or None."""
        return self._listing(digest)[0].get(digest)

    def has_folder(self, shard: str) -> bool:
        """Whether the store folder `ab/cd` was found when it was listed (store folders stay)."""
        return self._listings.get(shard, NO_LISTING) is not NO_LISTING

    def staged_copy(self, digest: str) -> str | None:
        """The path of a copy of this asset that a settled upload staged, or None."""
        folder = f"{self.root}/{digest[0:2]}/{digest[2:4]}"
        for name in self._listing(digest)[1].get(digest, ()):
            if self._is_settled(name[:-4].rpartition(".")[2]):  # .<hash>.<ext>.<upload_id>.tmp
                return f"{folder}/{name}"
        return None

    def _listing(self, digest: str) -> tuple[dict[str, str], dict[str, list[str]]]:
        """A store folder's assets (hash: relative path) and staged copies (hash: hidden names)."""
        if digest[0:2] not in self._tops:  # a young lake: most folders do not exist yet
            return NO_LISTING
        shard = f"{digest[0:2]}/{digest[2:4]}"
        listing = self._listings.get(shard)
        if listing is None:
            try:
                names = _real_folder_names(f"{self.root}/{shard}")
            except FileNotFoundError:
                self._listings[shard] = NO_LISTING
                return NO_LISTING
            stored: dict[str, str] = {}
            staged: dict[str, list[str]] = {}
            for name in names:
                if not name.startswith("."):
                    stored[name.split(".", 1)[0]] = f"{shard}/{name}"
                elif name.endswith(".tmp"):
                    staged.setdefault(name[1:].split(".", 1)[0], []).append(name)
            listing = self._listings[shard] = (stored, staged)
        return listing

    def _is_settled(self, upload_id: str) -> bool:
        """Whether an upload's staging is complete. Folders are checked in the order uploads move
        through them, so one moving meanwhile is still found; one not found is not trusted."""
        settled = self._settled_uploads.get(upload_id)
        if settled is None:
            settled = any(os.path.isdir(os.path.join(folder, upload_id)) for folder in self.settled)
            self._settled_uploads[upload_id] = settled
        return settled


NO_LISTING: tuple[dict[str, str], dict[str, list[str]]] = ({}, {})


def store_link_error(path: str) -> DatalakeError:
    """The store holds a symbolic link, which datalake never follows."""
    return DatalakeError(f"the asset store holds a symbolic link at {path}; datalake never follows links in "
                         "its store: remove it (`datalake db validate` lists them), then upload again")


def _store_folders(root: str) -> set[str]:
    """The top folders of the store (`ab`); an error if one is a link."""
    return set(_real_folder_names(root)) if os.path.isdir(root) else set()


def _real_folder_names(folder: str) -> list[str]:
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


class AssetStager:
    """Writes an upload's new assets into the store under hidden names private to the upload.

    A new asset is written as `<h[0:2]>/<h[2:4]>/.<hash>.<ext>.<upload_id>.tmp`, beside its final
    name, so processing names it with a rename in the same folder that never replaces. Each one
    is listed in the upload's journal (`assets.journal`: relative path and size per line) before
    it is created, so whatever a failed or killed upload wrote can be removed
    (`discard_staged_assets`). One thread stages through a stager; the children of one upload
    have a stager each.
    """

    def __init__(self, store: AssetStore, upload_id: str, folder: str | Path):
        self.store = store
        self.root = store.root
        self.upload_id = upload_id
        self.folder = folder  # the upload's own staging folder
        self.seen: set[str] = set()  # hashes of the assets met so far
        self._first: list[tuple] = []  # facts of the assets first met in the current call
        self._dirs: set[str] = set()
        self._linked: dict[str, bool] = {}  # source folder: whether a symbolic link leads to it
        self._journal = os.open(os.path.join(folder, JOURNAL_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def close(self) -> None:
        os.close(self._journal)

    def stage(self, cells: list[Any], base: str, mode: str) -> StagedCells:
        """Stage cells of an asset column. `mode` is "file" (a path, relative to `base`) or "image"
        (bytes or an HF Image struct). New assets are journalled a group at a time, before the
        group's files."""
        digests: list[str | None] = []
        paths: list[str | None] = []
        problems: dict[int, str] = {}
        group: list[tuple[AssetInfo, bytes]] = []
        held = 0
        for index, cell in enumerate(cells):
            try:
                info, data = self._read(cell, base, mode)
            except AssetProblem as exc:
                problems[index] = str(exc)
                info, data = None, None
            if info is None:
                digests.append(None)
                paths.append(None)
                continue
            digests.append(info.digest)
            paths.append(info.relpath)
            if data is not None:
                group.append((info, data))
                held += len(data)
                if held >= GROUP_BYTES:
                    self._write(group)
                    group, held = [], 0
        self._write(group)
        first, self._first = self._first, []
        return StagedCells(digests, paths, problems, first)

    def _read(self, cell: Any, base: str, mode: str) -> tuple[AssetInfo | None, bytes | None]:
        """A cell's asset facts, and its bytes when they are new to the upload and the lake."""
        if cell is None:
            return None, None
        if mode == "file":
            return self._from_file(self._file_path(base, cell), must_be_image=False)
        if isinstance(cell, dict):
            if cell.get("bytes") is not None:
                return self._from_bytes(cell["bytes"], cell.get("path"), must_be_image=True)
            if cell.get("path"):
                return self._from_file(self._file_path(base, cell["path"]), must_be_image=True)
            return None, None
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

    def _from_bytes(self, data: bytes, name: str | None, must_be_image: bool) -> tuple[AssetInfo, bytes | None]:
        info = describe(data, xxhash.xxh3_128_hexdigest(data), len(data), name, must_be_image)
        return info, (data if self._claim(info) else None)

    def _from_file(self, path: str, must_be_image: bool) -> tuple[AssetInfo, bytes | None]:
        """A file's facts and new bytes; plain system calls, as this runs once per file of an upload."""
        fd = open_regular_file(path)
        try:
            size = os.fstat(fd).st_size
            if size > WHOLE_READ_LIMIT:
                return self._put_large_file(fd, path, size, must_be_image), None
            data = _read_all(fd, size)
        finally:
            os.close(fd)
        return self._from_bytes(data, os.path.basename(path), must_be_image)

    def _claim(self, info: AssetInfo) -> bool:
        """True if this stager meets this content for the first time and the lake lacks it."""
        if info.digest in self.seen:
            return False
        self.seen.add(info.digest)
        self._first.append(tuple(info))
        return self.store.find(info.digest) is None

    def _write(self, group: list[tuple[AssetInfo, bytes]]) -> None:
        """Journal a group of new assets with one write, then give each its hidden name: a link to
        another upload's complete staged copy where there is one, else a file of its bytes."""
        staged = self._journal_assets([info for info, _ in group])
        for path, (info, data) in zip(staged, group):
            copy = self.store.staged_copy(info.digest)
            if copy is not None and _link(copy, path):
                continue
            try:
                fd = os.open(path, WRITE_FLAGS, 0o644)
            except FileNotFoundError:  # its folder, empty, was removed by a refused upload meanwhile
                _make_folder(os.path.dirname(path))
                fd = os.open(path, WRITE_FLAGS, 0o644)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)

    def _journal_assets(self, infos: list[AssetInfo]) -> list[str]:
        """List assets in the journal (whole lines, one write) and make their store folders; the
        hidden paths to write them to."""
        relpaths = [info.relpath for info in infos]
        if infos:
            write_all(self._journal, "".join(f"{r}\t{i.size}\n" for r, i in zip(relpaths, infos)).encode())
        for relpath in relpaths:
            shard = relpath.rpartition("/")[0]
            if shard not in self._dirs:
                if not self.store.has_folder(shard):
                    _make_folder(f"{self.root}/{shard}")
                self._dirs.add(shard)
        return [staged_asset_path(self.root, relpath, self.upload_id) for relpath in relpaths]

    def _put_large_file(self, src: int, path: str, size: int, must_be_image: bool) -> AssetInfo:
        """Copy while hashing (the name is known only at the end), then move into the store."""
        hasher = xxhash.xxh3_128()
        partial = os.path.join(self.folder, f".{os.getpid()}.partial")
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
            if self._claim(info):
                os.replace(partial, self._journal_assets([info])[0])
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return info


READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # never waits on a FIFO
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


def open_regular_file(path: str) -> int:
    """A descriptor of `path` if it is a regular file reached without a symbolic link at its end;
    AssetProblem naming what it is otherwise (missing, a link, a device, a FIFO, a folder, ...)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        raise AssetProblem(f"file not found: {path}") from None
    except (NotADirectoryError, IsADirectoryError):
        raise AssetProblem(f"{NOT_REGULAR}: {path}") from None
    except PermissionError:
        raise AssetProblem(f"file not readable (permission denied): {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AssetProblem(f"{path} is a symbolic link; datalake reads regular files only: give the "
                               "path of the file itself") from None
        if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket
            raise AssetProblem(f"{NOT_REGULAR}: {path}") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_dev in SYSTEM_DEVICES:
        os.close(fd)
        raise AssetProblem(f"{NOT_REGULAR}: {path}")
    return fd


def _read_all(fd: int, size: int) -> bytes:
    """A file's bytes: one read for a file of `size` bytes (asking one more shows its end)."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data
    parts = [data]
    while chunk := os.read(fd, CHUNK):  # it grew meanwhile
        parts.append(chunk)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _link(existing: str, path: str) -> bool:
    """Give `existing` a second name; False where that fails (e.g. it was named in the store
    meanwhile, or the file system has no hard links)."""
    try:
        os.link(existing, path)
    except OSError:
        return False
    return True


def _make_folder(path: str) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def staged_asset_path(assets_root: Path | str, relpath: str, upload_id: str) -> str:
    """The hidden name an upload writes a new asset to, beside its final name in the store."""
    folder, _, name = relpath.rpartition("/")
    return f"{assets_root}/{folder}/.{name}.{upload_id}.tmp"


def staged_assets(folder: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every new asset an upload folder's journal lists.

    Only whole lines count: a line being written (or cut short by a kill) is not an entry yet,
    and its asset file is not created before its line is complete. Content that two staging
    processes of the upload both met is listed twice and counted once.
    """
    try:
        lines = (folder / JOURNAL_FILE).read_text().split("\n")[:-1]
    except FileNotFoundError:
        return []
    entries = dict(line.split("\t") for line in lines)
    return [(relpath, int(size)) for relpath, size in entries.items()]


def discard_staged_assets(assets_root: Path, folder: Path, upload_id: str) -> None:
    """Remove the staged (never published) assets an upload folder's journal lists, and the store
    folders they leave empty (the upload may have made them; folders in use are not empty)."""
    shards = set()
    for relpath, _ in staged_assets(folder):
        with contextlib.suppress(OSError):  # gone already, or a read-only disk keeps it
            os.unlink(staged_asset_path(assets_root, relpath, upload_id))
        shards.add(relpath.rpartition("/")[0])
    for folder in [*shards, *{shard.partition("/")[0] for shard in shards}]:  # `ab/cd` before `ab`
        with contextlib.suppress(OSError):  # not empty, or gone
            os.rmdir(f"{assets_root}/{folder}")

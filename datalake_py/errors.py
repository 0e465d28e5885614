"""Errors raised by datalake. Every one is a DatalakeError with a message a user can act on."""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator


class DatalakeError(Exception):
    """Base class of every error datalake raises on purpose."""

    status = 400  # the HTTP status the server answers with


class ValidationError(DatalakeError):
    """Input (names, meta, data) breaks a rule; nothing was written."""


class ConfigError(DatalakeError):
    """The lake's config/schema.yaml or a config.yaml is invalid or missing."""


class NotFoundError(DatalakeError):
    """A named thing (upload, job, provider, task, lake) does not exist."""

    status = 404


class ConflictError(DatalakeError):
    """The request clashes with what the lake holds (types, existing names)."""

    status = 409


class ReadOnlyError(ConflictError):
    """The folder reads a published copy: nothing is written there but its database."""


class AuthError(DatalakeError):
    """A server request without the right token."""

    status = 401


class LayoutError(DatalakeError):
    """The lake was written by an earlier datalake in a layout this one does not read: `datalake migrate` brings it over."""

    status = 409


class DbBuildError(DatalakeError):
    """`dbt build` failed: the message names each failing model or test; the database was left as it was."""


class StorageError(DatalakeError):
    """The disk refused the work (full, read-only, failing): nothing was lost; run again once it is fixed."""

    status = 507


def error_named(name: str | None) -> type[DatalakeError]:
    """The DatalakeError class called `name` (the type a server or a job reports an error with),
    subclasses defined beside their code included (RetractionBlocked, say); DatalakeError if none is."""
    classes = [DatalakeError]
    while classes:
        cls = classes.pop()
        if cls.__name__ == name:
            return cls
        classes.extend(cls.__subclasses__())
    return DatalakeError


STORAGE_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", "free some space"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "mount it writable"),
    errno.EIO: ("the disk reported an I/O error", "check the disk"),
}


def storage_problem(exc: BaseException) -> tuple[str, str] | None:
    """(what happened, what to do) when `exc` is a disk failure that goes away once fixed, else None.

    pyarrow and DuckDB report such failures as their own errors, with the errno only in the text.
    """
    code = getattr(exc, "errno", None)
    if code in STORAGE_ERRNOS:
        return STORAGE_ERRNOS[code]
    text = str(exc).lower()
    for code, problem in STORAGE_ERRNOS.items():
        if f"errno {code}]" in text or os.strerror(code).lower() in text:
            return problem
    return None


@contextlib.contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Turn a disk failure inside the block into a StorageError saying what to do; others pass."""
    try:
        yield
    except DatalakeError:
        raise
    except Exception as exc:
        problem = storage_problem(exc)
        if problem is None:
            raise
        where = getattr(exc, "filename", None)
        raise StorageError(f"{doing} stopped: {problem[0]}" + (f" ({where})" if where else "")
                           + f"; {problem[1]}, then run it again") from None

"""Errors raised by datalake. Every one is a DatalakeError with a message a user can act on."""


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


class AuthError(DatalakeError):
    """A server request without the right token."""

    status = 401


ERRORS_BY_NAME = {cls.__name__: cls for cls in (DatalakeError, ValidationError, ConfigError, NotFoundError,
                                                ConflictError, AuthError)}

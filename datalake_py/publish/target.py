"""Where a publish goes: an `s3://bucket/prefix` target on S3-compatible storage, reached through
s3fs with the credentials of the usual AWS settings (env vars, profile files), never given here."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import DatalakeError, NotFoundError, ValidationError
from ..lake import check_name

BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
NO_SECRETS = "give credentials through the AWS settings (env vars, profile files), never in a URL"


class PublishError(DatalakeError):
    """The object store refused or failed the work (a publish, or reading a copy); what a publish
    uploaded stays, a run again goes on from it."""

    status = 502


@dataclass(frozen=True)
class Target:
    """A bucket and a prefix (no leading or trailing `/`; empty: the bucket's root)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def root(self) -> str:
        """The prefix as s3fs names it: `bucket/prefix`."""
        return f"{self.bucket}/{self.prefix}".rstrip("/")

    def path(self, key: str) -> str:
        """The s3fs path of `key`, relative to the prefix."""
        return f"{self.root}/{key}"

    def key_of(self, path: str) -> str:
        return path[len(self.root) + 1:]


def parse_target(url: object) -> Target:
    """The bucket and prefix of `s3://bucket/prefix`, checked; ValidationError naming the problem."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValidationError("the publish target must be an s3:// URL: s3://bucket/prefix")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if "@" in bucket:
        raise ValidationError(f"the publish target holds '@': {NO_SECRETS}")
    if not BUCKET_PATTERN.fullmatch(bucket):
        raise ValidationError(f"{bucket!r} is not a bucket name: 3 to 63 lowercase letters, digits, '.' and '-'")
    parts = [p for p in prefix.split("/") if p]
    for part in parts:
        check_name(part, "prefix folder")
    return Target(bucket, "/".join(parts))


def check_endpoint(endpoint_url: object) -> str | None:
    """`endpoint_url` if it is an http(s) URL without credentials in it (None: AWS's own)."""
    if endpoint_url is None:
        return None
    if not isinstance(endpoint_url, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", endpoint_url):
        raise ValidationError("the endpoint URL must be http://host[:port] or https://host[:port]")
    if "@" in endpoint_url.split("/")[2]:
        raise ValidationError(f"the endpoint URL holds '@': {NO_SECRETS}")
    return endpoint_url


def open_store(endpoint_url: str | None) -> Any:
    """An s3fs file system on `endpoint_url` (None: AWS), credentials from botocore's default chain."""
    import s3fs

    client_kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return s3fs.S3FileSystem(client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False)


@contextlib.contextmanager
def store_errors(target: Target) -> Iterator[None]:
    """Turn the store's failures into errors saying what to do; their text names no credential
    (botocore's messages carry none)."""
    try:
        yield
    except DatalakeError:
        raise
    except Exception as exc:  # s3fs and botocore raise OSErrors and their own classes
        raise _translated(exc, target) from None


def _translated(exc: Exception, target: Target) -> DatalakeError:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return PublishError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                            "or AWS_PROFILE naming a profile of ~/.aws/credentials")
    if name == "NoRegionError":
        return PublishError("no AWS region set: set AWS_DEFAULT_REGION or a region in your AWS profile")
    if isinstance(exc, PermissionError):
        return PublishError(f"access to {target.url} was denied ({exc}): check the AWS credentials and "
                            "the bucket's policy")
    if isinstance(exc, FileNotFoundError) and "bucket" in str(exc).lower():
        return NotFoundError(f"the bucket {target.bucket!r} does not exist: create it first")
    return PublishError(f"the object store failed at {target.url}: {name}: {exc}; run the command again once "
                        "it is fixed (a publish keeps what it has uploaded)")

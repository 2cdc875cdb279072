"""The media in an S3-compatible bucket (AWS S3, MinIO, Ceph, Garage, Backblaze B2 …).

Keys mirror the filesystem layout below an optional ``S3_PREFIX``: ``originals/ab/cd/<sha256>``,
``derived/ab/cd/<sha256>.thumb.webp`` and ``.preview.webp``, ``quarantine/ab/cd/<sha256>``. A
backup of either backend therefore restores into the other (``app.services.backup``).

An upload is one PUT, which S3 makes visible whole or not at all, and it carries ``Content-MD5``:
the service refuses a body damaged on the way (``BadDigest``) instead of storing it. botocore's
newer default checksums (CRC32 trailers in aws-chunked bodies) are only sent where an operation
requires them, because several S3-compatible services refuse them; Content-MD5 all understand.

The bucket stays private: images are only ever read through the app, which checks the reveal,
never through a public or presigned URL.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from flask import Flask

from app.services.storage import (
    Derivatives,
    DerivedStore,
    MediaConfigError,
    MediaUnavailable,
    MissingMedia,
    check_sha256,
)

AREAS = ("originals", "derived", "quarantine")
ADDRESSING_STYLES = ("auto", "path", "virtual")
# Only names this app writes are read back (by a backup, say): nothing else reaches a local path.
OBJECT_NAME = re.compile(
    r"(?:originals|quarantine)/([0-9a-f]{2})/([0-9a-f]{2})/\1\2[0-9a-f]{60}"
    r"|derived/([0-9a-f]{2})/([0-9a-f]{2})/\3\4[0-9a-f]{60}\.(?:thumb|preview)\.webp"
)
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
DENIED |= {"ExpiredToken", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
CORRUPTED = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_lock = threading.Lock()


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to reach it; read from ``S3_*`` settings."""

    bucket: str
    endpoint_url: str | None = None  # None: AWS itself
    region: str = "us-east-1"
    access_key_id: str | None = None  # None: boto3's chain (AWS_* variables, an instance role)
    secret_access_key: str | None = field(default=None, repr=False)
    prefix: str = ""  # "" or ending in "/"
    addressing_style: str = "auto"

    @classmethod
    def from_config(cls, config: Any) -> S3Settings:
        """The settings in ``config``; MediaConfigError says which one to fix."""
        bucket = _text(config.get("S3_BUCKET"))
        if not bucket:
            raise MediaConfigError(
                "MEDIA_BACKEND is 's3' but S3_BUCKET is not set: set MODTOOLS_S3_BUCKET to the "
                "name of a private bucket."
            )
        endpoint = _text(config.get("S3_ENDPOINT_URL")) or None
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise MediaConfigError(
                f"S3_ENDPOINT_URL must start with https:// (or http:// on a private network), "
                f"e.g. https://s3.example.org; it is {endpoint!r}."
            )
        key_id = _text(config.get("S3_ACCESS_KEY_ID")) or None
        secret = _text(config.get("S3_SECRET_ACCESS_KEY")) or None
        if bool(key_id) != bool(secret):
            raise MediaConfigError(
                "Set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither to use the AWS "
                "credential chain (AWS_* variables, an instance or pod role)."
            )
        style = _text(config.get("S3_ADDRESSING_STYLE")) or "auto"
        if style not in ADDRESSING_STYLES:
            raise MediaConfigError(f"S3_ADDRESSING_STYLE must be one of {ADDRESSING_STYLES}.")
        prefix = _text(config.get("S3_PREFIX")).strip("/")
        return cls(
            bucket=bucket,
            endpoint_url=endpoint,
            region=_text(config.get("S3_REGION")) or "us-east-1",
            access_key_id=key_id,
            secret_access_key=secret,
            prefix=f"{prefix}/" if prefix else "",
            addressing_style=style,
        )

    @property
    def where(self) -> str:
        """The service, as an operator would name it in a message."""
        return self.endpoint_url or f"AWS S3 ({self.region})"


def _text(value: Any) -> str:
    # Environment values are read as JSON when they can be, so a numeric secret arrives as int.
    return "" if value is None else str(value).strip()


def make_client(settings: S3Settings, *, probe: bool = False) -> Any:
    """A boto3 S3 client; ``probe`` gives a quick one (one attempt, short timeouts) for checks."""
    style = settings.addressing_style
    if style == "auto" and settings.endpoint_url:
        style = "path"  # MinIO, Ceph and friends rarely have a DNS name per bucket
    config = Config(
        region_name=settings.region,
        signature_version="s3v4",
        s3={"addressing_style": style},
        connect_timeout=3 if probe else 5,
        read_timeout=5 if probe else 60,
        retries={"mode": "standard", "total_max_attempts": 1 if probe else 3},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="modtools-image",
    )
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


class Bucket:
    """One bucket and its key prefix, with the clients that reach it (thread-safe, one per app)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.client = make_client(settings)
        self._probe: Any = None  # made on the first check: most processes never need it

    def key(self, name: str) -> str:
        """The object key of ``name`` (e.g. ``originals/ab/cd/<sha256>``)."""
        return self.settings.prefix + name

    def check(self) -> None:
        """Raise MediaUnavailable unless the bucket exists and the credentials may use it."""
        if self._probe is None:
            self._probe = make_client(self.settings, probe=True)
        try:
            self._probe.head_bucket(Bucket=self.settings.bucket)
        except (BotoCoreError, ClientError) as error:
            raise self.unavailable(error, "checking the bucket", bucket_level=True) from None

    def size(self, name: str) -> int | None:
        """The stored size of ``name`` in bytes, or None when there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.settings.bucket, Key=self.key(name))
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                return None
            raise self.unavailable(error, f"looking up {name}") from None
        except BotoCoreError as error:
            raise self.unavailable(error, f"looking up {name}") from None
        return int(head["ContentLength"])

    def upload(self, name: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``name`` in one PUT that the service checks against its MD5."""
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            self.client.put_object(
                Bucket=self.settings.bucket,
                Key=self.key(name),
                Body=data,
                ContentMD5=digest,
                ContentType=content_type,
            )
        except (BotoCoreError, ClientError) as error:
            raise self.unavailable(error, f"storing {name}") from None

    def open(self, name: str) -> BinaryIO:
        """A stream of the object's bytes; MissingMedia when there is none. The caller closes it."""
        try:
            answer = self.client.get_object(Bucket=self.settings.bucket, Key=self.key(name))
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                raise MissingMedia(name.rsplit("/", 1)[-1]) from None
            raise self.unavailable(error, f"reading {name}") from None
        except BotoCoreError as error:
            raise self.unavailable(error, f"reading {name}") from None
        return cast(BinaryIO, answer["Body"])

    def read(self, name: str) -> bytes:
        """The object's bytes; MissingMedia when there is none."""
        with self.open(name) as body:
            try:
                return body.read()
            except BotoCoreError as error:
                raise self.unavailable(error, f"reading {name}") from None

    def remove(self, name: str) -> bool:
        """Delete the object; False if there was none."""
        if self.size(name) is None:
            return False
        try:
            self.client.delete_object(Bucket=self.settings.bucket, Key=self.key(name))
        except (BotoCoreError, ClientError) as error:
            raise self.unavailable(error, f"deleting {name}") from None
        return True

    def names(self, area: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every object this app wrote in ``area`` (originals, derived …)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.bucket, Prefix=self.key(f"{area}/")
        )
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    name = entry["Key"][len(self.settings.prefix) :]
                    if OBJECT_NAME.fullmatch(name):
                        yield name, int(entry["Size"])
        except (BotoCoreError, ClientError) as error:
            raise self.unavailable(error, f"listing {area}") from None

    def unavailable(
        self, error: Exception, doing: str, *, bucket_level: bool = False
    ) -> MediaUnavailable:
        """A MediaUnavailable that says what went wrong and which setting to check."""
        bucket, where = self.settings.bucket, self.settings.where
        if isinstance(error, BotoConnectionError | HTTPClientError):
            return MediaUnavailable(
                "unreachable",
                f"Cannot reach the S3 service at {where} while {doing}: {error}. Check "
                "S3_ENDPOINT_URL and S3_REGION, and that the service is up.",
            )
        if isinstance(error, NoCredentialsError):
            return MediaUnavailable(
                "no credentials",
                "No S3 credentials were found: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY "
                "(or the AWS_* variables, or give the machine a role).",
            )
        code = _code(error) if isinstance(error, ClientError) else type(error).__name__
        if code in DENIED:
            return MediaUnavailable(
                "access denied",
                f"The S3 service at {where} refused access to bucket {bucket!r} ({code}) while "
                f"{doing}. Check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, and that the key may "
                "list, read, write and delete objects in the bucket.",
            )
        if code == "NoSuchBucket" or (bucket_level and code in NOT_FOUND):
            return MediaUnavailable(
                "no such bucket",
                f"There is no bucket {bucket!r} at {where}. Create it (private, with no public "
                "access) or correct S3_BUCKET.",
            )
        if code in CORRUPTED:
            return MediaUnavailable(
                "upload corrupted",
                f"The S3 service received other bytes than were sent while {doing} ({code}); "
                "nothing was stored. It is retried; if it keeps happening, check the network.",
            )
        return MediaUnavailable("error", f"The S3 service at {where} failed {doing}: {error}")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def bucket_for(app: Flask) -> Bucket:
    """The app's bucket connection, made once and shared by its threads."""
    settings = S3Settings.from_config(app.config)
    bucket = app.extensions.get("modtools_s3")
    if bucket is None or bucket.settings != settings:
        with _lock:
            bucket = app.extensions.get("modtools_s3")
            if bucket is None or bucket.settings != settings:
                bucket = app.extensions["modtools_s3"] = Bucket(settings)
    return bucket


class S3Store:
    """Content-addressed blobs in ``area`` of a bucket: the S3 twin of ``FileSystemStore``."""

    def __init__(self, bucket: Bucket, area: str = "originals") -> None:
        self.bucket, self.area = bucket, area

    def name_for(self, sha256: str) -> str:
        """The blob's name in the bucket, below the prefix: ``area/ab/cd/<sha256>``."""
        check_sha256(sha256)
        return f"{self.area}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def put(self, data: bytes, *, sync: bool = True) -> str:
        """Store ``data`` and return its SHA-256; bytes already stored are not sent again.

        Durable when this returns, whatever ``sync`` says: S3 answers a PUT once it has kept it.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        name = self.name_for(sha256)
        if self.bucket.size(name) != len(data):
            self.bucket.upload(name, data, "application/octet-stream")
        return sha256

    def sync(self, names: list[str]) -> None:
        """Nothing to flush: every ``put`` was durable when it returned."""

    def get(self, sha256: str) -> bytes:
        """The bytes of a stored blob; MissingMedia if there is none."""
        return self.bucket.read(self.name_for(sha256))

    def open(self, sha256: str) -> BinaryIO:
        """A stream of a stored blob's bytes; the caller closes it."""
        return self.bucket.open(self.name_for(sha256))

    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored under ``sha256``."""
        return self.bucket.size(self.name_for(sha256)) is not None

    def delete(self, sha256: str) -> bool:
        """Remove a blob; False if there was none."""
        return self.bucket.remove(self.name_for(sha256))


class S3DerivedStore:
    """Review images at ``derived/ab/cd/<sha256>.thumb.webp`` and ``.preview.webp``."""

    KINDS = DerivedStore.KINDS

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def name_for(self, sha256: str, kind: str) -> str:
        """The name of the ``kind`` ("thumb" or "preview") image of blob ``sha256``."""
        check_sha256(sha256)
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}")
        return f"derived/{sha256[:2]}/{sha256[2:4]}/{sha256}.{kind}.webp"

    def save(self, sha256: str, derivatives: Derivatives) -> None:
        """Store both review images of blob ``sha256``, replacing older ones."""
        self.bucket.upload(self.name_for(sha256, "thumb"), derivatives.thumbnail, "image/webp")
        self.bucket.upload(self.name_for(sha256, "preview"), derivatives.preview, "image/webp")

    def get(self, sha256: str, kind: str) -> bytes:
        """The bytes of one review image; MissingMedia if it was never made or was purged."""
        return self.bucket.read(self.name_for(sha256, kind))

    def exists(self, sha256: str) -> bool:
        """Whether both review images of blob ``sha256`` are stored."""
        return all(self.bucket.size(self.name_for(sha256, kind)) is not None for kind in self.KINDS)

    def delete(self, sha256: str) -> bool:
        """Remove both review images of blob ``sha256``; False if there were none."""
        removed = [self.bucket.remove(self.name_for(sha256, kind)) for kind in self.KINDS]
        return any(removed)

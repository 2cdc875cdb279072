"""Where image bytes live: a content-addressed media store and the derived review images.

A blob is named by the SHA-256 of its bytes and kept at ``root/ab/cd/<sha256>``, so the same image
sent twice is stored once and a name can never point outside the store. Writes go to a temporary
file in the blob's own directory, are fsynced, renamed into place and the directory fsynced: when
``put`` returns the blob survives a crash or power cut, and no reader ever sees half a file.

Derived images are what the review pages show: a small thumbnail (still the real picture, so it
is revealed like the original) and a greyscale preview blurred until nothing in it can be
recognised, which is safe to show by default. Both are WebP, written without any metadata.

``MediaStore`` (originals, quarantine) and ``DerivedMediaStore`` (review images) are the interfaces
callers depend on. ``original_store()``, ``derived_store()`` and ``quarantine_store()`` pick the
implementation that ``MEDIA_BACKEND`` names: this module's filesystem stores, or the S3-compatible
ones in ``app.services.s3_storage``. ``check_media_store()`` says whether the configured store can
be used, for ``/healthz`` and for start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from flask import Flask, current_app
from PIL import Image, ImageFilter

from app.services.hashing import PICTURE_SIDE, prepare_picture, shrink
from app.services.media import open_image

if TYPE_CHECKING:
    from app.services.s3_storage import Bucket

SHA256 = re.compile(r"[0-9a-f]{64}")
DERIVED_MIME = "image/webp"
THUMBNAIL_SIDE = 320
PREVIEW_SIDE = 320
PREVIEW_DETAIL = 24  # pixels along the preview's longest side before it is enlarged and blurred
BACKENDS = ("filesystem", "s3")

log = logging.getLogger(__name__)


class MissingMedia(LookupError):
    """No blob is stored under that SHA-256 (purged by retention, or never stored)."""


class MediaConfigError(ValueError):
    """The media settings cannot work (unknown backend, S3 without a bucket …); says what to set."""


class MediaUnavailable(RuntimeError):
    """The media store cannot be used right now (unreachable, refused, no bucket, not writable).

    ``state`` is a short word or two for ``/healthz``; the message says what to check.
    """

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


class MediaStore(Protocol):
    """Content-addressed blob storage. Every method takes or returns a lowercase hex SHA-256."""

    def put(self, data: bytes, *, sync: bool = True) -> str: ...
    def sync(self, names: list[str]) -> None: ...
    def get(self, sha256: str) -> bytes: ...
    def open(self, sha256: str) -> BinaryIO: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> bool: ...


class DerivedMediaStore(Protocol):
    """The review images (``thumb`` and ``preview``) of each blob, by the blob's SHA-256."""

    def save(self, sha256: str, derivatives: Derivatives) -> None: ...
    def get(self, sha256: str, kind: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> bool: ...


def check_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex characters, else raise ValueError.

    Every path is built from a checked name, so ``../`` and friends never reach the filesystem.
    """
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise ValueError("a media name must be 64 lowercase hexadecimal characters")
    return sha256


class FileSystemStore:
    """Blobs in a directory tree on a local or shared filesystem."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` is (or would be) kept."""
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, *, sync: bool = True) -> str:
        """Store ``data`` and return its SHA-256; the same bytes again are a no-op.

        Durable when this returns, unless ``sync`` is False: then the blob is in place (readers
        see all of it or nothing) but only ``sync([name])`` makes it survive a power cut.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        try:
            stored = path.stat().st_size == len(data)
        except FileNotFoundError:
            stored = False
        if stored:
            if sync:  # another writer may not have made its rename durable yet
                _fsync_directory(path.parent)
        else:
            write_durably(path, data, sync=sync)
        return sha256

    def sync(self, names: list[str]) -> None:
        """Make blobs put with ``sync=False`` durable, all at once.

        On Linux one ``syncfs`` of the store's filesystem flushes every file and directory entry
        together, which is how a batch of uploads costs one flush instead of two per image;
        elsewhere each blob and its directories are fsynced in turn.
        """
        if not names:
            return
        if _syncfs(self.root):
            return
        directories: set[Path] = set()
        for name in names:
            path = self.path_for(name)
            with path.open("rb") as blob:
                os.fsync(blob.fileno())
            directories.update((path.parent, path.parent.parent, self.root))
        for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
            _fsync_directory(directory)

    def get(self, sha256: str) -> bytes:
        """The bytes of a stored blob; MissingMedia if there is none."""
        with self.open(sha256) as blob:
            return blob.read()

    def open(self, sha256: str) -> BinaryIO:
        """A binary file object for streaming a stored blob; the caller closes it."""
        try:
            return self.path_for(sha256).open("rb")
        except FileNotFoundError:
            raise MissingMedia(sha256) from None

    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored under ``sha256``."""
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove a blob durably; False if there was none."""
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_directory(path.parent)
        return True


@dataclass(frozen=True)
class Derivatives:
    """The review images of one blob, as WebP bytes (``DERIVED_MIME``)."""

    thumbnail: bytes
    preview: bytes


def make_derivatives(source: Image.Image | bytes, **limits: Any) -> Derivatives:
    """The thumbnail and the blurred greyscale preview of an image.

    Pass ingest's decoded picture (``HashedImage.picture``) to avoid decoding again; raw bytes are
    checked like media.open_image with ``limits`` first. Metadata is never copied.
    """
    if isinstance(source, bytes):
        _, source = open_image(source, reduce_to=PICTURE_SIDE, **limits)
    picture = prepare_picture(source, PICTURE_SIDE)
    return Derivatives(
        thumbnail=_webp(shrink(picture, THUMBNAIL_SIDE), quality=80),
        preview=_webp(_blurred(picture), quality=60),
    )


def _blurred(picture: Image.Image) -> Image.Image:
    # Shrinking to a couple of dozen pixels throws the detail away for good; the enlargement
    # and blur only make the remaining blotches pleasant to look at.
    grey = picture.convert("L")
    scale = PREVIEW_DETAIL / max(grey.size)
    tiny = grey.resize(
        (max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
        Image.Resampling.BOX,
    )
    scale = PREVIEW_SIDE / max(grey.size)
    size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
    enlarged = tiny.resize(size, Image.Resampling.BICUBIC)
    return enlarged.filter(ImageFilter.GaussianBlur(PREVIEW_SIDE / PREVIEW_DETAIL))


def _webp(image: Image.Image, quality: int) -> bytes:
    bare = Image.frombytes(image.mode, image.size, image.tobytes())  # no info, so no metadata
    buffer = io.BytesIO()
    # method=1: a third of the default's encoding time for a few hundred bytes more, on images
    # this small (bench/README.md); previews are made for every item, in the worker.
    bare.save(buffer, "WEBP", quality=quality, method=1)
    return buffer.getvalue()


class DerivedStore:
    """Derived images beside their blob's name: ``root/ab/cd/<sha256>.thumb.webp`` and
    ``.preview.webp``. Kept apart from the media store so retention and backups can differ."""

    KINDS = ("thumb", "preview")

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, kind: str) -> Path:
        """Where the ``kind`` ("thumb" or "preview") image of blob ``sha256`` is kept."""
        check_sha256(sha256)
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.{kind}.webp"

    def save(self, sha256: str, derivatives: Derivatives) -> None:
        """Store both derived images of blob ``sha256`` durably, replacing older ones."""
        write_durably(self.path_for(sha256, "thumb"), derivatives.thumbnail)
        write_durably(self.path_for(sha256, "preview"), derivatives.preview)

    def get(self, sha256: str, kind: str) -> bytes:
        """The bytes of one derived image; MissingMedia if it was never made or was purged."""
        try:
            return self.path_for(sha256, kind).read_bytes()
        except FileNotFoundError:
            raise MissingMedia(f"{sha256}.{kind}") from None

    def exists(self, sha256: str) -> bool:
        """Whether both derived images of blob ``sha256`` are stored."""
        return all(self.path_for(sha256, kind).is_file() for kind in self.KINDS)

    def delete(self, sha256: str) -> bool:
        """Remove both derived images of blob ``sha256``; False if there were none."""
        removed = False
        for kind in self.KINDS:
            with contextlib.suppress(FileNotFoundError):
                self.path_for(sha256, kind).unlink()
                removed = True
        if removed:
            _fsync_directory(self.path_for(sha256, "thumb").parent)
        return removed


def write_durably(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Create or replace ``path`` with ``data`` atomically; durable once this returns.

    With ``sync`` False the file is still replaced atomically, but nothing is flushed to disk:
    the caller flushes later (``FileSystemStore.sync``) before it relies on the file.
    """
    _make_directories(path.parent, sync)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(handle, "wb") as incoming:
            incoming.write(data)
            if sync:
                incoming.flush()
                os.fsync(incoming.fileno())
        os.replace(temporary, path)  # atomic: concurrent writers of one blob all write equal bytes
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if sync:
        _fsync_directory(path.parent)


def _make_directories(directory: Path, sync: bool = True) -> None:
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
            level.mkdir(mode=0o700)
        if sync:
            _fsync_directory(level.parent)  # a new directory's entry must survive a crash too


def _syncfs(path: Path) -> bool:
    """Flush the whole filesystem holding ``path`` (Linux ``syncfs``); False where there is none."""
    if _SYNCFS is None:
        return False
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if _SYNCFS(handle) != 0:  # ctypes releases the GIL for the call
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs failed: {os.strerror(error)}", str(path))
    finally:
        os.close(handle)
    return True


def _find_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_SYNCFS = _find_syncfs()


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


# Choosing the store: MEDIA_BACKEND decides, for every process of an installation alike.


def media_backend(config: Any) -> str:
    """The configured backend, ``filesystem`` or ``s3``; MediaConfigError for anything else."""
    backend = str(config.get("MEDIA_BACKEND") or "filesystem").strip().lower()
    if backend not in BACKENDS:
        raise MediaConfigError(
            f"MEDIA_BACKEND is {backend!r}: set it to 'filesystem' (the default) or 's3'."
        )
    return backend


def quarantine_root(config: Any) -> Path:
    """The filesystem quarantine: ``QUARANTINE_ROOT``, else ``quarantine`` beside ``MEDIA_ROOT``."""
    configured = config.get("QUARANTINE_ROOT")
    return Path(configured) if configured else Path(config["MEDIA_ROOT"]).parent / "quarantine"


def original_store() -> MediaStore:
    """The originals: ``MEDIA_ROOT/originals``, or ``originals/`` in the S3 bucket."""
    bucket = _bucket()
    if bucket is None:
        return FileSystemStore(Path(current_app.config["MEDIA_ROOT"]) / "originals")
    from app.services.s3_storage import S3Store

    return S3Store(bucket, "originals")


def derived_store() -> DerivedMediaStore:
    """Thumbnails and blurred previews: ``MEDIA_ROOT/derived``, or ``derived/`` in the bucket."""
    bucket = _bucket()
    if bucket is None:
        return DerivedStore(Path(current_app.config["MEDIA_ROOT"]) / "derived")
    from app.services.s3_storage import S3DerivedStore

    return S3DerivedStore(bucket)


def quarantine_store() -> MediaStore:
    """Quarantined originals: ``quarantine_root()``, or ``quarantine/`` in the bucket."""
    bucket = _bucket()
    if bucket is None:
        return FileSystemStore(quarantine_root(current_app.config))
    from app.services.s3_storage import S3Store

    return S3Store(bucket, "quarantine")


def check_media_store() -> None:
    """Raise MediaUnavailable unless the configured store can be reached and written to."""
    bucket = _bucket()
    if bucket is not None:
        bucket.check()
        return
    root = Path(current_app.config["MEDIA_ROOT"])
    nearest = root
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent  # a fresh instance creates MEDIA_ROOT on its first image
    if not (nearest.is_dir() and os.access(nearest, os.W_OK | os.X_OK)):
        raise MediaUnavailable(
            "not writable",
            f"MEDIA_ROOT ({root}) is not a directory this user can write to: fix its owner or "
            "mode, or point MEDIA_ROOT somewhere else.",
        )


def init_media(app: Flask) -> None:
    """Check the media settings at start-up and answer 503 while the store is unavailable.

    Settings that cannot work stop ``create_app`` with MediaConfigError; whether the store is
    reachable is checked by ``/healthz`` and before a server or worker starts (``app.runner``).
    """
    if media_backend(app.config) == "s3":
        from app.services.s3_storage import S3Settings

        S3Settings.from_config(app.config)

    @app.errorhandler(MediaUnavailable)
    def media_unavailable(error: MediaUnavailable) -> Any:
        from app.errors import error_response

        log.error("media store unavailable (%s): %s", error.state, error)
        return error_response(
            503,
            "The image store cannot be reached right now. Try again in a minute; if it lasts, "
            "an admin should check /healthz and the server log.",
            code="media_unavailable",
        )


def _bucket() -> Bucket | None:
    """The app's shared S3 bucket connection, or None on the filesystem backend."""
    if media_backend(current_app.config) != "s3":
        return None
    from app.services.s3_storage import bucket_for

    return bucket_for(current_app._get_current_object())  # type: ignore[attr-defined]

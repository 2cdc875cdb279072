"""Where image bytes live: a content-addressed media store and the derived review images.

A blob is named by the SHA-256 of its bytes and kept at ``root/ab/cd/<sha256>``, so the same image
sent twice is stored once and a name can never point outside the store. Writes go to a temporary
file in the blob's own directory, are fsynced, renamed into place and the directory fsynced: when
``put`` returns the blob survives a crash or power cut, and no reader ever sees half a file.

Derived images are what the review pages show: a small thumbnail (still the real picture, so it
is revealed like the original) and a greyscale preview blurred until nothing in it can be
recognised, which is safe to show by default. Both are WebP, written without any metadata.

``MediaStore`` is the interface callers depend on; a second implementation (S3-compatible object
storage) will sit beside ``FileSystemStore`` when scale-out needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from PIL import Image, ImageFilter

from app.services.hashing import PICTURE_SIDE, prepare_picture, shrink
from app.services.media import open_image

SHA256 = re.compile(r"[0-9a-f]{64}")
DERIVED_MIME = "image/webp"
THUMBNAIL_SIDE = 320
PREVIEW_SIDE = 320
PREVIEW_DETAIL = 24  # pixels along the preview's longest side before it is enlarged and blurred


class MissingMedia(LookupError):
    """No blob is stored under that SHA-256 (purged by retention, or never stored)."""


class MediaStore(Protocol):
    """Content-addressed blob storage. Every method takes or returns a lowercase hex SHA-256."""

    def put(self, data: bytes) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def open(self, sha256: str) -> BinaryIO: ...
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

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its SHA-256; the same bytes again are a no-op."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        try:
            stored = path.stat().st_size == len(data)
        except FileNotFoundError:
            stored = False
        if stored:
            _fsync_directory(path.parent)  # another writer may not have made its rename durable yet
        else:
            write_durably(path, data)
        return sha256

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
    bare.save(buffer, "WEBP", quality=quality)
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


def write_durably(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with ``data`` atomically; durable once this returns."""
    _make_directories(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(handle, "wb") as incoming:
            incoming.write(data)
            incoming.flush()
            os.fsync(incoming.fileno())
        os.replace(temporary, path)  # atomic: concurrent writers of one blob all write equal bytes
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _make_directories(directory: Path) -> None:
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
            level.mkdir(mode=0o700)
        _fsync_directory(level.parent)  # a new directory's entry must survive a crash too


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

"""Image safety: what ingest accepts, checked before anything is stored or scanned.

Every image arrives as hostile bytes. The type is sniffed from magic bytes (never from a file name
or a header); oversized, undecodable, truncated and decompression-bomb images are refused with a
message the sender can act on. The first frame is decoded exactly once, and that decode is what
hashing and the review previews are made from.

Limits are arguments, never process-global state: Pillow's ``Image.MAX_IMAGE_PIXELS`` is left
alone because web threads and worker threads call this concurrently, each with its own limits.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from dataclasses import dataclass
from typing import Protocol

from PIL import ExifTags, Image, features

try:  # optional HEIC support; without it HEIC is refused with a message saying so
    import pillow_heif  # type: ignore[import-not-found]

    pillow_heif.register_heif_opener()
except ImportError:
    pass

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 20 * MiB
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_FRAMES = 1000
ACCEPTED = "JPEG, PNG, GIF, WebP, BMP or TIFF"

# Pillow plugins per sniffed type. Image.open may only try these, so a hostile file never reaches
# a parser we did not choose (Pillow's EPS plugin, for one, would start Ghostscript).
PILLOW_FORMATS = {
    "image/jpeg": ("JPEG", "MPO"),  # MPO: camera JPEGs that carry extra frames
    "image/png": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/bmp": ("BMP",),
    "image/tiff": ("TIFF",),
    "image/avif": ("AVIF",),
    "image/heic": ("HEIF",),
}
LABELS = {mime: mime.removeprefix("image/").upper() for mime in PILLOW_FORMATS}
AVIF_BRANDS = {b"avif", b"avis"}
HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}


class MediaError(Exception):
    """An image we refuse: ``code`` for machines, ``message`` for people, ``status`` for HTTP."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class Readable(Protocol):
    """Anything with a binary ``read(size)``: an upload stream, a file, a socket file."""

    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class ImageInfo:
    """What a moderator is told about an image; width and height as displayed (EXIF applied)."""

    mime: str
    width: int
    height: int
    frames: int
    animated: bool


def read_limited(stream: Readable, max_bytes: int, chunk: int = 64 * 1024) -> bytes:
    """Read ``stream`` to its end, refusing (413) as soon as more than ``max_bytes`` arrive."""
    buffer = bytearray()
    while piece := stream.read(min(chunk, max_bytes + 1 - len(buffer))):
        buffer += piece
        if len(buffer) > max_bytes:
            raise _too_large(f"The image is larger than {_size(max_bytes)}.")
    return bytes(buffer)


def sniff_type(data: bytes) -> str | None:
    """The image MIME type named by the magic bytes at the start of ``data``, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    # "BM" alone is too weak (text can start so); also require a known DIB header size.
    if (
        data[:2] == b"BM"
        and len(data) >= 18
        and struct.unpack_from("<I", data, 14)[0] in (BMP_HEADER_SIZES)
    ):
        return "image/bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "image/tiff"
    if data[4:8] == b"ftyp":  # ISO-BMFF: the brands say whether this is HEIC, AVIF or a video
        end = min(int.from_bytes(data[:4], "big"), len(data), 256)
        brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
        if brands & AVIF_BRANDS:
            return "image/avif"
        if brands & HEIC_BRANDS:
            return "image/heic"
    return None


def inspect_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    declared_type: str | None = None,
) -> ImageInfo:
    """Check and fully decode ``data``; return what it is or raise MediaError.

    ``declared_type`` (a Content-Type or multipart part type) never decides anything: when it
    disagrees with the bytes the image is still accepted and the sniffed type is returned.
    """
    info, _ = _decode(data, max_bytes, max_pixels, max_frames, declared_type, reduce_to=None)
    return info


def open_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    declared_type: str | None = None,
    reduce_to: int | None = None,
    luma: bool = False,
) -> tuple[ImageInfo, Image.Image]:
    """Check ``data`` like inspect_image and return it with its first frame decoded.

    With ``reduce_to`` a JPEG is decoded at the smallest scale whose longest side still covers
    that many pixels (``draft``): hashing and previews need no more, and decoding less is faster.
    With ``luma`` a colour JPEG decodes its brightness channel only (mode ``L``): all PDQ hashes,
    and a third of the decoding work. The frame is returned as stored: hashing.prepare_picture
    turns it upright and into RGB.
    """
    return _decode(data, max_bytes, max_pixels, max_frames, declared_type, reduce_to, luma)


def draft_for(image: Image.Image, side: int, luma: bool = False) -> None:
    """Ask a JPEG not yet decoded to decode at the smallest scale that still covers ``side``.

    With ``luma`` a YCbCr JPEG decodes only its Y channel, as mode ``L``: libjpeg then skips the
    colour planes' upsampling and conversion. CMYK and greyscale JPEGs keep their mode.
    """
    if image.format not in ("JPEG", "MPO"):
        return
    if max(image.size) > side:
        scale = side / max(image.size)
        target = (max(1, math.ceil(image.width * scale)), max(1, math.ceil(image.height * scale)))
        image.draft("L" if luma else "RGB", target)
    elif luma:
        image.draft("L", None)


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8) of ``image``; 1, as stored, when absent or unreadable."""
    try:
        value = int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a broken EXIF block should not cost the image; show it as stored
        return 1
    return value if 1 <= value <= 8 else 1


def _decode(
    data: bytes,
    max_bytes: int,
    max_pixels: int,
    max_frames: int,
    declared_type: str | None,
    reduce_to: int | None,
    luma: bool = False,
) -> tuple[ImageInfo, Image.Image]:
    if not data:
        raise MediaError("empty_file", "The file is empty. Choose the image again and resend it.")
    if len(data) > max_bytes:
        raise _too_large(f"The image is {_size(len(data))}; the limit is {_size(max_bytes)}.")
    mime = sniff_type(data)
    if mime is None:
        raise MediaError(
            "unsupported_type", f"This file is not an image we accept; send {ACCEPTED}.", 415
        )
    if not _can_decode(mime):
        raise MediaError(
            "unsupported_type",
            f"{LABELS[mime]} images cannot be read on this server; convert the image to JPEG "
            "or PNG and send it again.",
            415,
        )
    _refuse_polyglot(data, mime)
    if declared_type and declared_type.split(";")[0].strip().lower() != mime:
        log.debug("declared type %r differs from sniffed %s; the bytes win", declared_type, mime)
    try:
        image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
        if image.format not in PILLOW_FORMATS[mime]:
            raise MediaError(
                "type_mismatch",
                f"The file starts like a {LABELS[mime]} image but decodes as {image.format}; "
                "files that pose as two types are refused. Send a plain image file.",
            )
        _check_pixels(*image.size, max_pixels)
        frames = _count_frames(image, data, max_frames, max_pixels)
        width, height = _displayed_size(image)
        if reduce_to is not None:
            draft_for(image, reduce_to, luma)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(
            "decompression_bomb",
            "The image declares far more pixels than this server decodes. Send a smaller image.",
        ) from exc
    except (MediaError, MemoryError):
        raise
    except Exception as exc:  # Pillow raises many types for hostile input; all mean "unreadable"
        if "truncat" in str(exc).lower():
            raise MediaError(
                "truncated_image",
                "The image file is incomplete: it ends before the picture does. "
                "Send the whole file again.",
            ) from exc
        raise MediaError(
            "corrupt_image",
            f"The image could not be decoded: the {LABELS[mime]} file is damaged. "
            "Open it on your device to check it, then send the original again.",
        ) from exc
    return ImageInfo(mime, width, height, frames, frames > 1), image


# Markers of a second file hidden in an image: web pages and scripts that a browser or a server
# might run if the file is ever served with the wrong type.
_HIDDEN_MARKUP = (b"<html", b"<script", b"<!doctype html", b"<?php", b"<svg", b"<iframe", b"<body")
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_END = b"PK\x05\x06"


def _refuse_polyglot(data: bytes, mime: str) -> None:
    """Refuse an image that is also another file: markup in its head or after its end, or a
    well-formed ZIP archive appended to it."""
    end = _image_end(data, mime)
    trailing = data[end:] if end is not None else data[-1024:]
    hidden = [data[:1024].lower(), trailing.lower()]
    if (
        any(marker in part for part in hidden for marker in _HIDDEN_MARKUP)
        or (end is not None and _ZIP_LOCAL_HEADER in trailing)
        or _ends_with_zip_directory(data)
    ):
        raise MediaError(
            "polyglot",
            "This file is an image with another file (an archive or a web page) hidden inside "
            "it, and such files are refused. Export the picture afresh from an image editor "
            "and send that.",
        )


def _image_end(data: bytes, mime: str) -> int | None:
    """Where the picture's own bytes end, for formats with an end marker; None otherwise."""
    if mime == "image/png":
        found = data.rfind(b"IEND")
        return found + 8 if found != -1 else None  # the chunk type, then its 4-byte CRC
    if mime == "image/jpeg":
        found = data.rfind(b"\xff\xd9")  # the last end-of-image: MPO files hold several
        return found + 2 if found != -1 else None
    return None


def _ends_with_zip_directory(data: bytes) -> bool:
    # A ZIP's end record sits within 64 KiB of the end and its comment length must reach exactly
    # to the end of the file: checking both makes a chance match in image data negligible.
    window_start = max(0, len(data) - 65_557)
    found = data.rfind(_ZIP_END, window_start)
    if found == -1 or found + 22 > len(data):
        return False
    comment_length = int.from_bytes(data[found + 20 : found + 22], "little")
    return found + 22 + comment_length == len(data)


def _can_decode(mime: str) -> bool:
    if mime == "image/avif":
        return bool(features.check("avif"))
    if mime == "image/heic":
        Image.init()
        return "HEIF" in Image.OPEN
    return True


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise MediaError(
            "decompression_bomb",
            f"The image is {width}×{height} pixels ({width * height / 1e6:.1f} million); "
            f"the limit is {max_pixels / 1e6:g} million. Send a smaller image.",
        )


def _count_frames(image: Image.Image, data: bytes, max_frames: int, max_pixels: int) -> int:
    """Count frames without decoding any, checking each one's size where frames differ."""
    if image.format == "GIF":
        boxes = _gif_frame_boxes(data, max_frames + 1)
        for right, bottom in boxes:
            _check_pixels(right, bottom, max_pixels)
        frames = max(1, len(boxes))
    elif image.format == "TIFF":  # pages have their own sizes; seeking reads headers only
        frames = 0
        try:
            while frames <= max_frames:
                image.seek(frames)
                _check_pixels(*image.size, max_pixels)
                frames += 1
        except EOFError:
            pass
        image.seek(0)
    else:  # WebP, APNG, AVIF, MPO: the count is in the container header, frames share a canvas
        frames = getattr(image, "n_frames", 1)
    if frames > max_frames:
        raise MediaError(
            "too_many_frames",
            f"The animation has more than {max_frames} frames, the most this server accepts. "
            "Send a shorter animation or a still image.",
        )
    return frames


def _gif_frame_boxes(data: bytes, limit: int) -> list[tuple[int, int]]:
    """The right and bottom edge of each GIF frame, stopping after ``limit`` frames.

    Pillow's ``n_frames`` walks every frame; 20 MiB of 1×1 frames is over a million of them.
    """
    pos, boxes = 13, []
    if data[10] & 0x80:  # global colour table
        pos += 3 << ((data[10] & 7) + 1)
    while pos < len(data) and len(boxes) < limit:
        if data[pos] == 0x21:  # extension: introducer, label, then sub-blocks
            pos += 2
        elif data[pos] == 0x2C and pos + 10 <= len(data):  # image descriptor
            left, top, width, height, flags = struct.unpack_from("<4HB", data, pos + 1)
            boxes.append((left + width, top + height))
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # + LZW code size
        else:  # trailer, or damage the decoder will report
            break
        while pos < len(data) and data[pos]:
            pos += data[pos] + 1
        pos += 1
    return boxes


def _displayed_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if orientation(image) in (5, 6, 7, 8) else (width, height)


def _too_large(detail: str) -> MediaError:
    return MediaError("image_too_large", f"{detail} Send a smaller file.", 413)


def _size(count: int) -> str:
    if count >= MiB:
        return f"{count / MiB:.0f} MiB" if count % MiB == 0 else f"{count / MiB:.1f} MiB"
    return f"{count:,} bytes"


Image.init()  # load every plugin once, so the list below names only formats that can open
_OPEN_FORMATS = tuple(
    name for names in PILLOW_FORMATS.values() for name in names if name in Image.OPEN
)

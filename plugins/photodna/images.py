"""Making an image PhotoDNA accepts: its types (GIF, JPEG, PNG, BMP, TIFF) and at most 4 MB.

We accept more types than PhotoDNA does (WebP, AVIF, HEIC) and larger files, so those are sent
as a JPEG of the first frame, upright, at most 2048 pixels on a side. PhotoDNA is built to
match resized and re-encoded copies, so this does not hide a match; the record notes it.
"""

from __future__ import annotations

import io
from typing import Any

from flask import current_app

from app.services.hashing import prepare_picture
from app.services.media import open_image

ACCEPTED_TYPES = {"image/gif", "image/jpeg", "image/png", "image/bmp", "image/tiff"}
MAX_BYTES = 4 * 1024 * 1024
LONGEST_SIDE = 2048
JPEG_QUALITY = 90


def sendable_image(data: bytes, mime: str | None) -> tuple[bytes, dict[str, Any]]:
    """``data`` as PhotoDNA accepts it, and what was done to it (empty when nothing)."""
    if mime in ACCEPTED_TYPES and len(data) <= MAX_BYTES:
        return data, {}
    config = current_app.config
    # The image passed these same checks at ingest; they keep a decode bounded here too.
    _, picture = open_image(
        data,
        max_bytes=config["MAX_IMAGE_BYTES"],
        max_pixels=config["MAX_IMAGE_PIXELS"],
        max_frames=config["MAX_IMAGE_FRAMES"],
    )
    picture = prepare_picture(picture, LONGEST_SIDE)  # upright, RGB on white, resized
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=JPEG_QUALITY)
    converted = buffer.getvalue()
    return converted, {
        "converted_from": {"type": mime, "bytes": len(data)},
        "converted_to": {"type": "image/jpeg", "bytes": len(converted), "size": picture.size},
    }

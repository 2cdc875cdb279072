"""Synthetic test images, made with Pillow: no real imagery ever enters the test suite.

Also the location of Meta's PDQ reference images (read-only, BSD licence), which
``MODTOOLS_PDQ_TESTDATA`` can move.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


def _find_testdata() -> Path:
    """The shared PDQ reference images: ``MODTOOLS_PDQ_TESTDATA``, else ``shared/`` beside the
    checkout (where CI lays it), else the development machines' ``/work/shared``."""
    if os.environ.get("MODTOOLS_PDQ_TESTDATA"):
        return Path(os.environ["MODTOOLS_PDQ_TESTDATA"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "pdq"
    return beside if beside.is_dir() else Path("/work/shared/testdata/pdq")


TESTDATA = _find_testdata()
IMAGE_SUFFIXES = (".jpg", ".png", ".webp", ".tiff")


def reference_images() -> list[Path]:
    """Every image file among the PDQ reference images."""
    return sorted(p for p in TESTDATA.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def scene(width: int = 640, height: int = 400, seed: int = 1) -> Image.Image:
    """A busy RGB picture of random rectangles and ellipses: plenty of structure for PDQ."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), 90, 160))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    return image


def text_card(text: str, width: int = 640, height: int = 400) -> Image.Image:
    """Black text and a checkerboard on white: the sharpest, most legible picture we can make."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, width // 2, 20):
        for y in range(0, height, 20):
            if (x + y) // 20 % 2 == 0:
                draw.rectangle((x, y, x + 19, y + 19), fill="black")
    draw.text((width // 2 + 10, height // 3), text, fill="black", font_size=72)
    return image


def encode(image: Image.Image, image_format: str = "PNG", **params: Any) -> bytes:
    """The image saved in ``image_format`` as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def animated_gif(frame_count: int, width: int = 64, height: int = 48) -> bytes:
    """An animated GIF whose frames are different scenes."""
    frames = [scene(width, height, seed=n) for n in range(frame_count)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height``: a decompression bomb's disguise."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def gif_with_frames(frame_sizes: list[tuple[int, int]], screen: tuple[int, int] = (1, 1)) -> bytes:
    """A hand-built GIF with one 1-pixel-of-data frame per size in ``frame_sizes``.

    Frames may claim to be far larger than the data they carry, as in a GIF bomb.
    """
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frames = (
        b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x44\x01\x00"  # LZW minimum code size 2, one sub-block, terminator
        for width, height in frame_sizes
    )
    return header + b"".join(frames) + b";"

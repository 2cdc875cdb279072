"""The hashes of an image (SHA-256 and MD5 of its bytes, PDQ of its picture), and that picture.

PDQ comes from pdqhash's C++, the code python-threatexchange's ``pdq_hasher`` (and so HMA) runs
through ``pdqhash.compute``; ``pdq_native`` calls it without holding the GIL. For the same pixels
our hash is HMA's hash bit for bit. What is hashed differs on purpose, so that it is what a
person sees:

- the picture is turned upright (EXIF orientation) and converted to 8-bit RGB from any mode,
  with transparency composited onto white; pytx hashes the stored pixels of most modes as is;
- it is hashed from a reduced decode whose longest side is at most 512 pixels (Meta's C++
  reference tool also hashes a 512-pixel downsample). That is faster and stays within a few
  bits of the full-resolution hash: tests/test_hashing.py holds the bound, bench/ the numbers.

Like HMA, a hash of quality below 50 is not kept (``pdq`` is None) because such hashes match
too much; the quality is still reported, so the item page can say why there is no PDQ hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from app.services import pdq_native
from app.services.media import ImageInfo, draft_for, open_image, orientation

PICTURE_SIDE = 512  # the longest side of the picture that is hashed and previewed
PDQ_QUALITY_THRESHOLD = 50  # threatexchange's PdqSignal.QUALITY_THRESHOLD; a test keeps them equal


@dataclass(frozen=True)
class Hashes:
    """The hashes stored with an item and matched against the banks."""

    sha256: str
    md5: str
    pdq: str | None
    pdq_quality: int


@dataclass(frozen=True)
class HashedImage:
    """Everything ingest needs from one decode of the bytes.

    ``picture`` is the upright RGB first frame, at most 512 pixels a side: hand it to
    ``storage.make_derivatives`` so the bytes are not decoded a second time.
    """

    info: ImageInfo
    hashes: Hashes
    picture: Image.Image


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed the checks, and the digests of its bytes; not decoded for hashing."""

    info: ImageInfo
    sha256: str
    md5: str


def check_and_digest(data: bytes, **limits: Any) -> CheckedImage:
    """Every check media.open_image makes, and SHA-256 and MD5, as cheaply as possible.

    The whole file is still decoded (a truncated or corrupt stream is refused), but a JPEG at
    its smallest scale: that skips most of the inverse DCT and all of the scaling, which is what
    ingest needs before it answers. The picture for PDQ and previews is decoded by the worker.
    ``limits`` are media.open_image's keywords: max_bytes, max_pixels, max_frames, declared_type.
    """
    info, _ = open_image(data, reduce_to=1, luma=True, **limits)
    sha256, md5 = file_digests(data)
    return CheckedImage(info, sha256, md5)


def compute_hashes_and_info(data: bytes, **limits: Any) -> HashedImage:
    """Check ``data`` (raising MediaError as media.inspect_image does) and hash it, decoding once.

    ``limits`` are media.open_image's keywords: max_bytes, max_pixels, max_frames, declared_type.
    """
    info, image = open_image(data, reduce_to=PICTURE_SIDE, **limits)
    picture = prepare_picture(image)
    pdq, quality = pdq_of_picture(picture)
    return HashedPicture(info, picture, pdq, quality).with_digests(*file_digests(data))


@dataclass(frozen=True)
class HashedPicture:
    """What one decode gives: the checks' findings, the picture and its PDQ hash."""

    info: ImageInfo
    picture: Image.Image
    pdq: str | None
    pdq_quality: int

    def with_digests(self, sha256: str, md5: str) -> HashedImage:
        """Completed with the digests of the bytes, which a caller computed meanwhile."""
        return HashedImage(self.info, Hashes(sha256, md5, self.pdq, self.pdq_quality), self.picture)


def hash_luma(data: bytes, **limits: Any) -> HashedPicture:
    """The checks and the PDQ hash, without the digests, for a caller that computes those in
    another thread meanwhile (the synchronous check). A colour JPEG decodes only its
    brightness, which is all PDQ looks at, and ``picture`` is that, mode ``L``.

    The hash may differ from compute_hashes_and_info's by a bit or two, because the luma comes
    from the file rather than from decoded RGB. Raises MediaError.
    """
    info, image = open_image(data, reduce_to=PICTURE_SIDE, luma=True, **limits)
    picture = prepare_luma(image)
    pdq, quality = pdq_of_picture(picture)
    return HashedPicture(info, picture, pdq, quality)


def compute_hashes(data: bytes, **limits: Any) -> Hashes:
    """The hashes of the image in ``data``; see compute_hashes_and_info."""
    return compute_hashes_and_info(data, **limits).hashes


def file_digests(data: bytes) -> tuple[str, str]:
    """The SHA-256 and MD5 of ``data`` as lowercase hex."""
    # MD5 is only a lookup key that hash lists use; telling hashlib so keeps FIPS builds working.
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()


def pdq_hash(image: Image.Image) -> tuple[str | None, int]:
    """The PDQ hash (64 hex characters, or None when quality is below 50) and its quality.

    ``image`` may be anything Pillow opened, in any mode and orientation; a colour JPEG not yet
    decoded is decoded at reduced scale and as brightness only, like the check's (hash_luma).
    For an animation this hashes the current (first) frame.
    """
    draft_for(image, PICTURE_SIDE, luma=True)
    return pdq_of_picture(prepare_luma(image))


def prepare_picture(image: Image.Image, side: int = PICTURE_SIDE) -> Image.Image:
    """The picture as hashing and previews see it: upright, 8-bit RGB, longest side ≤ ``side``.

    Preparing a prepared picture changes nothing, so callers may pass either kind on.
    """
    draft_for(image, side)  # does nothing unless a JPEG not decoded yet
    picture = image
    if picture.mode in ("RGB", "RGBA", "L", "LA"):
        picture = shrink(picture, side)  # before converting: big images then cost less memory
    picture = shrink(flatten_to_rgb(upright(picture)), side)
    if picture is not image:
        picture.info = {}  # orientation is applied; stale metadata must not travel further
    return picture


def prepare_luma(image: Image.Image, side: int = PICTURE_SIDE) -> Image.Image:
    """The picture's brightness as PDQ sees it: prepare_picture's picture in mode ``L``, made
    without colour when the decoder gave brightness only (media.open_image's ``luma``)."""
    if image.mode != "L" or "transparency" in image.info:
        return prepare_picture(image, side).convert("L")
    picture = upright(shrink(image, side))
    if picture is not image:
        picture.info = {}
    return picture


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation so the picture stands as its author saw it."""
    if orientation(image) == 1:
        return image  # exif_transpose would copy the whole image for nothing
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the image; show it as stored
        return image


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency onto white.

    White because that is what a viewer sees in most places images are shown; dropping alpha
    instead would expose colours hidden under transparent pixels, which only the sender controls.
    16-bit and float images are scaled to 8 bits rather than clipped (Pillow clips them to white).
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0, posinf=0, neginf=0)
        peak = float(pixels.max(initial=0.0))
        if image.mode.startswith("I;16"):
            top = 65535.0
        else:  # I and F carry no nominal range: guess it from the values
            top = next((t for t in (1.0, 255.0, 65535.0) if peak <= t), peak)
        grey = np.clip(pixels * (255.0 / max(top, 1e-9)), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image.convert("RGBA"))
        return canvas.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def shrink(image: Image.Image, side: int) -> Image.Image:
    """Scale ``image`` down (never up) so its longest side is at most ``side``."""
    longest = max(image.size)
    if longest <= side:
        return image
    scale = side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # BILINEAR: as close to the full-resolution PDQ hash as LANCZOS, and faster (bench/README.md).
    return image.resize(size, Image.Resampling.BILINEAR)


def pdq_of_picture(picture: Image.Image) -> tuple[str | None, int]:
    """The PDQ hash and quality of a picture ``prepare_picture`` or ``prepare_luma`` made.

    PDQ hashes brightness only; it is taken as 8-bit luma (ITU-R 601, PDQ's own weights) in
    every case, so that a colour picture and its brightness alone hash alike.
    """
    grey = np.asarray(picture if picture.mode == "L" else picture.convert("L"))
    digest, quality = pdq_native.hash_grey(grey)
    return (digest if quality >= PDQ_QUALITY_THRESHOLD else None), quality

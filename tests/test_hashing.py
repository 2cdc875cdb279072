"""Hashes: what a bank match depends on, checked against Meta's PDQ reference images."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes
from threatexchange.signal_type.pdq.signal import PdqSignal

from app.services import hashing
from app.services.hashing import (
    compute_hashes,
    compute_hashes_and_info,
    file_digests,
    flatten_to_rgb,
    hash_luma,
    pdq_hash,
    upright,
)
from tests.imagegen import TESTDATA, animated_gif, encode, reference_images, scene

MODES = TESTDATA / "misc-images" / "modes"


def distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def full_resolution_pdq(path: Path) -> tuple[str, int]:
    """The same conversion as ours, but hashing every pixel: no draft, no resize."""
    with Image.open(path) as image:
        picture = flatten_to_rgb(upright(image))
        bits, quality = pdqhash.compute(np.asarray(picture))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def test_file_digests_are_sha256_and_md5() -> None:
    assert file_digests(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "900150983cd24fb0d6963f7d28e17f72",
    )


def test_every_reference_image_hashes() -> None:
    for path in reference_images():
        hashes = compute_hashes(path.read_bytes())
        assert hashes.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), path
        assert 0 <= hashes.pdq_quality <= 100, path
        assert hashes.pdq is None or len(hashes.pdq) == 64, path


# Both ways we hash a picture: ingest's (colour decode, kept for the previews) and the
# synchronous check's (brightness only). Every accuracy bound below holds for each.
Hasher = Callable[[bytes], str | None]
HASHERS: dict[str, Hasher] = {
    "ingest": lambda data: compute_hashes(data).pdq,
    "check": lambda data: hash_luma(data).pdq,
}


@pytest.mark.parametrize("hasher", HASHERS.values(), ids=HASHERS.keys())
def test_reduced_decode_hashes_like_full_resolution(hasher: Hasher) -> None:
    distances = {}
    for path in reference_images():
        full, quality = full_resolution_pdq(path)
        ours = hasher(path.read_bytes())
        if quality >= 80:
            assert ours is not None, path
            distances[path.name] = distance(ours, full)
    assert len(distances) >= 40
    assert max(distances.values()) <= 12, distances
    assert sum(distances.values()) / len(distances) <= 8, distances


@pytest.mark.parametrize("hasher", HASHERS.values(), ids=HASHERS.keys())
@pytest.mark.parametrize("path", sorted(MODES.iterdir()), ids=lambda p: p.name)
def test_every_pillow_mode_hashes_like_the_original(path: Path, hasher: Hasher) -> None:
    original = hasher((MODES / "original.jpg").read_bytes())
    ours = hasher(path.read_bytes())
    assert ours is not None and original is not None
    assert distance(ours, original) <= 2


def test_the_check_hashes_what_ingest_stores_within_two_bits() -> None:
    for path in reference_images():
        data = path.read_bytes()
        stored, checked = compute_hashes(data), hash_luma(data)
        assert abs(stored.pdq_quality - checked.pdq_quality) <= 5, path
        if stored.pdq and checked.pdq:
            assert distance(stored.pdq, checked.pdq) <= 2, path


def test_the_check_decodes_a_colour_jpeg_as_brightness_only() -> None:
    checked = hash_luma((TESTDATA / "bridge-mods" / "aaa-orig.jpg").read_bytes())
    assert (checked.picture.mode, checked.picture.size) == ("L", (512, 321))
    assert (checked.info.width, checked.info.height) == (1600, 1004)


# For each EXIF orientation, the physical transform that stores an upright picture so that
# honouring the tag shows it upright again.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("hasher", HASHERS.values(), ids=HASHERS.keys())
@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_an_orientation_tag_hashes_like_physically_upright_pixels(
    orientation: int, hasher: Hasher
) -> None:
    with Image.open(MODES / "original.jpg") as original:
        upright = original.resize((800, 502))
    stored = upright.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = hasher(encode(stored, "JPEG", quality=95, exif=exif))
    plain = hasher(encode(upright, "JPEG", quality=95))
    ignoring_tag = hasher(encode(stored, "JPEG", quality=95))
    assert tagged and plain and ignoring_tag
    assert distance(tagged, plain) <= 2
    assert distance(ignoring_tag, plain) > 31  # so the tag is what makes the difference


def test_small_rgb_images_hash_exactly_as_threatexchange_does() -> None:
    # Up to 512 pixels a side nothing is resized, so our pixels are pytx's pixels.
    for name in [
        "bridge-mods/shrink-a-lot.jpg",
        "bridge-mods/square-512x512.jpg",
        "misc-images/wee.jpg",
    ]:
        data = (TESTDATA / name).read_bytes()
        hashes = compute_hashes(data)
        assert (hashes.pdq, hashes.pdq_quality) == pdq_from_bytes(data), name


def test_low_quality_hashes_are_dropped_as_hma_does() -> None:
    assert PdqSignal.QUALITY_THRESHOLD == hashing.PDQ_QUALITY_THRESHOLD
    hashes = compute_hashes(encode(Image.new("RGB", (300, 200), "grey"), "PNG"))
    assert hashes.pdq is None
    assert hashes.pdq_quality < 50
    assert len(hashes.sha256) == 64 and len(hashes.md5) == 32


def test_transparency_hashes_as_it_is_seen_on_white() -> None:
    picture = scene(400, 300)
    cut_out = picture.convert("RGBA")
    cut_out.putalpha(Image.eval(picture.convert("L"), lambda v: 255 if v < 160 else 0))
    on_white = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), cut_out)
    as_seen = compute_hashes(encode(on_white.convert("RGB"), "PNG")).pdq
    transparent = compute_hashes(encode(cut_out, "PNG")).pdq
    assert as_seen and transparent
    assert distance(as_seen, transparent) <= 2


def test_an_animation_hashes_as_its_first_frame() -> None:
    data = animated_gif(4, 160, 120)
    with Image.open(io.BytesIO(data)) as gif:
        first_frame = encode(gif.convert("RGB"), "PNG")
    assert compute_hashes(data).pdq == compute_hashes(first_frame).pdq


def test_pdq_hash_accepts_an_opened_image_in_any_orientation() -> None:
    path = TESTDATA / "bridge-mods" / "aaa-orig.jpg"
    with Image.open(path) as image:
        from_image = pdq_hash(image)
    from_bytes = hash_luma(path.read_bytes())  # the same brightness-only decode
    assert from_image == (from_bytes.pdq, from_bytes.pdq_quality)
    stored = compute_hashes(path.read_bytes())
    assert distance(from_image[0], stored.pdq) <= 2


def test_ingest_decodes_the_bytes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    result = compute_hashes_and_info((TESTDATA / "bridge-mods" / "aaa-orig.jpg").read_bytes())
    assert len(opened) == 1
    assert (result.info.width, result.info.height) == (1600, 1004)
    assert result.picture.size == (512, 321) and result.hashes.pdq is not None


def test_the_picture_is_upright_small_and_rgb() -> None:
    stored = Image.new("RGB", (1000, 500), "blue")
    stored.paste((255, 0, 0), (0, 0, 100, 100))  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    picture = compute_hashes_and_info(encode(stored, "PNG", exif=exif)).picture
    assert (picture.mode, picture.size) == ("RGB", (256, 512))
    assert picture.getpixel((240, 10)) == (255, 0, 0)  # now in the displayed top-right corner


def test_sixteen_bit_greys_are_scaled_not_blown_out() -> None:
    grey = Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16))
    picture = compute_hashes_and_info(encode(grey, "PNG")).picture
    assert picture.getpixel((0, 0)) == (128, 128, 128)


def test_transparent_pixels_show_white_not_the_colour_hidden_under_them() -> None:
    hidden = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    picture = compute_hashes_and_info(encode(hidden, "PNG")).picture
    assert picture.getpixel((4, 4)) == (255, 255, 255)

"""Image safety: what a sender sees when their image is accepted or refused."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from app.services import media
from app.services.media import MediaError, inspect_image, open_image, read_limited, sniff_type
from tests.imagegen import (
    TESTDATA,
    animated_gif,
    encode,
    gif_with_frames,
    png_claiming,
    scene,
)


def refusal(data: bytes, **limits: object) -> MediaError:
    with pytest.raises(MediaError) as caught:
        inspect_image(data, **limits)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("image_format", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
        ("AVIF", "image/avif"),
    ],
)
def test_accepted_formats_are_recognised_from_their_bytes(image_format: str, mime: str) -> None:
    info = inspect_image(encode(scene(120, 80), image_format))
    assert info == media.ImageInfo(mime, 120, 80, frames=1, animated=False)


def test_the_bytes_win_over_a_declared_type() -> None:
    info = inspect_image(encode(scene(), "JPEG"), declared_type="image/png")
    assert info.mime == "image/jpeg"


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),  # big-endian TIFF
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "image/avif"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", None),  # a video, not an image
        (b"BMW drivers club newsletter", None),
    ],
)
def test_sniffing_reads_container_brands_and_headers(head: bytes, mime: str | None) -> None:
    assert sniff_type(head) == mime


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"PK\x03\x04zip", b"hello"],
)
def test_files_that_are_not_images_are_refused_with_the_list_of_formats(data: bytes) -> None:
    error = refusal(data)
    assert (error.status, error.code) == (415, "unsupported_type")
    assert "send JPEG, PNG, GIF, WebP, BMP or TIFF" in error.message


def test_heic_is_refused_with_advice_when_the_server_cannot_read_it() -> None:
    # pillow-heif is not a dependency, so this server cannot decode HEIC.
    error = refusal(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100)
    assert (error.status, error.code) == (415, "unsupported_type")
    assert "HEIC" in error.message and "convert" in error.message


def test_an_empty_file_is_refused() -> None:
    error = refusal(b"")
    assert (error.status, error.code) == (422, "empty_file")


def test_an_image_over_the_size_limit_is_refused_with_the_limit() -> None:
    data = encode(scene(), "PNG")
    error = refusal(data, max_bytes=len(data) - 1)
    assert (error.status, error.code) == (413, "image_too_large")
    assert f"{len(data) - 1:,} bytes" in error.message


class EndlessUpload:
    """A stream that never ends, counting what it hands out."""

    def __init__(self) -> None:
        self.served = 0

    def read(self, size: int = -1) -> bytes:
        self.served += size
        return b"\0" * size


def test_an_endless_upload_is_cut_off_at_the_limit() -> None:
    upload = EndlessUpload()
    with pytest.raises(MediaError) as caught:
        read_limited(upload, max_bytes=1000, chunk=256)
    assert caught.value.status == 413
    assert upload.served <= 1001


def test_an_upload_exactly_at_the_limit_is_read_whole() -> None:
    assert read_limited(io.BytesIO(b"x" * 1000), max_bytes=1000, chunk=64) == b"x" * 1000


@pytest.mark.parametrize(
    ("width", "height"), [(100_000, 100_000), (10_000, 10_000), (10_000, 8_000)]
)
def test_decompression_bombs_are_refused_before_decoding(width: int, height: int) -> None:
    error = refusal(png_claiming(width, height))
    assert (error.status, error.code) == (422, "decompression_bomb")


def test_pixel_limits_apply_per_call_and_leave_pillow_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    data = encode(scene(200, 200), "PNG")
    with ThreadPoolExecutor(8) as pool:
        small = [pool.submit(refusal, data, max_pixels=10_000) for _ in range(8)]
        large = [pool.submit(inspect_image, data, max_pixels=50_000) for _ in range(8)]
        assert all(f.result().code == "decompression_bomb" for f in small)
        assert all(f.result().width == 200 for f in large)
    assert before == Image.MAX_IMAGE_PIXELS


def test_a_gif_frame_claiming_to_be_huge_is_refused() -> None:
    error = refusal(gif_with_frames([(1, 1), (30_000, 30_000)]))
    assert error.code == "decompression_bomb"
    assert "30000×30000" in error.message


def test_a_tiff_page_over_the_pixel_limit_is_refused() -> None:
    pages = [scene(50, 50), scene(300, 300, seed=2)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert inspect_image(data).frames == 2
    assert refusal(data, max_pixels=10_000).code == "decompression_bomb"


def test_animations_report_their_frames() -> None:
    data = animated_gif(5)
    info = inspect_image(data)
    assert (info.frames, info.animated) == (5, True)
    with Image.open(io.BytesIO(data)) as pillow:
        assert pillow.n_frames == 5


def test_too_many_frames_are_refused() -> None:
    assert refusal(animated_gif(5), max_frames=4).code == "too_many_frames"
    error = refusal(gif_with_frames([(1, 1)] * 200_000))
    assert (error.status, error.code) == (422, "too_many_frames")
    assert "1000 frames" in error.message


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF", "BMP", "TIFF"])
def test_a_cut_off_file_is_reported_as_incomplete(image_format: str) -> None:
    data = encode(scene(), image_format)
    error = refusal(data[: len(data) * 2 // 3])
    assert (error.status, error.code) == (422, "truncated_image")
    assert "incomplete" in error.message


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_a_damaged_file_is_reported_as_damaged(image_format: str) -> None:
    data = bytearray(encode(scene(), image_format))
    data[40:] = bytes(255 - b for b in data[40:])
    error = refusal(bytes(data))
    assert error.status == 422
    assert error.code in ("corrupt_image", "truncated_image")


def test_a_file_whose_decoder_disagrees_with_its_magic_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No real file can make the two disagree today; this guards against a future Pillow plugin
    # claiming bytes that our sniffer assigns to another type.
    monkeypatch.setattr(media, "sniff_type", lambda data: "image/png")
    error = refusal(encode(scene(), "JPEG"))
    assert (error.status, error.code) == (422, "type_mismatch")


@pytest.mark.parametrize(
    "path", sorted((TESTDATA / "misc-images" / "modes").iterdir()), ids=lambda p: p.name
)
def test_every_pillow_mode_decodes(path: Path) -> None:
    info, image = open_image(path.read_bytes())
    assert (info.width, info.height, info.frames) == (1600, 1004, 1)
    assert image.size == (1600, 1004)  # decoded in full: nothing was asked to be reduced


def test_a_jpeg_can_be_decoded_at_reduced_scale() -> None:
    info, image = open_image(encode(scene(1600, 1000), "JPEG"), reduce_to=512)
    assert (info.width, info.height) == (1600, 1000)
    assert image.size == (800, 500)  # the smallest JPEG scale that still covers 512


def test_the_displayed_size_follows_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    info = inspect_image(encode(Image.new("RGB", (40, 20)), "PNG", exif=exif))
    assert (info.width, info.height) == (20, 40)


def test_concurrent_inspections_agree() -> None:
    data = encode(scene(300, 200), "JPEG")
    barrier = threading.Barrier(6)

    def inspect() -> media.ImageInfo:
        barrier.wait()
        return inspect_image(data)

    with ThreadPoolExecutor(6) as pool:
        results = {future.result() for future in [pool.submit(inspect) for _ in range(6)]}
    assert results == {media.ImageInfo("image/jpeg", 300, 200, 1, False)}


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _zip_bytes() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.txt", "not an image")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "appended",
    [b"<html><script>alert(1)</script></html>", b"<?php system($_GET['c']); ?>"],
    ids=["html", "php"],
)
def test_a_valid_image_with_markup_appended_is_refused_as_a_polyglot(appended: bytes) -> None:
    with pytest.raises(MediaError) as refused:
        inspect_image(_png_bytes() + appended)
    assert (refused.value.code, refused.value.status) == ("polyglot", 422)
    assert "hidden inside" in refused.value.message


def test_a_valid_image_with_a_zip_appended_is_refused_as_a_polyglot() -> None:
    with pytest.raises(MediaError) as refused:
        inspect_image(_png_bytes() + _zip_bytes())
    assert refused.value.code == "polyglot"


def test_a_plain_image_is_not_mistaken_for_a_polyglot() -> None:
    info = inspect_image(_png_bytes())
    assert (info.mime, info.width) == ("image/png", 32)

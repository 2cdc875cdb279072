"""The media store keeps every accepted image safely; derived images are safe to look at."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.services.hashing import compute_hashes_and_info
from app.services.media import MediaError, sniff_type
from app.services.storage import (
    DerivedStore,
    FileSystemStore,
    MissingMedia,
    make_derivatives,
)
from tests.imagegen import encode, scene, text_card

BLOB = b"not really an image, the store does not care"
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def pixels(webp: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(webp)).convert("L")).astype(float)


def test_a_blob_is_stored_under_its_sha256(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    assert store.put(BLOB) == BLOB_SHA
    assert store.exists(BLOB_SHA)
    assert store.get(BLOB_SHA) == BLOB
    with store.open(BLOB_SHA) as stream:
        assert stream.read(3) == BLOB[:3]
    assert files_under(tmp_path) == [tmp_path / BLOB_SHA[:2] / BLOB_SHA[2:4] / BLOB_SHA]


def test_the_same_bytes_twice_are_stored_once(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    assert store.put(BLOB) == store.put(BLOB)
    assert len(files_under(tmp_path)) == 1


def test_a_deleted_blob_is_gone(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.put(BLOB)
    assert store.delete(BLOB_SHA) is True
    assert store.delete(BLOB_SHA) is False
    assert not store.exists(BLOB_SHA)
    with pytest.raises(MissingMedia):
        store.get(BLOB_SHA)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", BLOB_SHA.upper(), BLOB_SHA[:-1], BLOB_SHA + "0", "", "/" * 64]
)
def test_names_that_are_not_a_sha256_never_reach_the_filesystem(tmp_path: Path, name: str) -> None:
    store = FileSystemStore(tmp_path / "store")
    for operation in (store.get, store.exists, store.delete, store.open, store.path_for):
        with pytest.raises(ValueError):
            operation(name)
    assert not (tmp_path / "store").exists()


def test_put_makes_the_blob_and_its_directory_entry_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd)
    )
    FileSystemStore(tmp_path).put(BLOB)
    blob_directory = str(tmp_path / BLOB_SHA[:2] / BLOB_SHA[2:4])
    assert any(name.startswith(blob_directory + "/.incoming-") for name in synced)  # the bytes
    assert synced[-1] == blob_directory  # the rename, after it happened
    assert str(tmp_path / BLOB_SHA[:2]) in synced  # the new directory's own entry


def test_concurrent_puts_of_one_blob_from_threads_and_processes(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    data = os.urandom(256 * 1024)
    with ThreadPoolExecutor(8) as threads:
        from_threads = set(threads.map(store.put, [data] * 16))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=spawn) as processes:
        from_processes = set(processes.map(store.put, [data] * 6))
    assert from_threads == from_processes == {hashlib.sha256(data).hexdigest()}
    assert [p.name for p in files_under(tmp_path)] == [hashlib.sha256(data).hexdigest()]
    assert store.get(hashlib.sha256(data).hexdigest()) == data


def test_derived_images_are_small_webp_and_upright() -> None:
    stored = scene(1200, 600)
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed rotated: 600 wide, 1200 tall
    derivatives = make_derivatives(encode(stored, "JPEG", exif=exif))
    for image_bytes in (derivatives.thumbnail, derivatives.preview):
        assert sniff_type(image_bytes) == "image/webp"
        with Image.open(io.BytesIO(image_bytes)) as image:
            assert image.size == (160, 320)


def test_derived_images_carry_no_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # camera make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS: where the photo was taken
    icc = b"\0" * 128 + b"acspAPPL-profile-marker"
    data = encode(scene(), "JPEG", exif=exif, icc_profile=icc, xmp=b"<x:xmpmeta>author</x:xmpmeta>")
    assert b"SecretCam" in data and b"xmpmeta" in data and b"profile-marker" in data
    derivatives = make_derivatives(data)
    for image_bytes in (derivatives.thumbnail, derivatives.preview):
        for marker in (b"SecretCam", b"xmpmeta", b"profile-marker"):
            assert marker not in image_bytes
        with Image.open(io.BytesIO(image_bytes)) as image:
            assert not {"exif", "icc_profile", "xmp"} & set(image.info)


def test_the_preview_hides_what_the_thumbnail_shows() -> None:
    hello, world = make_derivatives(text_card("HELLO")), make_derivatives(text_card("WORLD"))
    # The words are told apart in the thumbnails, not in the previews.
    assert np.abs(pixels(hello.thumbnail) - pixels(world.thumbnail)).mean() > 4
    assert np.abs(pixels(hello.preview) - pixels(world.preview)).mean() < 2
    # A black-and-white checkerboard (left half) becomes an even grey.
    checker = (slice(20, 180), slice(20, 140))
    assert pixels(hello.thumbnail)[checker].std() > 100
    assert pixels(hello.preview)[checker].std() < 8


def test_the_preview_is_greyscale() -> None:
    preview = make_derivatives(scene()).preview
    rgb = np.asarray(Image.open(io.BytesIO(preview)).convert("RGB")).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 2
    assert np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 2


def test_derivatives_from_ingests_decode_match_those_from_bytes() -> None:
    data = encode(scene(900, 700), "PNG")
    assert make_derivatives(compute_hashes_and_info(data).picture) == make_derivatives(data)


def test_derivatives_from_bytes_are_checked_like_uploads() -> None:
    with pytest.raises(MediaError):
        make_derivatives(b"<html>")


def test_the_derived_store_keeps_both_images_beside_the_blob_name(tmp_path: Path) -> None:
    derived = DerivedStore(tmp_path)
    derivatives = make_derivatives(scene())
    derived.save(BLOB_SHA, derivatives)
    directory = tmp_path / BLOB_SHA[:2] / BLOB_SHA[2:4]
    assert files_under(tmp_path) == [
        directory / f"{BLOB_SHA}.preview.webp",
        directory / f"{BLOB_SHA}.thumb.webp",
    ]
    assert derived.exists(BLOB_SHA)
    assert derived.get(BLOB_SHA, "thumb") == derivatives.thumbnail
    assert derived.get(BLOB_SHA, "preview") == derivatives.preview
    assert derived.delete(BLOB_SHA) is True
    assert not derived.exists(BLOB_SHA)
    with pytest.raises(MissingMedia):
        derived.get(BLOB_SHA, "thumb")
    with pytest.raises(ValueError):
        derived.get("../" + BLOB_SHA[3:], "thumb")

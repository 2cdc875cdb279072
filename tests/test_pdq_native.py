"""PDQ through pdqhash's C++ without the GIL: the same hash as ``pdqhash.compute``, to the bit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pdqhash
import pytest
from PIL import Image

from app.services import pdq_native
from tests.imagegen import reference_images, scene


def as_pytx_does(grey: np.ndarray) -> tuple[str, int]:
    """``pdqhash.compute`` on the RGB array with ``grey`` in every channel, as pytx calls it."""
    bits, quality = pdqhash.compute(np.repeat(grey[:, :, None], 3, axis=2))
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), int(quality)


def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    shapes = [(1, 1), (3, 5), (63, 64), (64, 64), (321, 512), (512, 512), (37, 500), (1004, 1600)]
    found = []
    for rows, cols in shapes:
        found.append(rng.integers(0, 256, (rows, cols), dtype=np.uint8))  # noise
        found.append(np.full((rows, cols), 128, np.uint8))  # flat: quality 0
        diagonal = np.add.outer(np.arange(rows), 3 * np.arange(cols)) % 256
        found.append(diagonal.astype(np.uint8))
    found.append(np.asarray(scene(640, 480).convert("L")))
    for path in reference_images()[:12]:
        with Image.open(path) as image:
            image.draft("L", (512, 512))
            found.append(np.asarray(image.convert("L")))
    return found


def test_the_c_function_is_found_so_hashing_does_not_hold_the_gil() -> None:
    # A pdqhash release that renamed it would fall back silently; this says so in CI instead.
    assert pdq_native.BACKEND == "pdqhash C++ through ctypes"


def test_hashes_and_qualities_equal_pdqhash_compute_bit_for_bit() -> None:
    for grey in arrays():
        assert pdq_native.hash_grey(grey) == as_pytx_does(grey), grey.shape


def test_the_fallback_gives_the_same_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = [pdq_native.hash_grey(grey) for grey in arrays()[:9]]
    monkeypatch.setattr(pdq_native, "_hash256_from_float_luma", None)
    assert [pdq_native.hash_grey(grey) for grey in arrays()[:9]] == expected


def test_threads_hashing_at_once_each_get_their_own_hash() -> None:
    # The call runs without the GIL, so threads really overlap inside the C++.
    greys = [g for g in arrays() if g.size >= 64 * 64]
    expected = [as_pytx_does(grey) for grey in greys]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(pdq_native.hash_grey, greys)) == expected


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8, 3), np.uint8),  # colour
        np.zeros((8, 8), np.float32),  # not 8-bit
        np.zeros((0, 8), np.uint8),  # empty
    ],
)
def test_arrays_it_cannot_hash_are_refused_with_what_is_wrong(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty 2-D uint8"):
        pdq_native.hash_grey(bad)

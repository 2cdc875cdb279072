"""PDQ of a brightness array, computed by pdqhash's own C++ without holding the GIL.

``pdqhash.compute`` (what python-threatexchange calls) is a Cython wrapper that runs Meta's C++
``pdqHash256FromFloatLuma`` while holding the GIL, so in our one-process server a worker thread
hashing a picture stops the web threads and the other worker threads for those milliseconds.
The wrapper's work around that call is small: the luma as ``0.299 R + 0.587 G + 0.114 B`` in
float64 NumPy, cast to float32, and the 256 bits read out of the resulting ``Hash256``.

Here the same compiled function, from the same shared library, is called through ctypes, which
releases the GIL for the call. The inputs are the wrapper's, the luma looked up from the same
arithmetic on each of the 256 grey levels, so the hash and quality are the same bit for bit
(tests/test_pdq_native.py compares them on many arrays). If the library of an installed pdqhash
does not export the function under its C++ name, ``hash_grey`` falls back to
``pdqhash.compute`` and ``BACKEND`` says so; bench/bench_pdq_hash.py prints which one ran.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

import numpy as np
import pdqhash
from pdqhash import bindings

log = logging.getLogger(__name__)

# facebook::pdq::hashing::pdqHash256FromFloatLuma(float*, float*, int, int, float (*)[64],
#     float (*)[64], float (*)[16], Hash256&, int&), as the Itanium C++ ABI names it.
SYMBOL = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"

_FLOATS = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")


def _load() -> Callable[..., None] | None:
    try:
        function = getattr(ctypes.CDLL(bindings.__file__), SYMBOL)
    except (OSError, AttributeError) as error:
        log.warning("PDQ falls back to pdqhash.compute, which holds the GIL: %s", error)
        return None
    function.argtypes = [
        _FLOATS,  # the luma, rows × columns
        _FLOATS,  # scratch of the same size
        ctypes.c_int,
        ctypes.c_int,
        _FLOATS,  # 64×64
        _FLOATS,  # 16×64
        _FLOATS,  # 16×16
        np.ctypeslib.ndpointer(np.uint16, shape=(16,), flags="C_CONTIGUOUS"),  # Hash256
        np.ctypeslib.ndpointer(np.int32, shape=(1,), flags="C_CONTIGUOUS"),  # quality
    ]
    function.restype = None
    return function


_hash256_from_float_luma = _load()

# The wrapper computes each pixel's luma from its own value alone, term by term in float64, then
# casts to float32; the same arithmetic on the 256 possible values, looked up per pixel, gives the
# same luma to the bit in a tenth of the time (0.1 ms instead of 1 ms for 512×321).
_LEVELS = np.arange(256, dtype=np.uint8)
_LUMA_OF_LEVEL = (_LEVELS * 0.299 + _LEVELS * 0.587 + _LEVELS * 0.114).astype(np.float32)
BACKEND = "pdqhash C++ through ctypes" if _hash256_from_float_luma else "pdqhash.compute"


def hash_grey(grey: np.ndarray) -> tuple[str, int]:
    """The PDQ hash (64 hex characters, most significant bit first, as pytx writes it) and the
    quality of an 8-bit brightness array, exactly as ``pdqhash.compute`` gives them for the
    RGB array with ``grey`` in all three channels."""
    if grey.ndim != 2 or grey.dtype != np.uint8 or grey.size == 0:
        raise ValueError(f"PDQ needs a non-empty 2-D uint8 array, not {grey.dtype} {grey.shape}")
    if _hash256_from_float_luma is None:
        return _hash_with_wrapper(grey)
    luma = np.take(_LUMA_OF_LEVEL, grey)
    words = np.zeros(16, np.uint16)
    quality = np.zeros(1, np.int32)
    _hash256_from_float_luma(
        luma,
        np.empty_like(luma),
        luma.shape[0],
        luma.shape[1],
        np.empty((64, 64), np.float32),
        np.empty((16, 64), np.float32),
        np.empty((16, 16), np.float32),
        words,
        quality,
    )
    # Hash256 holds bit k in word k // 16, bit k % 16; pytx's hex starts with bit 255.
    return words[::-1].astype(">u2").tobytes().hex(), int(quality[0])


def _hash_with_wrapper(grey: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.repeat(grey[:, :, None], 3, axis=2))
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), int(quality)

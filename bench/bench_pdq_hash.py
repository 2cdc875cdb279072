"""PDQ hashing speed for a 1600×1004 JPEG, and how close the reduced decode stays to full size.

Run from the repository root: ``.venv/bin/python bench/bench_pdq_hash.py [--runs 300]``.
The first table times our hashing next to python-threatexchange's own ``pdq_from_bytes`` (what
HMA runs, at full resolution) in the same process. The second table compares resize filters for
the reduced decode: the Hamming distance of its hash from the full-resolution hash over Meta's
PDQ reference images of quality 80 or more.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pdqhash
import PIL
from PIL import Image
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services import pdq_native
from app.services.hashing import (
    compute_hashes_and_info,
    flatten_to_rgb,
    hash_luma,
    pdq_hash,
    pdq_of_picture,
    prepare_picture,
    upright,
)
from app.services.media import open_image
from tests.imagegen import TESTDATA

PHOTO = TESTDATA / "bridge-mods" / "aaa-orig.jpg"  # 1600×1004, 361 KB
FILTERS = ["BILINEAR", "BICUBIC", "LANCZOS", "HAMMING", "BOX"]


def timings_ms(work: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Run ``work`` 10 times to warm up, then ``runs`` times: wall and CPU milliseconds per run.

    CPU time (this thread's) leaves out time spent waiting for a core, so it shows the cost of
    the work itself when other processes compete for the machine.
    """
    for _ in range(10):
        work()
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        work()
        cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - started) / 1e6)
    return wall, cpu


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def hex_of(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def full_resolution(data: bytes) -> tuple[str, int]:
    with Image.open(io.BytesIO(data)) as image:
        bits, quality = pdqhash.compute(np.asarray(flatten_to_rgb(upright(image))))
    return hex_of(bits), int(quality)


def reduced(data: bytes, resample: Image.Resampling) -> str:
    """Our reduced decode with a chosen filter (the service itself uses BILINEAR)."""
    _, image = open_image(data, reduce_to=512)
    picture = flatten_to_rgb(upright(image))
    scale = 512 / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, resample)
    return hex_of(pdqhash.compute(np.asarray(picture))[0])


def speed_table(runs: int) -> None:
    data = PHOTO.read_bytes()
    picture = prepare_picture(Image.open(io.BytesIO(data)))
    cases = {
        "pdq_hash: JPEG bytes → reduced brightness-only decode → PDQ": lambda: pdq_hash(
            Image.open(io.BytesIO(data))
        ),
        "colour decode → upright RGB ≤ 512 px → PDQ (the worker: the picture is kept for the "
        "previews)": lambda: pdq_of_picture(prepare_picture(Image.open(io.BytesIO(data)))),
        "hash_luma: checks + brightness-only decode + PDQ (what /api/v1/check runs)": (
            lambda: hash_luma(data)
        ),
        "compute_hashes_and_info: checks + SHA-256 + MD5 + PDQ": lambda: compute_hashes_and_info(
            data
        ),
        "PDQ of the prepared 512×321 picture only": lambda: pdq_hash(picture),
        "the same through pdqhash.compute (holds the GIL)": lambda: pdqhash.compute(
            np.asarray(picture)
        ),
        "anchor: threatexchange pdq_from_bytes (full resolution)": lambda: pdq_from_bytes(data),
    }
    print(f"\nPDQ hashing of {PHOTO.name} ({len(data):,} bytes), {runs} runs each\n")
    print("| what | p50 ms | p95 ms | mean ms | CPU p50 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, work in cases.items():
        wall, cpu = timings_ms(work, runs)
        p50, p95, mean = percentile(wall, 0.50), percentile(wall, 0.95), statistics.fmean(wall)
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {mean:.2f} | {percentile(cpu, 0.50):.2f} |")


def filter_table() -> None:
    images = [
        (p, p.read_bytes()) for p in sorted(TESTDATA.rglob("*")) if p.suffix in (".jpg", ".png")
    ]
    references = {path: full_resolution(data) for path, data in images}
    kept = [(path, data) for path, data in images if references[path][1] >= 80]
    photo = PHOTO.read_bytes()
    print(f"\nReduced decode vs full resolution, {len(kept)} reference images of quality ≥ 80\n")
    print("| filter | max bits | mean bits | p50 ms (1600×1004 JPEG) |")
    print("|---|---:|---:|---:|")
    for name in FILTERS:
        resample = Image.Resampling[name]
        distances = [
            bin(int(reduced(data, resample), 16) ^ int(references[path][0], 16)).count("1")
            for path, data in kept
        ]
        p50 = statistics.median(timings_ms(lambda r=resample: reduced(photo, r), 50)[0])
        print(f"| {name} | {max(distances)} | {statistics.fmean(distances):.2f} | {p50:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs per case (≥ 200)")
    runs = max(200, parser.parse_args().runs)
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Pillow {PIL.__version__}, pdqhash {pdqhash.__version__} ({pdq_native.BACKEND}), "
        f"load average {os.getloadavg()[0]:.2f} at start"  # other work on the machine skews this
    )
    speed_table(runs)
    filter_table()


if __name__ == "__main__":
    main()

"""NudeNet on this server: time per 1024×768 JPEG, memory the model adds, and how to share it.

Run from the repository root: ``.venv/bin/python bench/bench_nudenet.py [--runs 300]``. Needs
the extra (``pip install -r requirements-nudenet.txt``).

1. Memory: resident set size before importing onnxruntime, after it, and after loading the
   model once (what one worker process pays).
2. One image at a time on one thread, model loaded once: the whole ``detect`` (JPEG bytes →
   detections) and its parts (decode and prepare, the model, post-processing). Target p50 ≤ 40 ms.
3. Two worker threads sharing the model three ways (one shared session with one thread per call
   and no lock, which the plugin uses; one session with two threads per call behind a lock; one
   session per thread): images a second, and the extra memory of a second session.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: find app/

from plugins.nudenet import detector


def rss_mib() -> float:
    """This process's resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def photo(width: int = 1024, height: int = 768, seed: int = 7) -> bytes:
    """A synthetic photo-like JPEG: gradients, soft shapes and grain (no real imagery)."""
    import random

    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        box = (x, y, x + rng.randrange(30, 300), y + rng.randrange(30, 300))
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(3))
    grain = Image.effect_noise((width, height), 12).convert("RGB")
    image = Image.blend(image, grain, 0.15)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def timed_ms(work: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``runs`` calls after 10 warm-up calls.

    CPU time (this thread's; with one intra-op thread onnxruntime computes on the caller's
    thread) leaves out waiting for a core, so it shows the work itself on a busy machine.
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


def summary(wall: list[float], cpu: list[float]) -> str:
    cuts = statistics.quantiles(wall, n=100, method="inclusive")
    return (
        f"{statistics.median(wall):7.1f} {cuts[89]:7.1f} {cuts[98]:7.1f} {max(wall):7.1f}"
        f" {statistics.median(cpu):8.1f}"
    )


def two_threads(work: Callable[[int], Any], seconds: float) -> str:
    """Images a second, and process CPU ms per image, when two threads call ``work(index)``."""
    done = [0, 0]
    stop, cpu = time.perf_counter() + seconds, time.process_time()

    def loop(index: int) -> None:
        while time.perf_counter() < stop:
            work(index)
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rates(sum(done), seconds, time.process_time() - cpu)


def rates(images: int, seconds: float, cpu_seconds: float) -> str:
    """Images a second, CPU ms per image, and cores kept busy (CPU seconds per second)."""
    per_image, cores = cpu_seconds * 1000 / images, cpu_seconds / seconds
    return f"{images / seconds:7.1f} {per_image:9.1f} {cores:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}")
    print(f"Python {platform.python_version()}, {platform.processor() or platform.machine()}")
    data = photo()
    print(f"image: 1024×768 JPEG, {len(data) / 1024:.0f} KB")

    before = rss_mib()
    import onnxruntime

    imported = rss_mib()
    started = time.perf_counter()
    model = detector.session()
    loaded = time.perf_counter() - started
    after = rss_mib()
    print(f"\nonnxruntime {onnxruntime.__version__}, model {detector.model_path().name}")
    print(f"RSS before: {before:.0f} MiB; importing onnxruntime: +{imported - before:.0f} MiB;")
    print(f"loading the model: +{after - imported:.0f} MiB in {loaded * 1000:.0f} ms;")
    print(f"added in all: {after - before:.0f} MiB (target ≤ 300)")

    blob, scale, size = detector.prepare(data)
    name = model.get_inputs()[0].name
    output = model.run(None, {name: blob})[0]
    rows = [
        ("detect(bytes): the target", lambda: detector.detect(data, model)),
        ("  decode + prepare", lambda: detector.prepare(data)),
        ("  model.run", lambda: model.run(None, {name: blob})),
        ("  post-processing", lambda: detector.detections(output, scale, size)),
    ]
    print(f"\none thread, {args.runs} runs     p50 ms  p90 ms  p99 ms  max ms  CPU p50")
    for label, work in rows:
        print(f"{label:26} {summary(*timed_ms(work, args.runs))}")

    print(f"\nfor {args.seconds:g} s each                      images/s  CPU ms/image  cores")
    print(f"{'one thread alone':34} {one_thread(model, data, args.seconds)}")
    print(f"{'shared, 1 thread/call, no lock':34} "
          f"{two_threads(lambda i: detector.detect(data, model), args.seconds)}")  # fmt: skip
    locked, lock = detector.new_session(threads=2), threading.Lock()

    def with_lock(index: int) -> None:
        blob, scale, size = detector.prepare(data)
        with lock:
            result = locked.run(None, {name: blob})[0]
        detector.detections(result, scale, size)

    print(f"{'shared, 2 threads/call, lock':34} {two_threads(with_lock, args.seconds)}")
    grown = rss_mib()
    own = [model, detector.new_session()]
    print(f"{'one session per thread':34} "
          f"{two_threads(lambda i: detector.detect(data, own[i]), args.seconds)}")  # fmt: skip
    print(f"(a second session adds {rss_mib() - grown:.0f} MiB)")


def one_thread(model: Any, data: bytes, seconds: float) -> str:
    """Images a second, and CPU ms per image, from one thread: the baseline."""
    count, stop, cpu = 0, time.perf_counter() + seconds, time.process_time()
    while time.perf_counter() < stop:
        detector.detect(data, model)
        count += 1
    return rates(count, seconds, time.process_time() - cpu)


if __name__ == "__main__":
    main()

"""Async ingest throughput: 100 KB JPEGs posted to the real one-process server.

Starts ``python wsgi.py`` (waitress + Huey worker threads + SQLite, as ``make run`` does) on a
fresh instance folder on loopback, creates a source with the CLI, then posts inline JPEGs of about
100 KB with 1, 4, 8, 16 and 32 concurrent clients (keep-alive connections), each level bounded by
time and count. Reports accepted items per second and latency percentiles, and how many items the
worker had still to process when the level ended and how long it took to catch up (the next
level starts only then, or after ``--drain-timeout``). The rate limit is switched off: it is not
what is measured.

    .venv/bin/python bench/bench_ingest.py [--seconds 10] [--max-requests 3000] [--multipart]
        [--profile out.svg]   # py-spy flame graph of the server during the run

Target (docs: DESIGN.md): >= 200 items/s accepted with p99 <= 100 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
TARGET_BYTES = 100 * 1024
LEVELS = (1, 4, 8, 16, 32)


def noisy_jpeg(target: int = TARGET_BYTES, seed: int = 1) -> bytes:
    """A synthetic photo-like JPEG (shapes plus noise) whose size is close to ``target``."""
    rng = random.Random(seed)
    image = Image.new("RGB", (800, 600), (90, 120, 160))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(800), rng.randrange(600)
        box = (x, y, x + rng.randrange(20, 300), y + rng.randrange(20, 200))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    noise = Image.effect_noise((800, 600), 40).convert("RGB")
    image = Image.blend(image, noise, 0.25)
    best = b""
    for quality in range(95, 20, -5):  # the highest quality that fits
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        best = buffer.getvalue()
        if len(best) <= target * 1.05:
            break
    return best


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same picture with a JPEG comment segment: new bytes (a new SHA-256), same decode."""
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return jpeg[:2] + segment + jpeg[2:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flask_cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def start_server(instance: Path, port: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {
        **os.environ,
        "MODTOOLS_INSTANCE_PATH": str(instance),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODTOOLS_API_RATE_LIMIT_PER_MINUTE": "0",
        "MODTOOLS_LOG_LEVEL": "WARNING",
    }
    flask_cli(env, "db", "upgrade")
    # Then any table whose migration is not written yet, so the worker runs the whole pipeline.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from app import create_app; from app.extensions "
            "import db; app = create_app(); app.app_context().push(); db.create_all()",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    log = (instance.parent / "server.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server, env
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not become healthy; see " + str(instance.parent))


def build_bodies(image: bytes, count: int, run: str, multipart: bool) -> list[tuple[bytes, str]]:
    """Request bodies with distinct external ids and distinct image bytes."""
    bodies = []
    for n in range(count):
        data = with_comment(image, f"{run}-{n}".encode())
        external_id = f"{run}-{n}"
        if multipart:
            boundary = "benchboundary"
            item = json.dumps({"external_id": external_id}).encode()
            body = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="item"\r\n\r\n'.encode()
                + item
                + f"\r\n--{boundary}\r\nContent-Disposition: form-data; "
                'name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                + data
                + f"\r\n--{boundary}--\r\n".encode()
            )
            bodies.append((body, f"multipart/form-data; boundary={boundary}"))
        else:
            payload = {
                "external_id": external_id,
                "image": {"data": base64.b64encode(data).decode()},
                "uploader": {"id": str(n % 97), "ip": "203.0.113.9"},
            }
            bodies.append((json.dumps(payload).encode(), "application/json"))
    return bodies


def run_level(
    port: int, token: str, bodies: list[tuple[bytes, str]], clients: int, seconds: float
) -> dict[str, float]:
    """Post ``bodies`` with ``clients`` threads until they run out or ``seconds`` pass."""
    lock = threading.Lock()
    queue = iter(bodies)
    latencies: list[float] = []
    errors: list[int] = []
    stop_at = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            with lock:
                entry = next(queue, None)
            if entry is None:
                break
            body, content_type = entry
            started = time.perf_counter()
            connection.request(
                "POST",
                "/api/v1/items",
                body,
                {"Content-Type": content_type, "Authorization": f"Bearer {token}"},
            )
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                (latencies if response.status == 202 else errors).append(
                    elapsed if response.status == 202 else response.status
                )
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0

    return {
        "clients": clients,
        "accepted": len(latencies),
        "errors": len(errors),
        "per_second": len(latencies) / wall,
        "p50": percentile(50),
        "p95": percentile(95),
        "p99": percentile(99),
        "mean": statistics.fmean(ordered) * 1000 if ordered else 0,
    }


def backlog(instance: Path) -> int:
    """Items the worker has not processed yet (still ``received``)."""
    with sqlite3.connect(f"file:{instance / 'modtools.db'}?mode=ro", uri=True) as connection:
        return connection.execute(
            "SELECT count(*) FROM items WHERE status = 'received'"
        ).fetchone()[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the server process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(instance: Path, timeout: float) -> str:
    """Wait (bounded) for the worker to process the backlog, so each level starts clean."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if backlog(instance) == 0:
            return f"{time.monotonic() - began:.1f} s"
        time.sleep(0.25)
    return f"> {timeout:g} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per level")
    parser.add_argument("--max-requests", type=int, default=3000, help="count limit per level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--multipart", action="store_true", help="multipart instead of JSON")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="longest wait for the worker between levels",
    )
    parser.add_argument(
        "--profile",
        help="write a py-spy profile of the server here: .svg flame graph, else collapsed stacks",
    )
    args = parser.parse_args()

    image = noisy_jpeg()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        instance = Path(folder) / "instance"
        port = free_port()
        server, env = start_server(instance, port)
        spy = None
        try:
            token = json.loads(flask_cli(env, "sources", "create", "Bench", "--json"))["token"]
            if args.profile:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--format",
                        "flamegraph" if args.profile.endswith(".svg") else "raw",
                        "-o",
                        args.profile,
                        "-p",
                        str(server.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            kind = "multipart" if args.multipart else "JSON base64"
            print(
                f"load average {os.getloadavg()[0]:.2f} at start; "
                f"{len(image):,}-byte JPEG, {kind}, {os.cpu_count()} CPUs, "
                f"{args.seconds:g} s or {args.max_requests} requests per level\n"
            )
            print(
                "| clients | accepted | items/s | p50 ms | p95 ms | p99 ms | errors | backlog "
                "| drained in | CPU ms/item |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for clients in map(int, args.levels.split(",")):
                bodies = build_bodies(image, args.max_requests, f"c{clients}", args.multipart)
                cpu_before = cpu_seconds(server.pid)
                result = run_level(port, token, bodies, clients, args.seconds)
                left = backlog(instance)
                drained = drain(instance, args.drain_timeout)
                # Everything the server spent on these items, accepting and processing them.
                per_item = (cpu_seconds(server.pid) - cpu_before) / max(result["accepted"], 1)
                print(
                    f"| {clients} | {result['accepted']} | {result['per_second']:.0f} | "
                    f"{result['p50']:.1f} | {result['p95']:.1f} | {result['p99']:.1f} | "
                    f"{result['errors']} | {left} | {drained} | {per_item * 1000:.1f} |",
                    flush=True,
                )
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            server.send_signal(signal.SIGTERM)
            server.wait(60)


if __name__ == "__main__":
    main()

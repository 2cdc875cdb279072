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
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    cpu_seconds,
    flask_cli,
    free_port,
    noisy_jpeg,
    start_server,
    stop,
    with_comment,
)

LEVELS = (1, 4, 8, 16, 32)


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
    parser.add_argument(
        "--quick", action="store_true", help="1, 4 and 16 clients, 5 s each (make bench)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per level")
    parser.add_argument("--max-requests", type=int, default=3000, help="count limit per level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--multipart", action="store_true", help="multipart instead of JSON")
    parser.add_argument(
        "--gil", action="store_true", help="profile only the thread holding the GIL"
    )
    parser.add_argument(
        "--idle", action="store_true", help="profile waiting threads too (where wall time goes)"
    )
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
    if args.quick:
        args.seconds, args.levels = min(args.seconds, 5.0), "1,4,16"

    image = noisy_jpeg()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        instance = Path(folder) / "instance"
        port = free_port()
        server, env = start_server(instance, port)
        spy = None
        try:
            token = json.loads(flask_cli(env, "sources", "create", "Bench", "--json"))["token"]
            if args.profile:
                sampling = args.gil or args.idle
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
                        *(["--gil"] if args.gil else []),
                        *(["--idle"] if args.idle else []),
                        # The first level only, without the drain after it.
                        *(["--duration", str(round(args.seconds))] if sampling else []),
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
                "| drained in | CPU ms/item | server CPU during level |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for clients in map(int, args.levels.split(",")):
                bodies = build_bodies(image, args.max_requests, f"c{clients}", args.multipart)
                cpu_before = cpu_seconds(server.pid)
                began = time.perf_counter()
                result = run_level(port, token, bodies, clients, args.seconds)
                # How busy the server was while accepting: 200 % is both cores.
                busy = (cpu_seconds(server.pid) - cpu_before) / (time.perf_counter() - began)
                left = backlog(instance)
                drained = drain(instance, args.drain_timeout)
                # Everything the server spent on these items, accepting and processing them.
                per_item = (cpu_seconds(server.pid) - cpu_before) / max(result["accepted"], 1)
                print(
                    f"| {clients} | {result['accepted']} | {result['per_second']:.0f} | "
                    f"{result['p50']:.1f} | {result['p95']:.1f} | {result['p99']:.1f} | "
                    f"{result['errors']} | {left} | {drained} | {per_item * 1000:.1f} | "
                    f"{busy:.0%} |",
                    flush=True,
                )
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            stop(server)


if __name__ == "__main__":
    main()

"""The full pipeline rate with the local scanners: items submitted until every one is routed.

Makes a fresh instance with a source and a PDQ bank of ``--bank-size`` random entries (label
``spam``), starts the one-process server (``python wsgi.py``: waitress, the embedded Huey
consumer with its default threads, SQLite) with the default plugins: the scanners switched on by
default are the local ones (the hash bank; NudeNet is an optional extra and off). One item is
sent and routed first, which also builds the PDQ index. Then ``--items`` distinct 100 KB JPEGs
(different pictures, so different hashes; JSON with base64, as ``bench_ingest.py`` sends them)
are posted as fast as ``--clients`` clients can, and the database is polled (read-only) until
every item has left ``received`` and ``scanning`` for a routed state (``queued``, ``cleared``,
...). For each item that is: accept (checks, hashes, blob, item + job rows), then in the worker
derived images, the hash-bank scan, its result and the routing.

    .venv/bin/python bench/bench_pipeline.py              # 1,000 items, 8 clients, 1M bank
    .venv/bin/python bench/bench_pipeline.py --quick      # 300 items, 100k bank
    .venv/bin/python bench/bench_pipeline.py --json

Target (DESIGN.md, issue #4): full pipeline with local scanners >= 50 items/s on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

from common import (
    bulk_load_pdq_bank,
    cpu_seconds,
    create_source,
    distinct_jpegs,
    flask_cli,
    free_port,
    launch,
    machine_line,
    memory_mib,
    percentiles,
    prepare_instance,
    server_env,
    server_errors,
    start_profile,
    stop,
    stop_profile,
    table,
)

TARGET = 50
WAITING = ("received", "scanning")


def make_bodies(count: int) -> list[bytes]:
    """``count`` JSON bodies of distinct ~100 KB JPEGs, made on every core."""
    chunk = 50
    with ProcessPoolExecutor() as pool:
        parts = pool.map(
            distinct_jpegs,
            [min(chunk, count - start) for start in range(0, count, chunk)],
            [100 * 1024] * len(range(0, count, chunk)),
            [1000 + start for start in range(0, count, chunk)],
        )
        images = [image for part in parts for image in part]
    return [
        json.dumps(
            {
                "external_id": f"p-{n}",
                "image": {"data": base64.b64encode(image).decode()},
                "uploader": {"id": str(n % 97)},
            }
        ).encode()
        for n, image in enumerate(images)
    ]


def submit(port: int, token: str, bodies: list[bytes], clients: int) -> dict:
    """Post every body with ``clients`` threads over keep-alive connections."""
    lock = threading.Lock()
    queue = iter(bodies)
    latencies: list[float] = []
    errors: list[str] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                body = next(queue, None)
            if body is None:
                break
            started = time.perf_counter()
            connection.request("POST", "/api/v1/items", body, headers)
            response = connection.getresponse()
            answer = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if response.status == 202:
                    latencies.append(elapsed)
                else:
                    errors.append(f"{response.status} {answer[:200]!r}")
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"accepted": len(latencies), "errors": errors, **percentiles(latencies)}


def counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return dict(connection.execute("SELECT status, count(*) FROM items GROUP BY status"))


def wait_routed(database: Path, expected: int, timeout: float) -> float:
    """Poll until ``expected`` items are routed; the moment that happened (perf_counter)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = counts(database)
        routed = sum(n for status, n in now.items() if status not in WAITING)
        if routed >= expected:
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"not every item was routed within {timeout:g} s: {counts(database)}")


def time_in_pipeline(database: Path) -> dict[str, float]:
    """Per item, from creation to its last update (the routing), in ms."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT created_at, updated_at FROM items WHERE external_id LIKE 'p-%'"
        ).fetchall()
    return percentiles(
        (datetime.fromisoformat(updated) - datetime.fromisoformat(created)).total_seconds() * 1000
        for created, updated in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 items, a 100k bank")
    parser.add_argument("--items", type=int)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bank-size", type=int)
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for routing")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument(
        "--profile",
        help="py-spy the server while the worker drains the backlog (idle threads included): "
        ".svg flame graph, else collapsed stacks",
    )
    parser.add_argument(
        "--gil", action="store_true", help="with --profile: only the thread holding the GIL"
    )
    args = parser.parse_args()
    count = args.items or (300 if args.quick else 1000)
    bank_size = args.bank_size or (100_000 if args.quick else 1_000_000)
    print(machine_line(), flush=True)
    bodies = make_bodies(count + 1)
    warm_up, bodies = bodies[0], bodies[1:]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder:
        instance = Path(folder) / "instance"
        database = instance / "modtools.db"
        port = free_port()
        env = server_env(instance, port)
        prepare_instance(env)
        token = create_source(env)
        flask_cli(env, "banks", "create", "Bench", "--label", "spam")
        bulk_load_pdq_bank(database, "Bench", bank_size, [])
        log = Path(folder) / "server.log"
        server = launch(env, log)
        try:
            submit(port, token, [warm_up], 1)
            wait_routed(database, 1, 120)
            cpu_before = cpu_seconds(server.pid)
            began = time.perf_counter()
            sent = submit(port, token, bodies, args.clients)
            submitted = time.perf_counter()
            cpu_submitted = cpu_seconds(server.pid)
            backlog = sum(n for status, n in counts(database).items() if status in WAITING)
            spy = (
                start_profile(args.profile, server.pid, idle=not args.gil, gil=args.gil)
                if args.profile
                else None
            )
            finished = wait_routed(database, sent["accepted"] + 1, args.timeout)
            cpu = cpu_seconds(server.pid) - cpu_before
            cpu_drain = cpu_seconds(server.pid) - cpu_submitted
            if spy is not None:
                stop_profile(spy)
            rss = memory_mib(server.pid)
        finally:
            stop(server)
        statuses = counts(database)
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            verdicts = dict(
                connection.execute(
                    "SELECT scanner || ' ' || coalesce(verdict, status), count(*) "
                    "FROM scan_results GROUP BY 1"
                )
            )
        in_pipeline = time_in_pipeline(database)
        errors = server_errors(log)
    accepted = sent["accepted"]
    wall = finished - began
    result = {
        "items": count,
        "accepted": accepted,
        "submit_errors": len(sent["errors"]),
        "clients": args.clients,
        "bank_size": bank_size,
        "accept_per_s": accepted / (submitted - began),
        "submit_s": submitted - began,
        "backlog_at_end_of_submit": backlog,
        "drain_s": finished - submitted,
        "end_to_end_per_s": accepted / wall,
        "wall_s": wall,
        "cpu_ms_per_item": cpu * 1000 / max(accepted, 1),
        "cores_busy": cpu / wall,
        "drain_per_s": backlog / (finished - submitted),
        "drain_cpu_ms_per_item": cpu_drain * 1000 / max(backlog, 1),
        "drain_cores_busy": cpu_drain / (finished - submitted),
        "accept_p50_ms": sent["p50"],
        "accept_p99_ms": sent["p99"],
        "pipeline_p50_ms": in_pipeline["p50"],
        "pipeline_p99_ms": in_pipeline["p99"],
        "rss_mib": rss["rss"],
        "statuses": statuses,
        "scan_results": verdicts,
        "server_errors": len(errors),
    }
    verdict = "met" if result["end_to_end_per_s"] >= TARGET else "NOT met"
    print(
        f"\n{accepted} of {count} items accepted ({len(sent['errors'])} refused) from "
        f"{args.clients} clients; bank of {bank_size:,} PDQ entries; statuses {statuses}; "
        f"scan results {verdicts}; server errors logged: {len(errors)}\n"
    )
    print(
        table(
            ["what", "value"],
            [
                (
                    "**end to end, items/s** (target ≥ 50: " + verdict + ")",
                    f"**{result['end_to_end_per_s']:.1f}**",
                ),
                ("all routed after, s", f"{wall:.1f}"),
                ("accepted, items/s (submission phase)", f"{result['accept_per_s']:.1f}"),
                ("submission took, s", f"{result['submit_s']:.1f}"),
                ("backlog when submission ended", backlog),
                ("then drained in, s", f"{result['drain_s']:.1f}"),
                ("worker alone (the drain), items/s", f"{result['drain_per_s']:.1f}"),
                ("worker alone, server CPU ms/item", f"{result['drain_cpu_ms_per_item']:.1f}"),
                ("worker alone, server cores busy", f"{result['drain_cores_busy']:.2f}"),
                ("accept latency p50 / p99, ms", f"{sent['p50']:.0f} / {sent['p99']:.0f}"),
                (
                    "created → routed p50 / p99, ms",
                    f"{in_pipeline['p50']:.0f} / {in_pipeline['p99']:.0f}",
                ),
                ("server CPU ms/item (accept + pipeline)", f"{result['cpu_ms_per_item']:.1f}"),
                ("server cores busy", f"{result['cores_busy']:.2f}"),
                ("server RSS at the end, MiB", f"{rss['rss']:.0f}"),
            ],
        )
    )
    for line in errors[:5]:
        print("   ", line)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

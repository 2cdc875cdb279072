"""Soak: a steady mixed load on the real server for ``--minutes``, with its memory sampled.

Makes a fresh instance with a source, a moderator and a PDQ bank of ``--bank-size`` entries (one
of them near a test image), with ``PIPELINE_ROUTE_ON_CLEAR=queued`` so that every ingested item
waits for review, and starts ``python wsgi.py`` (waitress + embedded Huey worker + SQLite).
Then, each paced at a fixed rate, until the time is up:

- ingest: ``POST /api/v1/items``, distinct ~100 KB JPEGs (JSON with base64), ``--ingest-rate``/s;
- check: ``POST /api/v1/check`` of a 1600×1004 JPEG, alternately a bank match and a miss,
  ``--check-rate``/s;
- review: a moderator logged in through the login form does, ``--review-rate`` times a second,
  queue page, counts, "next" (claim), the item page and "approve" (with the CSRF token).

After ``--warmup`` seconds of the same load (caches, the PDQ index, SQLite's page cache), the
server's RSS and PSS are sampled every ``--sample-seconds``. Prints the samples, their
first/last/min/max and slope, and per kind of request the count, latency and every answer that was
not the expected one. Exits 1 on any server error (a 5xx, a dropped connection, an ERROR in the
server log) or when RSS grew more than 10 % from the first sample to the last.

    .venv/bin/python bench/bench_soak.py                 # 30 minutes (plus 1 minute warm-up)
    .venv/bin/python bench/bench_soak.py --minutes 2 --json
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from common import (
    bulk_load_pdq_bank,
    create_moderator,
    create_source,
    distinct_jpegs,
    flask_cli,
    free_port,
    launch,
    log_in,
    machine_line,
    memory_mib,
    near_pdq,
    pdq_of,
    percentiles,
    photo_jpeg,
    prepare_instance,
    server_env,
    server_errors,
    stop,
    table,
    with_comment,
)

MAX_GROWTH = 0.10


class Tally:
    """Requests of one kind: latencies, answers by status, failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()  # status or exception -> count
        self.server_errors = 0

    def record(
        self, started: float, status: int | None, expected: tuple[int, ...], note: str = ""
    ) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.latencies.append(elapsed)
            self.statuses[str(status)] += 1
            if status not in expected:
                self.unexpected[f"{status} {note}".strip()] += 1
            if status is None or status >= 500:
                self.server_errors += 1


def paced(rate: float, stop_at: float, work) -> None:  # type: ignore[no-untyped-def]
    """Call ``work()`` ``rate`` times a second (on a fixed schedule) until ``stop_at``."""
    if rate <= 0:
        return
    interval, next_at = 1 / rate, time.monotonic()
    while next_at < stop_at:
        work()
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()  # behind: do not burst to catch up


class Load:
    """The three clients, sharing the server's address and credentials."""

    def __init__(self, port: int, token: str, images: list[bytes], photos: list[bytes]) -> None:
        self.port, self.token, self.images, self.photos = port, token, images, photos
        self.base = f"http://127.0.0.1:{port}"
        self.tallies = {kind: Tally() for kind in ("ingest", "check", "review")}
        self.items = itertools.count(1)
        self.checks = itertools.count(1)
        self.connections = threading.local()

    def _api(
        self, method: str, path: str, body: bytes, content_type: str
    ) -> tuple[int | None, bytes]:
        connection = getattr(self.connections, "api", None)
        if connection is None:
            connection = self.connections.api = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=60
            )
        try:
            connection.request(
                method,
                path,
                body,
                {"Content-Type": content_type, "Authorization": f"Bearer {self.token}"},
            )
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self.connections.api = None
            return None, str(error).encode()

    def ingest(self) -> None:
        n = next(self.items)
        image = with_comment(self.images[n % len(self.images)], f"soak-{n}".encode())
        body = json.dumps(
            {
                "external_id": f"soak-{n}",
                "image": {"data": base64.b64encode(image).decode()},
                "uploader": {"id": str(n % 50)},
            }
        ).encode()
        started = time.perf_counter()
        status, _ = self._api("POST", "/api/v1/items", body, "application/json")
        self.tallies["ingest"].record(started, status, (202,))

    def check(self) -> None:
        started = time.perf_counter()
        photo = self.photos[next(self.checks) % 2]
        status, _ = self._api("POST", "/api/v1/check", photo, "image/jpeg")
        self.tallies["check"].record(started, status, (200,))

    def review(self, session, csrf: str) -> None:  # type: ignore[no-untyped-def]
        """Queue page, counts, next, the item page, approve."""
        tally = self.tallies["review"]

        def call(note: str, expected: tuple[int, ...], method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                response = session.request(
                    method, self.base + path, allow_redirects=False, timeout=60, **kwargs
                )
            except Exception as error:  # counted, not raised: the soak goes on
                tally.record(started, None, expected, f"{note}: {error}")
                return None
            tally.record(started, response.status_code, expected, note)
            return response

        call("queue", (200,), "GET", "/review/")
        call("counts", (200,), "GET", "/review/counts", headers={"HX-Request": "true"})
        claimed = call("next", (303,), "POST", "/review/next", data={"csrf_token": csrf})
        location = claimed.headers.get("Location", "") if claimed is not None else ""
        match = re.search(r"/review/items/([^/?]+)", location)
        if not match:
            return  # nothing waiting: the queue page again next time
        item_id = match.group(1)
        call("item page", (200,), "GET", f"/review/items/{item_id}")
        call(
            "approve",
            (303,),
            "POST",
            f"/review/items/{item_id}/decide",
            data={"csrf_token": csrf, "outcome": "approve"},
        )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB), in MiB per hour."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600 if spread else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of load before it")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--ingest-rate", type=float, default=4.0, help="items per second")
    parser.add_argument("--check-rate", type=float, default=8.0, help="checks per second")
    parser.add_argument("--review-rate", type=float, default=0.5, help="review cycles per second")
    parser.add_argument("--bank-size", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    images = distinct_jpegs(40)
    photos = [photo_jpeg(1600, 1004, seed=7), photo_jpeg(1600, 1004, seed=9)]
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as folder:
        instance = Path(folder) / "instance"
        port = free_port()
        env = server_env(instance, port, PIPELINE_ROUTE_ON_CLEAR="queued")
        prepare_instance(env)
        token = create_source(env)
        create_moderator(env)
        flask_cli(env, "banks", "create", "Bench", "--label", "spam")
        bulk_load_pdq_bank(
            instance / "modtools.db", "Bench", args.bank_size, [near_pdq(pdq_of(photos[0]), 12)]
        )
        log = Path(folder) / "server.log"
        server = launch(env, log)
        try:
            report = soak(server.pid, port, token, images, photos, args)
            with sqlite3.connect(f"file:{instance / 'modtools.db'}?mode=ro", uri=True) as db:
                report["statuses"] = dict(
                    db.execute("SELECT status, count(*) FROM items GROUP BY status")
                )
        finally:
            stop(server)
        report["server_log_errors"] = server_errors(log)
    return summarise(report, args)


def soak(pid: int, port: int, token: str, images: list[bytes], photos: list[bytes], args) -> dict:  # type: ignore[no-untyped-def]
    load = Load(port, token, images, photos)
    session = log_in(load.base)
    page = session.get(f"{load.base}/review/").text
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)  # type: ignore[union-attr]
    began = time.monotonic()
    measured_from = began + args.warmup
    stop_at = measured_from + args.minutes * 60
    threads = [
        threading.Thread(target=paced, args=(args.ingest_rate, stop_at, load.ingest)),
        threading.Thread(target=paced, args=(args.check_rate, stop_at, load.check)),
        threading.Thread(
            target=paced,
            args=(args.review_rate, stop_at, lambda: load.review(session, csrf)),
        ),
    ]
    for thread in threads:
        thread.start()
    samples: list[dict] = []
    next_sample = measured_from
    while next_sample <= stop_at + 0.5:
        time.sleep(max(0.0, next_sample - time.monotonic()))
        memory = memory_mib(pid)
        samples.append({"t": time.monotonic() - measured_from, **memory})
        if len(samples) % 6 == 1:
            print(
                f"  {samples[-1]['t'] / 60:5.1f} min: RSS {memory['rss']:.0f} MiB, "
                f"{sum(len(t.latencies) for t in load.tallies.values())} requests",
                flush=True,
            )
        next_sample += args.sample_seconds
    for thread in threads:
        thread.join()
    return {
        "samples": samples,
        "requests": {
            kind: {
                "count": len(tally.latencies),
                **percentiles(tally.latencies),
                "statuses": dict(tally.statuses),
                "unexpected": dict(tally.unexpected),
                "server_errors": tally.server_errors,
            }
            for kind, tally in load.tallies.items()
        },
        "elapsed_s": time.monotonic() - began,
    }


def summarise(report: dict, args) -> int:  # type: ignore[no-untyped-def]
    samples = report["samples"]
    rss = [s["rss"] for s in samples]
    first, last = rss[0], rss[-1]
    growth = (last - first) / first
    slope = slope_per_hour([(s["t"], s["rss"]) for s in samples])
    step = max(1, len(samples) // 15)  # at most about 15 rows
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    print(
        f"\n{args.minutes:g} min measured after {args.warmup:g} s of warm-up; rates: ingest "
        f"{args.ingest_rate:g}/s, check {args.check_rate:g}/s, review {args.review_rate:g} "
        f"cycles/s (5 requests each); bank {args.bank_size:,} PDQ entries\n"
    )
    print(
        table(
            ["minute", "RSS MiB", "PSS MiB", "anon MiB"],
            [
                (f"{s['t'] / 60:.1f}", f"{s['rss']:.1f}", f"{s['pss']:.1f}", f"{s['anon']:.1f}")
                for s in shown
            ],
        )
    )
    print()
    print(
        table(
            ["RSS", "first MiB", "last MiB", "min MiB", "max MiB", "growth", "slope MiB/hour"],
            [
                (
                    f"{len(samples)} samples",
                    f"{first:.1f}",
                    f"{last:.1f}",
                    f"{min(rss):.1f}",
                    f"{max(rss):.1f}",
                    f"{growth:+.1%}",
                    f"{slope:+.1f}",
                )
            ],
        )
    )
    print()
    rows = []
    server_failures = 0
    for kind, entry in report["requests"].items():
        server_failures += entry["server_errors"]
        rows.append(
            (
                kind,
                entry["count"],
                f"{entry['p50']:.1f}",
                f"{entry['p99']:.1f}",
                f"{entry['max']:.0f}",
                sum(entry["unexpected"].values()),
                entry["server_errors"],
                ", ".join(f"{k} ×{v}" for k, v in entry["unexpected"].items()) or "",
            )
        )
    print(
        table(
            [
                "requests",
                "count",
                "p50 ms",
                "p99 ms",
                "max ms",
                "not as expected",
                "5xx / dropped",
                "which",
            ],
            rows,
            align="lrrrrrrl",
        )
    )
    log_errors = report["server_log_errors"]
    print(f"\nitems by status at the end: {report['statuses']}")
    print(f"ERROR lines and tracebacks in the server log: {len(log_errors)}")
    for line in log_errors[:5]:
        print("   ", line)
    failed = []
    if server_failures or log_errors:
        failed.append("server errors")
    if growth > MAX_GROWTH:
        failed.append(f"RSS grew {growth:.1%} (> {MAX_GROWTH:.0%})")
    if sum(sum(e["unexpected"].values()) for e in report["requests"].values()):
        print("\nnote: some answers were not the expected ones (see the table); not a failure")
    print("\nFAILED: " + "; ".join(failed) if failed else "\npassed: no server error, RSS flat")
    if args.json:
        print(json.dumps({**report, "growth": growth, "slope_mib_per_hour": slope}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

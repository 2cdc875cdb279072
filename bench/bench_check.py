"""``POST /api/v1/check`` latency through the real server against a 1M-entry PDQ bank.

Makes a fresh instance, creates a bank (label ``spam``) with the CLI and fills it with
``--bank-size`` random PDQ hashes straight into SQLite, among them one hash 12 bits from each
test image's PDQ, so every check of those images is a match (the matched row is fetched, as in
production). Then starts ``python wsgi.py`` (waitress + Huey worker threads + SQLite), times the
first check, sent as soon as ``/healthz`` answers (the server builds its in-memory PDQ index from
the database as it starts, so this check waits for whatever is left of that build), and warm-up
checks, and then posts the raw JPEG (``Content-Type: image/jpeg``) with 1, 4 and 16 concurrent
clients over keep-alive connections, for each image:

- 1600×1004 JPEG (quality 85, synthetic photo-like: gradient, soft shapes, grain), a match;
- the same size, another picture, no match (what most uploads are);
- 4000×3000 JPEG (quality 85), a match.

    .venv/bin/python bench/bench_check.py            # 1,000,000 entries, 600 checks per level
    .venv/bin/python bench/bench_check.py --quick    # 100,000 entries, 150 checks per level
    .venv/bin/python bench/bench_check.py --json     # also one JSON line per result

Targets (DESIGN.md, issue #4): 1600×1004 JPEG against a 1M bank, p50 <= 12 ms, p99 <= 30 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

from common import (
    bulk_load_pdq_bank,
    cpu_seconds,
    create_source,
    flask_cli,
    free_port,
    launch,
    machine_line,
    memory_mib,
    near_pdq,
    pdq_of,
    percentiles,
    photo_jpeg,
    prepare_instance,
    server_env,
    server_errors,
    start_profile,
    stop,
    stop_profile,
    table,
)

LEVELS = (1, 4, 16)
PLANTED_DISTANCE = 12


def post_check(connection: http.client.HTTPConnection, token: str, image: bytes) -> dict:
    connection.request(
        "POST",
        "/api/v1/check",
        image,
        {"Content-Type": "image/jpeg", "Authorization": f"Bearer {token}"},
    )
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"check answered {response.status}: {body[:300]!r}")
    return json.loads(body)


def run_level(port: int, token: str, image: bytes, clients: int, requests: int) -> dict:
    """``requests`` checks of ``image`` spread over ``clients`` threads; latencies and errors."""
    lock = threading.Lock()
    left = [requests]
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            started = time.perf_counter()
            try:
                post_check(connection, token, image)
            except (OSError, RuntimeError, http.client.HTTPException) as error:
                with lock:
                    errors.append(str(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {
        **percentiles(latencies),
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "per_second": len(latencies) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k bank, fewer requests")
    parser.add_argument("--bank-size", type=int, help="PDQ entries (default 1,000,000)")
    parser.add_argument("--requests", type=int, help="checks per image and level (default 600)")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--json", action="store_true", help="also print JSON lines")
    parser.add_argument(
        "--profile",
        help="py-spy the server during the first image's first level: .svg, else collapsed stacks",
    )
    args = parser.parse_args()
    bank_size = args.bank_size or (100_000 if args.quick else 1_000_000)
    requests = args.requests or (150 if args.quick else 600)
    levels = [int(level) for level in args.levels.split(",")]

    images = {
        "1600×1004, match": photo_jpeg(1600, 1004, seed=7),
        "1600×1004, no match": photo_jpeg(1600, 1004, seed=9),
        "4000×3000, match": photo_jpeg(4000, 3000, seed=8),
    }
    planted = [
        near_pdq(pdq_of(data), PLANTED_DISTANCE)
        for name, data in images.items()
        if "no match" not in name
    ]
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-check-") as folder:
        instance = Path(folder) / "instance"
        port = free_port()
        env = server_env(instance, port)
        prepare_instance(env)
        token = create_source(env)
        flask_cli(env, "banks", "create", "Bench", "--label", "spam")
        load_s = bulk_load_pdq_bank(instance / "modtools.db", "Bench", bank_size, planted)
        log = Path(folder) / "server.log"
        server = launch(env, log)
        try:
            report = measure(server.pid, port, token, images, levels, requests, args.profile)
        finally:
            stop(server)
        errors = server_errors(log)
    print(
        f"bank: {bank_size:,} PDQ entries (inserted in {load_s:.1f} s); images: "
        + ", ".join(
            f"{name.split(',')[0]} {len(data) / 1024:,.0f} KiB" for name, data in images.items()
        )
        + f"; {requests} checks per image and level\n"
    )
    warm = report["warm_up"]
    print(
        "first check, right after /healthz (waits for the rest of the start-up index build): "
        f"{warm['first_ms']:,.0f} ms; "
        f"server RSS {warm['rss_before']:.0f} MiB before, {warm['rss_after']:.0f} MiB after; "
        f"then {warm['warm_up_checks']} warm-up checks, p50 {warm['warm_up_p50']:.1f} ms\n"
    )
    rows = [
        (
            r["image"],
            r["clients"],
            r["requests"],
            f"{r['p50']:.1f}",
            f"{r['p95']:.1f}",
            f"{r['p99']:.1f}",
            f"{r['max']:.1f}",
            f"{r['per_second']:.0f}",
            f"{r['cpu_ms']:.1f}",
            r["errors"],
        )
        for r in report["levels"]
    ]
    print(
        table(
            [
                "image",
                "clients",
                "checks",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "req/s",
                "server CPU ms/req",
                "errors",
            ],
            rows,
        )
    )
    print(f"\nserver errors logged: {len(errors)}")
    for line in errors[:5]:
        print("   ", line)
    if args.json:
        print(json.dumps({"bank_size": bank_size, "load_s": load_s, **report}))


def measure(
    pid: int,
    port: int,
    token: str,
    images: dict[str, bytes],
    levels: list[int],
    requests: int,
    profile: str | None = None,
) -> dict:
    """Warm up (index build first), then every image at every level."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    rss_before = memory_mib(pid)["rss"]
    first = next(iter(images.values()))
    began = time.perf_counter()
    answer = post_check(connection, token, first)
    first_ms = (time.perf_counter() - began) * 1000
    assert answer["matches"] and answer["matches"][0]["distance"] == PLANTED_DISTANCE, answer
    warm_up = []
    for name, data in images.items():
        answer = post_check(connection, token, data)
        assert bool(answer["matches"]) == ("no match" not in name), (name, answer)
        for _ in range(20):
            began = time.perf_counter()
            post_check(connection, token, data)
            warm_up.append((time.perf_counter() - began) * 1000)
    connection.close()
    report: dict = {
        "warm_up": {
            "first_ms": first_ms,
            "rss_before": rss_before,
            "rss_after": memory_mib(pid)["rss"],
            "warm_up_checks": len(warm_up),
            "warm_up_p50": percentiles(warm_up)["p50"],
        },
        "levels": [],
    }
    for name, data in images.items():
        for clients in levels:
            spy = start_profile(profile, pid) if profile and not report["levels"] else None
            cpu_before = cpu_seconds(pid)
            result = run_level(port, token, data, clients, requests)
            cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(result["requests"], 1)
            if spy is not None:
                stop_profile(spy)
            report["levels"].append({"image": name, "clients": clients, **result, "cpu_ms": cpu_ms})
            print(
                f"  {name}, {clients} clients: p50 {result['p50']:.1f} ms, "
                f"{result['per_second']:.0f} req/s",
                flush=True,
            )
    report["rss_end"] = memory_mib(pid)["rss"]
    return report


if __name__ == "__main__":
    main()

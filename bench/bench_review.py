"""The review screen under load: the queue page, "next" and the item page with 100k items waiting.

Builds a fresh instance folder with the schema, bulk-inserts ``--items`` queued items (with PDQ
hashes, uploaders and a hash-bank match on every tenth) straight into SQLite, starts the real
one-process server (``python wsgi.py``: waitress, Huey worker threads, SQLite in WAL mode) on
loopback, logs a moderator in over HTTP and times, one request at a time:

- ``queue``: ``GET /review/`` (the first page of To review: 48 blurred previews, counts, filters);
- ``queue, page 50``: a deep page reached by its keyset cursor;
- ``queue, filtered``: source + score filter;
- ``next``: ``POST /review/next`` (one conditional UPDATE claims the top free item; each call
  claims a new one);
- ``item``: ``GET /review/items/<id>`` of random waiting items (scan results, similar images
  from the items-wide PDQ index, the uploader's items, history, up next, counts).

    .venv/bin/python bench/bench_review.py [--items 100000] [--runs 300]
        [--without-proposed-indexes]   # only the indexes the models define today

Targets (issue "The review dashboard"): queue page p95 <= 50 ms, next p95 <= 20 ms, item page
p95 <= 50 ms, on 2 cores, through waitress.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password that is long enough"
# Indexes on items this capability proposes (app/models/item.py is not ours to change). Created
# here unless --without-proposed-indexes, so the numbers show what they buy.
PROPOSED_INDEXES = {
    "ix_items_review_order": "items (status, priority DESC, created_at, id)",
    "ix_items_claimed": "items (claimed_by_id, claim_expires_at)",
    "ix_items_created_at": "items (created_at)",
    "ix_items_updated_at": "items (updated_at)",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_instance(instance: Path, items: int, proposed: bool) -> None:
    """Schema via the models, users via the CLI, then rows straight into SQLite."""
    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(instance)}
    code = (
        "from app import create_app; from app.extensions import db; app = create_app();"
        " ctx = app.app_context(); ctx.push(); db.create_all()"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "users",
            "create",
            "--email",
            "bench@example.org",
            "--role",
            "moderator",
            "--password-stdin",
        ],
        cwd=ROOT,
        env=env,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    connection = sqlite3.connect(instance / "modtools.db")
    connection.execute(
        "INSERT INTO sources (name, slug, kind, enabled, settings, created_at,"
        " updated_at) VALUES ('Bench forum', 'bench', 'generic', 1, '{}', ?, ?)",
        (stamp(datetime.now(UTC)),) * 2,
    )
    source_id = connection.execute("SELECT id FROM sources WHERE slug = 'bench'").fetchone()[0]
    rng = random.Random(1)
    now = datetime.now(UTC)
    rows, scans = [], []
    for number in range(items):
        item_id = secrets.token_urlsafe(16)
        created = stamp(now - timedelta(seconds=rng.randrange(7 * 86400)))
        priority = rng.choice((0, 0, 0, 20, 50, 100))
        pdq = f"{rng.getrandbits(256):064x}"
        rows.append(
            (
                item_id,
                source_id,
                f"bench-{number}",
                "queued",
                priority,
                created,
                created,
                pdq,
                90,
                f"{rng.getrandbits(256):064x}",
                "image/jpeg",
                f"u-{rng.randrange(5000)}",
                "{}",
                0,
                0,
            )
        )
        if number % 10 == 0:
            scans.append(
                (
                    item_id,
                    1,
                    "hashbank",
                    "done",
                    "match",
                    '[{"name": "spam", "score": 0.97}]',
                    '[{"bank_id": 1, "bank_name": "Spam", "labels": ["spam"], "distance": 6}]',
                    '{"matches": 1}',
                    created,
                    0,
                )
            )
    connection.executemany(
        "INSERT INTO items (id, source_id, external_id, status, priority, created_at, updated_at,"
        " pdq, pdq_quality, sha256, mime, uploader_id, metadata, has_derivatives, bytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.executemany(
        "INSERT INTO scan_results (item_id, scan_round, scanner, status, verdict, labels, matches,"
        " raw, created_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        scans,
    )
    # app/models/item.py defines these indexes now, so create_all made them already.
    for name, definition in PROPOSED_INDEXES.items():
        if proposed:
            connection.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
        else:
            connection.execute(f"DROP INDEX IF EXISTS {name}")
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()


def stamp(moment: datetime) -> str:
    """A timestamp as SQLAlchemy stores one in SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def log_in(base: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    page = session.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = session.post(
        f"{base}/login",
        data={"csrf_token": token, "email": "bench@example.org", "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status_code in (302, 303), response.text[:500]
    return session


def timed(label: str, runs: int, call: object) -> dict[str, float]:
    for _ in range(10):  # warm-up: caches, the PDQ index, SQLite pages
        call()  # type: ignore[operator]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    result = {
        "p50": statistics.median(samples),
        "p95": samples[int(len(samples) * 0.95) - 1],
        "p99": samples[int(len(samples) * 0.99) - 1],
        "max": samples[-1],
    }
    print(
        f"| {label} | {runs} | {result['p50']:.1f} | {result['p95']:.1f} | "
        f"{result['p99']:.1f} | {result['max']:.1f} |",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="100 runs each (make bench)")
    parser.add_argument("--without-proposed-indexes", action="store_true")
    options = parser.parse_args()
    if options.quick:
        options.runs = min(options.runs, 100)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; "
        f"{platform.processor() or platform.machine()}; Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-review-") as folder:
        instance = Path(folder) / "instance"
        started = time.perf_counter()
        build_instance(instance, options.items, not options.without_proposed_indexes)
        print(
            f"{options.items} queued items inserted in {time.perf_counter() - started:.0f} s; "
            f"proposed indexes: {'no' if options.without_proposed_indexes else 'yes'}"
        )
        port = free_port()
        env = {
            **os.environ,
            "MODTOOLS_INSTANCE_PATH": str(instance),
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        log = (Path(folder) / "server.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            run(base, options.runs, instance)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            log.close()


def run(base: str, runs: int, instance: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=1, proxies={"http": ""})
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    session = log_in(base)
    first = session.get(f"{base}/review/").text
    assert first.count('class="queue-card"') == 48, first[-2000:]
    token = re.search(r'"X-CSRFToken": "([^"]+)"', first).group(1)  # type: ignore[union-attr]
    cursor_page = f"{base}/review/"
    for _ in range(50):  # walk to page 50 through the "older" links
        html = session.get(cursor_page).text
        cursor_page = base + re.search(r'rel="next" href="([^"]+)"', html).group(1).replace(
            "&amp;", "&"
        )  # type: ignore[union-attr]
    source_id = (
        sqlite3.connect(instance / "modtools.db").execute("SELECT id FROM sources").fetchone()[0]
    )
    waiting = [
        row[0]
        for row in sqlite3.connect(instance / "modtools.db").execute(
            "SELECT id FROM items WHERE status = 'queued' ORDER BY random() LIMIT 2000"
        )
    ]
    rng = random.Random(2)

    def ok(response: requests.Response) -> None:
        assert response.status_code in (200, 303), (response.status_code, response.text[:300])

    print("\n| request | runs | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    timed("queue (`GET /review/`)", runs, lambda: ok(session.get(f"{base}/review/")))
    timed("queue, page 50 (cursor)", runs, lambda: ok(session.get(cursor_page)))
    timed(
        "queue, filtered (source + score ≥ 0.9)",
        runs,
        lambda: ok(session.get(f"{base}/review/?source={source_id}&score=0.9")),
    )
    timed(
        "counts (`GET /review/counts`, polled)",
        runs,
        lambda: ok(session.get(f"{base}/review/counts", headers={"HX-Request": "true"})),
    )
    timed(
        "next (`POST /review/next`)",
        runs,
        lambda: ok(
            session.post(f"{base}/review/next", data={"csrf_token": token}, allow_redirects=False)
        ),
    )
    timed(
        "item page (`GET /review/items/<id>`)",
        runs,
        lambda: ok(session.get(f"{base}/review/items/{rng.choice(waiting)}")),
    )


if __name__ == "__main__":
    main()

"""Memory of the one-process server (``python wsgi.py``: web + embedded worker), and what the
start-up imports cost.

Two server runs, each on a fresh instance folder:

1. empty banks: resident memory idle after start-up, then after some use (the login page, a
   moderator logged in browsing the queue, 20 checks, 20 items ingested and scanned by the
   worker, all of them routed);
2. a PDQ bank of ``--bank-size`` entries (1M) in the database: idle after start-up, after the
   first check (which builds the in-memory PDQ index), and after 50 more checks.

Each sample reads the server process's ``VmRSS``, ``RssAnon`` and ``VmHWM`` from
``/proc/<pid>/status`` and ``Pss`` from ``/proc/<pid>/smaps_rollup``. Then, unless
``--no-imports``, ``python -X importtime -c "import wsgi"`` says which packages the start-up
imports, how long each takes, which module of ours first imports it, and how much resident memory
importing it alone in a fresh interpreter adds.

    .venv/bin/python bench/bench_memory.py [--quick] [--bank-size 1000000] [--json]

Target (DESIGN.md): idle server (web + worker) RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    ROOT,
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
    photo_jpeg,
    prepare_instance,
    server_env,
    stop,
    table,
    thread_count,
)

TARGET_MB = 150
MB = 1_000_000 / (1 << 20)  # MiB per MB
# Packages worth a look if the start-up imports them: heavy, and used by one feature each.
SUSPECTS = (
    "numpy",
    "threatexchange",
    "faiss",
    "onnxruntime",
    "nudenet",
    "boto3",
    "botocore",
    "psycopg",
    "redis",
    "pygments",
    "alembic",
    "cryptography",
    "requests",
    "sqlalchemy",
    "PIL",
    "pdqhash",
    "argon2",
    "segno",
)
OURS = ("app", "plugins", "wsgi")


def sample(pid: int, label: str) -> dict:
    return {"when": label, **memory_mib(pid), "threads": thread_count(pid)}


def request(port: int, method: str, path: str, body: bytes | None, headers: dict) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path} answered {response.status}: {data[:300]!r}")
    return data


def wait_routed(database: Path, timeout: float = 120) -> None:
    """Until no item waits for the worker (received or scanning)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            waiting = connection.execute(
                "SELECT count(*) FROM items WHERE status IN ('received', 'scanning')"
            ).fetchone()[0]
        if not waiting:
            return
        time.sleep(0.2)
    raise RuntimeError("items were not routed in time")


def run_empty(folder: Path, settle: float, extra: dict[str, str]) -> list[dict]:
    """Idle, then after requests, a logged-in moderator, checks, and items scanned."""
    instance = folder / "instance"
    port = free_port()
    env = {**server_env(instance, port), **extra}
    prepare_instance(env)
    token = create_source(env)
    create_moderator(env)
    server = launch(env, folder / "server-empty.log")
    samples = []
    try:
        time.sleep(settle)
        samples.append(sample(server.pid, "idle after start-up"))
        base = f"http://127.0.0.1:{port}"
        session = log_in(base)
        for path in ("/review/", "/review/counts", "/", "/admin/banks"):
            session.get(base + path)
        auth = {"Authorization": f"Bearer {token}"}
        photo = photo_jpeg(1600, 1004)
        for _ in range(20):
            request(port, "POST", "/api/v1/check", photo, {**auth, "Content-Type": "image/jpeg"})
        for n, image in enumerate(distinct_jpegs(20)):
            body = json.dumps(
                {"external_id": f"m-{n}", "image": {"data": base64.b64encode(image).decode()}}
            ).encode()
            headers = {**auth, "Content-Type": "application/json"}
            request(port, "POST", "/api/v1/items", body, headers)
        wait_routed(instance / "modtools.db")
        for path in ("/review/", "/review/?queue=all"):
            session.get(base + path)
        time.sleep(settle)
        samples.append(sample(server.pid, "after 20 checks, 20 items scanned, review pages"))
    finally:
        stop(server)
    return samples


def run_bank(
    folder: Path, bank_size: int, settle: float, extra: dict[str, str]
) -> tuple[list[dict], float, float]:
    """Idle with a big bank in the database, then with its PDQ index built."""
    instance = folder / "instance-bank"
    port = free_port()
    env = {**server_env(instance, port), **extra}
    prepare_instance(env)
    token = create_source(env)
    flask_cli(env, "banks", "create", "Bench", "--label", "spam")
    photo = photo_jpeg(1600, 1004)
    planted = [near_pdq(pdq_of(photo), 12)]
    load_s = bulk_load_pdq_bank(instance / "modtools.db", "Bench", bank_size, planted)
    server = launch(env, folder / "server-bank.log")
    samples = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    try:
        time.sleep(settle)
        samples.append(sample(server.pid, f"idle, {bank_size:,}-entry bank in the database"))
        began = time.perf_counter()
        answer = json.loads(request(port, "POST", "/api/v1/check", photo, headers))
        build_s = time.perf_counter() - began
        assert answer["matches"], answer
        samples.append(sample(server.pid, "after the first check (PDQ index built)"))
        for _ in range(50):
            request(port, "POST", "/api/v1/check", photo, headers)
        time.sleep(settle)
        samples.append(sample(server.pid, "after 50 more checks"))
    finally:
        stop(server)
    return samples, load_s, build_s


def import_report(folder: Path) -> dict:
    """What ``import wsgi`` (create_app) imports: per package, time, who imports it, RSS."""
    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(folder / "instance-imports")}
    code = (
        "import wsgi\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmRSS'): print(int(line.split()[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = []  # (self µs, cumulative µs, depth, module); a module's imports come before it
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            self_us, cumulative, indent, name = match.groups()
            lines.append((int(self_us), int(cumulative), (len(indent) - 1) // 2, name))
    parent: list[int | None] = [None] * len(lines)
    nearest: dict[int, int] = {}  # depth -> the closest later line at that depth
    for position in range(len(lines) - 1, -1, -1):
        depth = lines[position][2]
        parent[position] = nearest.get(depth - 1)
        nearest[depth] = position
    top = [name.split(".")[0] for _, _, _, name in lines]
    packages: dict[str, dict] = {}
    for position, (self_us, cumulative, _, name) in enumerate(lines):
        package = top[position]
        if package in OURS:
            continue
        entry = packages.setdefault(
            package, {"self_ms": 0.0, "with_deps_ms": 0.0, "modules": [], "path": None}
        )
        entry["self_ms"] += self_us / 1000
        entry["modules"].append(name)
        up = parent[position]
        if up is None or top[up] != package:  # an entry into the package: count its imports
            entry["with_deps_ms"] += cumulative / 1000
        if entry["path"] is None:  # how the start-up first reached it
            chain, up = [], parent[position]
            while up is not None and top[up] not in OURS:
                if top[up] != package and top[up] not in chain:
                    chain.append(top[up])
                up = parent[up]
            first = lines[up][3] if up is not None else "?"
            entry["path"] = " → ".join([first, *reversed(chain)])
    # Marginal memory: every third-party module the start-up imports, in its order, in a fresh
    # interpreter, against the same without one package and what it alone brought in (modules
    # another package also needs come back by themselves, so shared ones are not counted).
    outside = [position for position in range(len(lines)) if top[position] not in OURS]
    ranked = sorted(packages, key=lambda package: -packages[package]["with_deps_ms"])
    probed = sorted(set(ranked[:15]) | (set(SUSPECTS) & set(packages)))
    module_lists = [[lines[position][3] for position in outside]]
    for package in probed:
        brought = {
            position
            for position in outside
            if top[position] == package
            or any(top[up] == package for up in ancestors(parent, position, top, OURS))
        }
        module_lists.append([lines[p][3] for p in outside if p not in brought])
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:  # each probe is its own process
        everything, *withouts = pool.map(rss_of, module_lists)
    for package, without in zip(probed, withouts, strict=True):
        packages[package]["rss_mib"] = (
            everything - without if everything is not None and without is not None else None
        )
    return {
        "rss_after_import_mib": int(done.stdout.split()[0]) / 1024,
        "total_import_ms": sum(line[0] for line in lines) / 1000,
        "modules": len(lines),
        "third_party_rss_mib": everything,
        "packages": packages,
    }


def ancestors(parent: list[int | None], position: int, top: list[str], ours: tuple) -> list[int]:
    """The lines whose import (transitively) imported this one, up to our first module."""
    found, up = [], parent[position]
    while up is not None and top[up] not in ours:
        found.append(up)
        up = parent[up]
    return found


def rss_of(modules: list[str]) -> float | None:
    """MiB of resident memory importing these modules adds to a fresh interpreter (with whatever
    they import in turn)."""
    code = (
        "import importlib\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS'): return int(line.split()[1])\n"
        "before = rss()\n"
        f"for name in {modules!r}:\n"
        "    try: importlib.import_module(name)\n"
        "    except Exception: pass\n"
        "print(rss() - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return int(done.stdout) / 1024 if done.returncode == 0 and done.stdout.strip() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 100k bank instead of 1M")
    parser.add_argument("--bank-size", type=int)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds idle before a sample")
    parser.add_argument("--no-imports", action="store_true", help="skip the import analysis")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="run the server with this in its environment, e.g. MALLOC_ARENA_MAX=2",
    )
    args = parser.parse_args()
    bank_size = args.bank_size or (100_000 if args.quick else 1_000_000)
    print(machine_line(), flush=True)
    extra = dict(setting.split("=", 1) for setting in args.server_env)
    if extra:
        print(f"server environment: {extra}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as name:
        folder = Path(name)
        samples = run_empty(folder, args.settle, extra)
        bank_samples, load_s, build_s = run_bank(folder, bank_size, args.settle, extra)
        imports = None if args.no_imports else import_report(folder)
    idle = samples[0]["rss"]
    verdict = "met" if idle <= TARGET_MB * MB else "NOT met"
    print(
        f"\nTarget: idle RSS <= {TARGET_MB} MB ({TARGET_MB * MB:.0f} MiB): {verdict} "
        f"({idle:.0f} MiB = {idle / MB:.0f} MB). Bank: {bank_size:,} entries inserted in "
        f"{load_s:.1f} s; the first check (index build) took {build_s:.2f} s.\n"
    )
    print(
        table(
            ["server process", "RSS MiB", "PSS MiB", "anon MiB", "peak RSS MiB", "threads"],
            [
                (
                    s["when"],
                    f"{s['rss']:.0f}",
                    f"{s['pss']:.0f}",
                    f"{s['anon']:.0f}",
                    f"{s['peak']:.0f}",
                    s["threads"],
                )
                for s in samples + bank_samples
            ],
        )
    )
    if imports:
        print(
            f"\n`import wsgi` (create_app, no server): {imports['modules']} modules, "
            f"{imports['total_import_ms']:.0f} ms of imports (self times, -X importtime), "
            f"RSS {imports['rss_after_import_mib']:.0f} MiB, of which "
            f"{imports['third_party_rss_mib']:.0f} MiB for the third-party modules alone. "
            "*RSS it adds*: those modules imported in a fresh interpreter, minus the same without "
            "the package and what it alone brings in.\n"
        )
        packages = imports["packages"]
        ranked = sorted(packages, key=lambda package: -packages[package]["with_deps_ms"])
        shown = ranked[:15] + [p for p in SUSPECTS if p in packages and p not in ranked[:15]]
        print(
            table(
                [
                    "package",
                    "import ms, own",
                    "ms with what it imports first",
                    "RSS MiB it adds",
                    "first reached from",
                ],
                [
                    (
                        f"`{package}`",
                        f"{packages[package]['self_ms']:.0f}",
                        f"{packages[package]['with_deps_ms']:.0f}",
                        ""
                        if packages[package].get("rss_mib") is None
                        else f"{packages[package]['rss_mib']:.1f}",
                        packages[package]["path"],
                    )
                    for package in shown
                ],
                align="lrrrl",
            )
        )
        absent = [top for top in SUSPECTS if top not in packages]
        print(f"\nnot imported at start-up: {', '.join(absent) or 'none of the suspects'}")
    if args.json:
        print(json.dumps({"samples": samples + bank_samples, "imports": imports}))


if __name__ == "__main__":
    main()

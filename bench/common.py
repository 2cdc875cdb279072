"""Helpers the server benchmarks share: a fresh instance, the real server, /proc readings, images.

Every server benchmark runs the app as an operator does (``python wsgi.py``: waitress, the Huey
worker threads and SQLite in one process) on a fresh instance folder in a temporary directory, on
loopback, with its output in ``server.log`` beside the instance. Import from a script in
``bench/`` (the script's folder is on ``sys.path``): ``from common import ...``.
"""

from __future__ import annotations

import http.client
import io
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TARGET_BYTES = 100 * 1024
MODERATOR_EMAIL = "bench@example.org"
MODERATOR_PASSWORD = "bench password that is long enough"
MiB = 1 << 20


# Images -----------------------------------------------------------------------------------------


def noisy_jpeg(target: int = TARGET_BYTES, seed: int = 1) -> bytes:
    """A synthetic photo-like JPEG (shapes plus noise) whose size is close to ``target``."""
    image = noisy_picture(seed)
    best = b""
    for quality in range(95, 20, -5):  # the highest quality that fits
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        best = buffer.getvalue()
        if len(best) <= target * 1.05:
            break
    return best


def noisy_picture(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """The 800×600 picture of ``noisy_jpeg``: 60 random rectangles and ellipses under grain."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, (90, 120, 160))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        box = (x, y, x + rng.randrange(20, 300), y + rng.randrange(20, 200))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    noise = Image.effect_noise(size, 40).convert("RGB")
    return Image.blend(image, noise, 0.25)


def distinct_jpegs(count: int, target: int = TARGET_BYTES, first_seed: int = 1000) -> list[bytes]:
    """``count`` different pictures (different shapes, so different PDQ hashes) of about
    ``target`` bytes: the quality that fits is found once, then each picture is encoded once."""
    quality = 95
    for quality in range(95, 20, -5):
        buffer = io.BytesIO()
        noisy_picture(first_seed).save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= target * 1.05:
            break
    images = []
    for n in range(count):
        buffer = io.BytesIO()
        noisy_picture(first_seed + n).save(buffer, "JPEG", quality=quality)
        images.append(buffer.getvalue())
    return images


def photo_jpeg(width: int, height: int, seed: int = 7, quality: int = 85) -> bytes:
    """A synthetic photo-like JPEG: a sky-to-ground gradient, soft shapes and grain."""
    rng = random.Random(seed)
    top = tuple(rng.randrange(60, 200) for _ in range(3))
    bottom = tuple(rng.randrange(20, 140) for _ in range(3))
    column = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        column.putpixel(
            (0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    image = column.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    scale = max(width, height) / 1000
    for _ in range(25):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(40, 400) * scale, rng.randrange(40, 300) * scale
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.6 else draw.rectangle)((x, y, x + w, y + h), colour)
    image = image.filter(ImageFilter.GaussianBlur(3 * scale))
    grain = Image.effect_noise((width, height), 48).convert("RGB")
    image = Image.blend(image, grain, 0.2)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same picture with a JPEG comment segment: new bytes (a new SHA-256), same decode."""
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return jpeg[:2] + segment + jpeg[2:]


# The server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(instance: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of the server and the CLI: this instance, quiet logs, no rate limit.

    ``settings`` are more ``MODTOOLS_*`` settings, named without the prefix.
    """
    return {
        **os.environ,
        "MODTOOLS_INSTANCE_PATH": str(instance),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODTOOLS_API_RATE_LIMIT_PER_MINUTE": "0",
        "MODTOOLS_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **{f"MODTOOLS_{key}": value for key, value in settings.items()},
    }


def flask_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        input=stdin,
    ).stdout


def prepare_instance(env: dict[str, str]) -> None:
    """Migrate the instance's database, then create any table whose migration is not written
    yet, so the worker runs the whole pipeline."""
    flask_cli(env, "db", "upgrade")
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


def create_source(env: dict[str, str]) -> str:
    """A source made with the CLI; its API token."""
    import json

    return json.loads(flask_cli(env, "sources", "create", "Bench", "--json"))["token"]


def create_moderator(env: dict[str, str]) -> None:
    flask_cli(
        env,
        "users",
        "create",
        "--email",
        MODERATOR_EMAIL,
        "--role",
        "moderator",
        "--password-stdin",
        stdin=MODERATOR_PASSWORD + "\n",
    )


def launch(env: dict[str, str], log_path: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start ``python wsgi.py`` with its output in ``log_path``; return once /healthz answers."""
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "wsgi.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server.log_path = log_path  # type: ignore[attr-defined]  (for stop)
    port = int(env["PORT"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    stop(server)
    raise SystemExit(f"the server did not become healthy; see {log_path}")


def start_server(instance: Path, port: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """A migrated fresh instance and the server running on it, as ``make run`` starts it."""
    env = server_env(instance, port)
    prepare_instance(env)
    return launch(env, instance.parent / "server.log"), env


def stop(server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM (the server finishes the work in hand), then SIGKILL if it does not stop.

    With ``BENCH_KEEP_LOGS=<folder>`` in the environment the server's log is copied there
    (the instance and its log are otherwise deleted with the temporary directory).
    """
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    keep, log_path = os.environ.get("BENCH_KEEP_LOGS"), getattr(server, "log_path", None)
    if keep and log_path is not None and log_path.exists():
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, Path(keep) / f"{Path(sys.argv[0]).stem}-{server.pid}.log")


def server_errors(log_path: Path) -> list[str]:
    """ERROR lines the server logged, each with the last line of its traceback (the exception)."""
    if not log_path.exists():
        return []
    errors: list[str] = []
    block: list[str] = []
    for line in [*log_path.read_text(errors="replace").splitlines(), "0000-00-00 end"]:
        if re.match(r"\d{4}-\d\d-\d\d ", line) or (line.startswith("Traceback") and not block):
            if block:
                last = block[-1] if len(block) > 1 and block[-1] != block[0] else ""
                errors.append(block[0] + (f" … {last.strip()}" if last else ""))
            block = [line] if " ERROR " in line or line.startswith("Traceback") else []
        elif block:
            block.append(line)
    return errors


def start_profile(
    path: str, pid: int, idle: bool = False, gil: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` into ``path`` (.svg: a flame graph, else collapsed stacks), per
    thread; with ``idle`` also the time threads spend waiting (locks, fsync, sockets), with
    ``gil`` only the thread holding the GIL (what limits one process)."""
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH')}")
    if spy is None:
        raise SystemExit("profiling needs py-spy (not in the requirements): pip install py-spy")
    return subprocess.Popen(
        [
            spy,
            "record",
            "--threads",
            *(["--idle"] if idle else []),
            *(["--gil"] if gil else []),
            "--format",
            "flamegraph" if path.endswith(".svg") else "raw",
            "-o",
            path,
            "-p",
            str(pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(spy: subprocess.Popen[bytes]) -> None:
    """Stop py-spy so that it writes its output."""
    spy.send_signal(signal.SIGINT)
    spy.wait(60)


# /proc ------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int | str, field: str = "VmRSS") -> int:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM, RssAnon...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int | str) -> int:
    """Proportional set size (shared pages divided among their users), from smaps_rollup."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def memory_mib(pid: int) -> dict[str, float]:
    """RSS, PSS, anonymous RSS and the RSS peak of a process, in MiB."""
    return {
        "rss": status_kib(pid) / 1024,
        "pss": pss_kib(pid) / 1024,
        "anon": status_kib(pid, "RssAnon") / 1024,
        "peak": status_kib(pid, "VmHWM") / 1024,
    }


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# Numbers and reports ----------------------------------------------------------------------------


def percentiles(samples_ms: Iterable[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of latencies in milliseconds (nearest rank)."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def machine_line() -> str:
    """Date, machine, CPUs, Python and the load average now: the first line of every report."""
    load = os.getloadavg()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}"
    )


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None
) -> str:
    """A markdown table; ``align`` has an ``l`` or ``r`` per column (default: the first left)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if side == "r" else "---" for side in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def stamp(moment: datetime) -> str:
    """A timestamp as SQLAlchemy stores one in SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


# Hash banks -------------------------------------------------------------------------------------


def bulk_load_pdq_bank(
    database: Path, bank_name: str, count: int, planted: Sequence[str], seed: int = 11
) -> float:
    """Fill the bank ``bank_name`` (made with ``flask banks create``) with ``count`` random PDQ
    hashes, ``planted`` among them, straight into SQLite while no server runs; seconds taken.

    A million entries through ``flask banks import`` would take about a minute (validated,
    de-duplicated, change-logged); here the rows go in sorted by hash, in one transaction, so
    every index of ``bank_entries`` is appended to in order. No change-log rows are written: a
    server started afterwards builds its index from ``bank_entries`` itself.
    """
    import numpy as np

    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(count - len(planted), 32), dtype=np.uint8).tobytes()
    signals = [raw[k : k + 32].hex() for k in range(0, len(raw), 32)] + list(planted)
    signals.sort()
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA synchronous=OFF")
    bank_id = connection.execute("SELECT id FROM banks WHERE name = ?", (bank_name,)).fetchone()[0]
    now = stamp(datetime.now(UTC))
    with connection:
        connection.executemany(
            "INSERT INTO bank_entries (bank_id, signal_type, signal, created_at, created_by)"
            " VALUES (?, 'pdq', ?, ?, 'bench')",
            ((bank_id, signal, now) for signal in signals),
        )
        connection.execute(
            "UPDATE banks SET pdq_count = pdq_count + ? WHERE id = ?", (len(signals), bank_id)
        )
    connection.close()
    return time.perf_counter() - began


def near_pdq(pdq: str, distance: int, seed: int = 3) -> str:
    """A PDQ hash exactly ``distance`` bits from ``pdq``."""
    value = int(pdq, 16)
    for bit in random.Random(seed).sample(range(256), distance):
        value ^= 1 << bit
    return f"{value:064x}"


def pdq_of(data: bytes) -> str:
    """The PDQ hash the server computes for these image bytes."""
    from app.services.hashing import compute_hashes_and_info

    pdq = compute_hashes_and_info(data).hashes.pdq
    assert pdq is not None, "the picture's PDQ quality is below 50"
    return pdq


# HTTP clients -----------------------------------------------------------------------------------


def log_in(base: str):  # type: ignore[no-untyped-def]
    """A ``requests`` session logged in as the bench moderator through the login form."""
    import requests

    session = requests.Session()
    session.trust_env = False
    page = session.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = session.post(
        f"{base}/login",
        data={"csrf_token": token, "email": MODERATOR_EMAIL, "password": MODERATOR_PASSWORD},
        allow_redirects=False,
    )
    assert response.status_code in (302, 303), response.text[:500]
    return session

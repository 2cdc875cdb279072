"""Fixtures of the scale-out suite: a fresh PostgreSQL database, a Redis queue, and a cluster of
two web processes and two consumers sharing them (``make test-scale``).

Each run gets its own database (``modtools_scale_<random>``, dropped afterwards) and an empty
Redis database number (flushed afterwards), so runs never see each other's rows or tasks.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.fakes.s3 import FakeS3

ROOT = Path(__file__).resolve().parents[2]
PG = ["-h", "127.0.0.1", "-U", "postgres"]
REDIS_URL = "redis://127.0.0.1:6379"
CREATE_MISSING_TABLES = (
    "from app import create_app; from app.extensions import db; app = create_app(); "
    "app.app_context().push(); db.create_all()"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database on loopback."""
    name = f"modtools_scale_{secrets.token_hex(4)}"
    subprocess.run(["createdb", *PG, name], check=True, capture_output=True)
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    subprocess.run(["dropdb", *PG, "--force", name], check=False, capture_output=True)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An empty Redis database number of its own, flushed afterwards."""
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        # SETNX claims the number, so two runs at once never share one.
        if client.dbsize() == 0 and client.set("modtools-scale-lock", "1", nx=True):
            break
    else:
        pytest.fail("no empty Redis database number (1-15) is free")
    yield f"{REDIS_URL}/{number}"
    client.flushdb()
    client.close()


def flask_cli(env: dict[str, str], *args: str) -> str:
    """``flask --app wsgi ARGS`` in this cluster's environment; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


class Cluster:
    """Two web processes (no embedded consumer) and two standalone consumers."""

    def __init__(self, instance: Path, database_url: str, huey_url: str) -> None:
        self.instance = instance
        self.env = {
            **os.environ,
            "MODTOOLS_INSTANCE_PATH": str(instance),
            "DATABASE_URL": database_url,
            "HUEY_URL": huey_url,
            "MODTOOLS_EMBEDDED_WORKER": "false",
            "MODTOOLS_WORKER_HEARTBEAT_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.token = ""

    def provision(self) -> None:
        """Migrate (the real ``flask db upgrade``), then create a source."""
        flask_cli(self.env, "db", "upgrade")
        # Tables whose migration is not written yet (see the report in docs/deploy.md).
        subprocess.run(
            [sys.executable, "-c", CREATE_MISSING_TABLES],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        credentials = json.loads(
            flask_cli(self.env, "sources", "create", "Forum", "--kind", "generic", "--json")
        )
        self.token = credentials["token"]

    def _spawn(self, args: list[str], name: str, **extra: str) -> None:
        with (self.instance.parent / f"{name}.log").open("ab") as log:  # the child keeps a copy
            self.processes.append(
                subprocess.Popen(
                    args, cwd=ROOT, env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT
                )
            )

    def start(self) -> None:
        """Start both consumers, then both web processes, and wait until they answer."""
        from tests.test_runtime import free_port

        for number in (1, 2):
            self._spawn(
                [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], f"worker{number}"
            )
        for number in (1, 2):
            port = free_port()
            self.ports.append(port)
            self._spawn([sys.executable, "wsgi.py"], f"web{number}", MODTOOLS_PORT=str(port))
        deadline = time.monotonic() + 60
        for port in self.ports:
            while True:
                assert all(p.poll() is None for p in self.processes), self.logs()
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, f"cluster not healthy:\n{self.logs()}"
                time.sleep(0.2)

    def post_item(self, number: int, body: dict[str, Any]) -> requests.Response:
        """POST an item to web process ``number % 2``."""
        port = self.ports[number % 2]
        return requests.post(
            f"http://127.0.0.1:{port}/api/v1/items",
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:]
            for path in sorted(self.instance.parent.glob("*.log"))
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    """A provisioned, running cluster on PostgreSQL and Redis."""
    running = Cluster(tmp_path / "instance", pg_url, redis_url)
    running.provision()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def s3_cluster(
    tmp_path: Path, pg_url: str, redis_url: str
) -> Iterator[tuple[Cluster, FakeS3, str]]:
    """A running cluster whose media live in a bucket of moto's S3 on loopback."""
    fake = FakeS3().start()
    bucket = f"modtools-scale-{secrets.token_hex(4)}"
    fake.client().create_bucket(Bucket=bucket)
    running = Cluster(tmp_path / "instance", pg_url, redis_url)
    running.env.update(
        {
            "MODTOOLS_MEDIA_BACKEND": "s3",
            "MODTOOLS_S3_BUCKET": bucket,
            "MODTOOLS_S3_ENDPOINT_URL": fake.url,
            "MODTOOLS_S3_ACCESS_KEY_ID": "modtools",
            "MODTOOLS_S3_SECRET_ACCESS_KEY": "scale-secret",
        }
    )
    try:
        running.provision()
        running.start()
        yield running, fake, bucket
    finally:
        running.stop()
        fake.stop()

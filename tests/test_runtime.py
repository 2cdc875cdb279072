"""The one-process server as a user runs it: start, serve, stop on a signal, survive kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models.job import Job
from app.services import jobs
from tests.support import server as support_server  # registers test.slow_mark here too

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A ``python -m tests.support.server`` process on its own port and instance folder."""

    def __init__(self, instance: Path) -> None:
        self.instance = instance
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.log = instance.parent / f"server-{self.port}.log"

    def start(self, **extra_env: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            **extra_env,
            "MODTOOLS_INSTANCE_PATH": str(self.instance),
            "MODTOOLS_PORT": str(self.port),
            "MODTOOLS_WORKER_HEARTBEAT_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        with self.log.open("a") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.server"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.wait_healthy()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url("/healthz"), timeout=2) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process and self.process.poll() is None, self.output()
            try:
                status, _ = self.health()
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not healthy in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            message = f"server still running {timeout}s after {sig!r}:\n{self.output()}"
            raise AssertionError(message) from None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "instance")
    yield srv
    if srv.process and srv.process.poll() is None:
        srv.process.kill()
        srv.process.wait()


@pytest.fixture
def queue_app(server: Server, monkeypatch: pytest.MonkeyPatch):
    """An app in this test process that shares the server's database and task queue."""
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(server.instance))
    return create_app()


def job_state(app, job_id: str) -> Job:
    with app.app_context():
        job = db.session.scalars(select(Job).where(Job.id == job_id)).one()
        db.session.expunge(job)
        return job


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def migrate(instance: Path) -> None:
    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(instance)}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def test_server_serves_health_and_stops_cleanly_on_sigterm(server: Server) -> None:
    migrate(server.instance)
    server.start()
    status, body = server.health()
    assert (status, body) == (
        200,
        {"status": "ok", "database": "ok", "worker": "ok", "media": "ok"},
    )
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.output()


def test_sigterm_while_still_starting_stops_the_server(server: Server) -> None:
    # /healthz answers before the last start-up step ends; a service manager may stop it then.
    migrate(server.instance)
    server.start(MODTOOLS_TEST_SLOW_SETUP_SECONDS="3")
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.output()


def test_sigint_lets_the_task_in_hand_finish(server: Server, queue_app, tmp_path: Path) -> None:
    migrate(server.instance)
    server.start()
    marker = tmp_path / "marker"
    with queue_app.app_context():
        job_id = jobs.enqueue("test.slow_mark", str(marker), 2.0).id
    wait_for(lambda: marker.exists(), what="the job to start")
    assert server.stop(signal.SIGINT) == 0
    assert marker.read_text().splitlines() == ["start", "done"]
    assert job_state(queue_app, job_id).status == "done"


def test_job_running_at_kill_9_runs_again_after_restart(
    server: Server, queue_app, tmp_path: Path
) -> None:
    migrate(server.instance)
    server.start()
    marker = tmp_path / "marker"
    with queue_app.app_context():
        job_id = jobs.enqueue("test.slow_mark", str(marker), 3.0).id
    wait_for(lambda: job_state(queue_app, job_id).status == "running", what="the job to run")
    server.stop(signal.SIGKILL)
    assert marker.read_text().splitlines() == ["start"]  # interrupted mid-task
    assert job_state(queue_app, job_id).status == "running"  # the row still says so

    server.start()
    wait_for(lambda: job_state(queue_app, job_id).status == "done", what="the job to finish")
    assert marker.read_text().splitlines() == ["start", "start", "done"]
    assert job_state(queue_app, job_id).attempts == 2
    assert server.stop() == 0


def test_job_queued_while_server_was_down_runs_at_start(
    server: Server, queue_app, tmp_path: Path
) -> None:
    migrate(server.instance)
    marker = tmp_path / "marker"
    with queue_app.app_context():
        job_id = jobs.enqueue("test.slow_mark", str(marker), 0.0).id
    assert job_state(queue_app, job_id).status == "queued"
    server.start()
    wait_for(lambda: job_state(queue_app, job_id).status == "done", what="the job to finish")
    assert marker.read_text().splitlines() == ["start", "done"]
    server.stop()


def test_health_reports_a_missing_worker(server: Server, queue_app) -> None:
    """Without a running consumer, the health check names the worker as the failing part."""
    migrate(server.instance)
    client = queue_app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "failing",
        "database": "ok",
        "media": "ok",
        "worker": "not running",
    }
    assert support_server.slow_mark  # the test job is registered in this process too

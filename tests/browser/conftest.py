"""Browser tests: Debian's Chromium, driven by Playwright, against the real server.

``make test-browser`` runs them (the main suite ignores this folder). ``playwright install``
cannot download a browser here, so the launch points at ``/usr/bin/chromium``
(``MODTOOLS_CHROMIUM`` moves it).

The ``site`` fixture starts the one-process server (waitress, Huey worker threads, SQLite) on a
fresh instance folder, creates a moderator, a lead and an admin with the CLI, and fills the queue
with ``flask demo`` through the HTTP API, as a new installation would be tried out.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
CHROMIUM = os.environ.get("MODTOOLS_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch the system Chromium, quietly: no sandbox (containers), no GPU, no phoning home."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@dataclass
class Site:
    """A running server and what the tests need to know about it."""

    url: str
    instance: Path
    users: dict[str, str]  # role -> email

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the server's database directly (the tests' only back door, read-only)."""
        with sqlite3.connect(self.instance / "modtools.db", timeout=10) as connection:
            return connection.execute(sql, params).fetchall()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr or done.stdout
    return done.stdout


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if session.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A fresh server with three users and the demo data, for one test module."""
    folder = tmp_path_factory.mktemp("site")
    instance = folder / "instance"
    port = _free_port()
    env = {
        **os.environ,
        "MODTOOLS_INSTANCE_PATH": str(instance),
        "MODTOOLS_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "MODTOOLS_PASSWORD_HASH_FAST": "true",
    }
    _run(
        env,
        "-c",
        "from app import create_app; from app.extensions import db; "
        "app = create_app(); app.app_context().push(); db.create_all()",
    )
    users = {}
    for role in ("moderator", "lead", "admin"):
        users[role] = f"{role}@example.org"
        _run(
            env,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "users",
            "create",
            "--email",
            users[role],
            "--role",
            role,
            "--name",
            f"{role.capitalize()} Person",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
    log = folder / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.support.server"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, server, log)
        _run(env, "-m", "flask", "--app", "wsgi", "demo", "--url", url)
        site = Site(url, instance, users)
        deadline = time.monotonic() + 60
        while (
            site.query("SELECT count(*) FROM items WHERE status IN ('received', 'scanning')")[0][0]
            or site.query("SELECT count(*) FROM items")[0][0] < 50
        ):
            assert time.monotonic() < deadline, "the demo items were not scanned in time"
            time.sleep(0.2)
        yield site
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def log_in(browser: Browser, site: Site, role: str) -> Page:
    """A new browser context logged in as the user with ``role``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(site.url + "/login")
    page.get_by_label("Email").fill(site.users[role])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(site.url + "/")
    return page

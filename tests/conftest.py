"""Shared fixtures: an app on a fresh instance folder with a real SQLite database."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from app.extensions import db

CSRF_PATTERN = re.compile(r'"X-CSRFToken": "([^"]+)"|name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def no_outside_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to loopback only: resolving any other host name fails as if it did not exist.

    A callback or image URL at example.org in a test must never become a DNS query, let alone a
    connection. IP literals still resolve (locally), so the SSRF refusals stay real.
    """
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name in ("", "localhost") or name.endswith(".localhost") or _is_ip_literal(name):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"the test suite does not resolve {name!r}")

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").split("%")[0])
    except ValueError:
        pass
    else:
        return True
    try:  # the legacy IPv4 spellings (127.1, 2130706433, 0x7f.1) also resolve without DNS
        socket.inet_aton(name)
    except OSError:
        return False
    return True


def make_test_config(instance: Path, **overrides: Any) -> dict[str, Any]:
    """The configuration every test app starts from."""
    config = {
        "TESTING": True,
        "HUEY_IMMEDIATE": True,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'modtools.db'}",
        "PASSWORD_HASH_FAST": True,  # argon2 with tiny costs: the suite logs in a lot
        "SERVER_NAME": None,
    }
    config.update(overrides)
    return config


@pytest.fixture
def instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "instance"
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(path))
    return path


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
def app(instance_path: Path, app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(make_test_config(instance_path, **app_config))
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def token(app: Flask) -> str:
    """The API token of a fresh generic source."""
    from tests.api_helpers import make_source

    return make_source(app)[1]


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a browser would have after loading ``path``."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_PATTERN.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a missing dependency must not pass silently."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") and reporter and reporter.stats.get("skipped"):
        reporter.write_line("CI: skipped tests count as failures here", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

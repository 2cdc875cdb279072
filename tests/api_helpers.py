"""Plain helpers for the API tests: sources and tokens, request bodies, synthetic images, fake
image hosts on loopback, and a real server with a source ready to post to."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from app.extensions import db
from app.models.item import Item
from app.services import sources
from app.services.audit import Actor
from tests.imagegen import encode, scene

ROOT = Path(__file__).resolve().parent.parent
# Where an item can be once process_item handed it to the scan pipeline; which one depends on
# the scanners and rules installed, which these tests do not control.
IN_PIPELINE = {"scanning", "queued", "escalated", "cleared", "removed"}


def make_source(app: Flask, name: str = "Forum") -> tuple[int, str]:
    """A new enabled source; returns its id and its raw API token."""
    with app.app_context():
        source, token, _ = sources.create_source(name, "generic", Actor.system("test"))
        return source.id, token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def jpeg(seed: int = 1, width: int = 320, height: int = 240, quality: int = 85) -> bytes:
    """A synthetic JPEG; different seeds give different pictures."""
    return encode(scene(width, height, seed=seed), "JPEG", quality=quality)


def b64(data: bytes) -> str:
    """Standard base64 text, as the API wants ``image.data``."""
    return base64.b64encode(data).decode()


def item_body(
    external_id: Any, data: bytes | None = None, url: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A JSON item: the image inline when ``data`` is given, else by ``url``."""
    image = {"data": b64(data)} if data is not None else {"url": url}
    return {"external_id": external_id, "image": image, **fields}


def load_item(app: Flask, item_id: str) -> Item:
    """The item row, detached, with its columns loaded."""
    with app.app_context():
        item = db.session.get(Item, item_id)
        assert item is not None, f"no item {item_id}"
        db.session.expunge(item)
        return item


def item_count(app: Flask) -> int:
    """How many items the database holds."""
    with app.app_context():
        return db.session.query(Item).count()


def http_session() -> requests.Session:
    """A requests session that ignores proxy settings: the tests talk to loopback only."""
    session = requests.Session()
    session.trust_env = False
    return session


# --- fake image hosts ---------------------------------------------------------------------------


DELAY_SECONDS = 2.0


class ImageHost:
    """An HTTP server on 127.0.0.1 serving ``files`` by path.

    ``/slow`` drips a byte every 0.2 s forever; ``/delayed/<path>`` serves ``<path>`` after
    ``DELAY_SECONDS``.
    """

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        self.files = files
        self.requests: list[str] = []
        self.stop = threading.Event()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                if self.path == "/slow":
                    self._drip()
                    return
                path = self.path
                if path.startswith("/delayed/"):  # keeps a fetch in flight for a while
                    host.stop.wait(DELAY_SECONDS)
                    path = path.removeprefix("/delayed")
                body, content_type = host.files.get(path, (b"", ""))
                self.send_response(200 if content_type else 404)
                self.send_header("Content-Type", content_type or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self) -> None:
                # A slow-loris answer: headers promise a large body, one byte arrives at a time.
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                try:
                    while not host.stop.wait(0.2):
                        self.wfile.write(b"\xff")
                        self.wfile.flush()
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def image_host(files: dict[str, tuple[bytes, str]]) -> Iterator[ImageHost]:
    """Run an ImageHost for the duration of a ``with`` block."""
    host = ImageHost(files)
    host.thread.start()
    try:
        yield host
    finally:
        host.close()


@contextmanager
def loopback_only() -> Iterator[list[Any]]:
    """Refuse (and record) any connection or DNS lookup this process tries beyond loopback.

    A safety net for SSRF tests and generated requests: should the fetcher ever try a public
    address or name, the attempt is recorded and fails here instead of touching the network.
    """
    attempts: list[Any] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        internet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if internet and not ipaddress.ip_address(address[0]).is_loopback:
            attempts.append(address)
            raise ConnectionRefusedError(f"test refused a connection to {address}")
        return connect(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name != "localhost":
                attempts.append(name)
                raise socket.gaierror(
                    socket.EAI_NONAME, f"test refused to look up {name}"
                ) from None
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield attempts
    finally:
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo


# --- a real server ------------------------------------------------------------------------------


def flask_cli(instance: Path, *args: str) -> str:
    """Run ``flask --app wsgi ARGS`` against ``instance`` and return its standard output."""
    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(instance)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


CREATE_MISSING_TABLES = (
    "from app import create_app; from app.extensions import db; app = create_app(); "
    "app.app_context().push(); db.create_all()"
)


def provision(instance: Path, source_name: str = "Forum") -> dict[str, Any]:
    """Migrate a fresh instance and create a source with the CLI; returns its id, slug, token."""
    flask_cli(instance, "db", "upgrade")
    # Tables whose migration is not written yet (test_migrations.py reports those); these tests
    # are about the API, not about migrations.
    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(instance)}
    subprocess.run(
        [sys.executable, "-c", CREATE_MISSING_TABLES],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return json.loads(
        flask_cli(instance, "sources", "create", source_name, "--kind", "generic", "--json")
    )


def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a ``with`` block; a server started inside inherits them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ApiServer:
    """The one-process server of ``tests.test_runtime`` on a provisioned instance, with a source.

    ``env`` holds ``MODTOOLS_*`` settings for the server process (limits, the fetch allow-list).
    """

    def __init__(self, instance: Path, env: dict[str, str] | None = None) -> None:
        from tests.test_runtime import Server

        self.server = Server(instance)
        self.env = env or {}
        self.credentials = provision(instance)
        self.token: str = self.credentials["token"]
        self.http = http_session()

    def start(self) -> None:
        with environment(self.env):
            self.server.start()

    def url(self, path: str) -> str:
        return self.server.url(path)

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """An HTTP request with the source's token (or ``token``)."""
        headers = {**bearer(token or self.token), **kwargs.pop("headers", {})}
        return self.http.request(method, self.url(path), headers=headers, timeout=30, **kwargs)

    def wait_processed(self, item_id: str, timeout: float = 30) -> dict[str, Any]:
        """The item once ``process_item`` has moved it out of ``received``."""

        def processed() -> dict[str, Any] | None:
            response = self.request("GET", f"/api/v1/items/{item_id}")
            assert response.status_code == 200, (response.status_code, response.text)
            item = response.json()
            return item if item["status"] != "received" else None

        return wait_until(processed, timeout, f"item {item_id} to be processed")

    def close(self) -> None:
        process = self.server.process
        if process and process.poll() is None:
            process.kill()
            process.wait()
        self.http.close()

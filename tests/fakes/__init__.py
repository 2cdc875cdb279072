"""Fake third-party services for the tests, each a small WSGI app served on loopback.

``FakeServer`` runs any WSGI app with waitress on 127.0.0.1 at a free port, on a thread, until
``stop``. Each ``tests/fakes/<service>.py`` reproduces one vendor's documented contract
(``shared/reference/``) and checks the requests it gets the way the vendor says it does, so a
client bug shows up as the vendor's error rather than passing unnoticed.

Fakes are scripted with ``FakeService.upcoming``: one behaviour per request (``"timeout"``,
``"429"``, …), consumed in order; an empty list means "behave as documented". ``running`` serves
one for a ``with`` block. The last functions drive the app the way the integration tests do:
switch a plugin on through the settings service, send an item through the API, read results.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from waitress import wasyncore
from waitress.server import create_server
from werkzeug.wrappers import Request, Response

from app.extensions import db
from app.models.scan import ScanResult
from app.services import plugin_settings
from app.services.audit import Actor
from tests.api_helpers import bearer, item_body
from tests.pipeline_helpers import configure

Service = TypeVar("Service", bound="FakeService")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FakeServer:
    """Serves a WSGI app on 127.0.0.1 at a free port, on a daemon thread, until ``stop``."""

    def __init__(self, app: WSGIApp) -> None:
        self.server: Any = create_server(app, host="127.0.0.1", port=0, threads=4, ident="fake")
        self.port: int = self.server.effective_port
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="fake-server", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        """Start answering; returns the server for chaining."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and free the port and every connection."""
        self.stopping.set()
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        # Our own loop rather than waitress's ``run``: closing sockets from another thread while
        # the loop waits on them fails with EBADF, so the loop's thread closes them itself.
        while not self.stopping.is_set():
            wasyncore.loop(timeout=0.05, map=self.server._map, count=1)
        self.server.task_dispatcher.shutdown(timeout=5)  # requests in flight finish first
        wasyncore.close_all(self.server._map)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeService(ABC):
    """The shared part of a fake vendor: scripted behaviours, a request log, a stop switch.

    Subclasses implement ``answer(request)``; ``wsgi`` is the app to serve.
    """

    def __init__(self) -> None:
        self.url = ""  # set while it runs
        self.upcoming: list[str] = []  # behaviours for the next requests, in order
        self.requests: list[Request] = []
        self.released = threading.Event()  # set on stop: a "timeout" request stops sleeping
        self.lock = threading.Lock()

    def next_behaviour(self) -> str | None:
        """The scripted behaviour for this request, if any (thread-safe)."""
        with self.lock:
            return self.upcoming.pop(0) if self.upcoming else None

    @abstractmethod
    def answer(self, request: Request) -> Response:
        """The vendor's answer to one request."""

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI entry point: keep the request (body read once, cached), then answer it."""
        request = Request(environ)
        request.get_data()  # cache the body so tests can read it after the answer
        with self.lock:
            self.requests.append(request)
        try:
            response = self.answer(request)
        finally:
            request.close()  # uploaded files' temporary files; the body stays readable
        return response(environ, start_response)

    def sleep_past_timeout(self, seconds: float = 10.0) -> None:
        """Hold the request, as a vendor that never answers, until the fake is stopped."""
        self.released.wait(seconds)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer with ``status``."""
    return Response(
        json.dumps(body), status=status, headers=headers or {}, content_type="application/json"
    )


def malformed_json() -> Response:
    """What a broken proxy might send: 200 with a body that is not JSON."""
    return Response("<html>upstream reset</html>", status=200, content_type="application/json")


@contextmanager
def running(service: Service) -> Iterator[Service]:
    """Serve ``service`` on loopback for a ``with`` block; ``service.url`` is its base URL."""
    server = FakeServer(service.wsgi).start()
    service.url = server.url
    try:
        yield service
    finally:
        service.released.set()  # a request held by "timeout" ends now
        server.stop()


@contextmanager
def serving(service: Service) -> Iterator[Service]:
    """``running(service)`` for a vendor test: and afterwards, nothing but loopback was contacted
    (the fake answered everything; no request escaped towards the real service)."""
    from tests.api_helpers import loopback_only

    with loopback_only() as escaped, running(service) as served:
        yield served
    assert escaped == []  # nothing but loopback was ever contacted


# --- driving the app against a fake ---------------------------------------------------------------


def switch_on(app: Flask, name: str, settings: dict[str, str]) -> None:
    """Save a plugin's settings and switch it on as an admin would; the hash banks go off."""
    with app.app_context():
        plugin_settings.save_settings(name, settings, set(), Actor.system("test"))
        plugin_settings.set_enabled(name, True, Actor.system("test"))
    configure(app, "hashbank", enabled=False)


def send_item(
    client: FlaskClient, token: str, external_id: str, data: bytes | None = None, url: str = ""
) -> str:
    """POST an item through the API and return its id. Jobs run inline in the tests, so its
    first scan attempt is over when this returns."""
    answer = client.post(
        "/api/v1/items", json=item_body(external_id, data, url or None), headers=bearer(token)
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return str(answer.get_json()["id"])


def raw_record(app: Flask, item_id: str, scanner: str) -> Any:
    """What the latest scan by ``scanner`` kept of the vendor's answer, for the record."""
    with app.app_context():
        rows = db.session.scalars(
            select(ScanResult.raw)
            .where(ScanResult.item_id == item_id, ScanResult.scanner == scanner)
            .order_by(ScanResult.scan_round.desc())
        )
        return rows.first()

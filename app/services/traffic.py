"""Requests in flight, so this process's background work can step aside for them.

In the one-process server the web threads and the embedded worker's threads share one GIL. A job
that holds it for tens of milliseconds (hashing, previews, the scan round's SQL) makes every
request that wants it back wait for its switch interval, again and again: during a burst of
uploads, the worker would halve the intake rate and multiply its tail latency. So before a worker
thread starts a job it waits, up to ``WORKER_YIELD_MS``, for the web threads to have nothing in
flight. A burst is answered first and processed right after; under a steady load the wait is
bounded, so processing slows down but never stops. A standalone worker (``flask worker``) serves
no requests and never waits. ``WORKER_YIELD_MS = 0`` switches this off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask


class Traffic:
    """A count of requests in flight, with a way to wait until there are none."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.quiet = threading.Condition()

    def enter(self) -> None:
        with self.quiet:
            self.in_flight += 1

    def leave(self) -> None:
        with self.quiet:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.quiet.notify_all()

    def wait_quiet(self, seconds: float) -> bool:
        """Wait until no request is in flight, for at most ``seconds``; True if that happened."""
        with self.quiet:
            return self.quiet.wait_for(lambda: self.in_flight == 0, seconds)


class CountingMiddleware:
    """WSGI middleware counting the requests the app is working on."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], traffic: Traffic) -> None:
        self.wsgi_app, self.traffic = wsgi_app, traffic

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.traffic.enter()
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            self.traffic.leave()  # the body is built by now, or streams without much Python


def init_traffic(app: Flask) -> None:
    """Count this app's requests (``traffic_of(app)``)."""
    traffic = Traffic()
    app.extensions["modtools_traffic"] = traffic
    app.wsgi_app = CountingMiddleware(app.wsgi_app, traffic)  # type: ignore[method-assign]


def traffic_of(app: Flask) -> Traffic:
    return app.extensions["modtools_traffic"]


def make_way(app: Flask) -> None:
    """Before a background job: let the requests in flight finish first, within the limit."""
    seconds = app.config["WORKER_YIELD_MS"] / 1000
    if seconds > 0:
        traffic_of(app).wait_quiet(seconds)

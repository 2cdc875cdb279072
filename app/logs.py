"""Logging: plain lines for a console, or JSON lines for log collectors (``LOG_FORMAT=json``).

Every request gets an id: the ``X-Request-ID`` a proxy sent (if it looks like one) or a new one.
It is echoed in the response and added to every log line written while the request is handled,
so one request can be followed from the proxy's log through ours. Lines never carry secrets or
image bytes: the access line names the path without its query string, and bearer tokens or
``token=`` values that reach a message anyway are masked.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
# Ids a proxy may send: short and plain, so a forged header cannot inject text into log lines.
ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[^\s,;\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:token|secret|password|api_key|key)=)[^\s&,;\"']+"), r"\1[redacted]"),
]
access_log = logging.getLogger("modtools.access")
# Libraries that log at INFO while they are first imported, which happens after logging is set up
# (threatexchange, with faiss, at the first exchange fetch; alembic at ``flask db``): which CPU
# build of faiss loaded and which alembic plugins registered is no news for an operator.
QUIET_LOGGERS = ("faiss.loader", "alembic.runtime.plugins")


def redact(message: str) -> str:
    """Mask anything in ``message`` that looks like a credential."""
    for pattern, replacement in SECRET_PATTERNS:
        message = pattern.sub(replacement, message)
    return message


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, message and request id."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for field in ("method", "path", "status", "duration_ms"):
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """The console line, with the request id when there is one and credentials masked."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return redact(f"{line} [{request_id}]" if request_id else line)


def init_logging(app: Flask) -> None:
    """Configure the root logger once per process; give this app request ids and an access log."""
    _init_request_ids(app)
    root = logging.getLogger()
    if getattr(root, "_modtools_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if app.config.get("LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root._modtools_configured = True  # type: ignore[attr-defined]


def _init_request_ids(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if ACCEPTABLE_ID.fullmatch(offered) else secrets.token_hex(16)
        g.request_started = time.monotonic()

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
            elapsed = (time.monotonic() - g.get("request_started", time.monotonic())) * 1000
            access_log.info(
                "%s %s %d",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed, 1),
                },
            )
        return response

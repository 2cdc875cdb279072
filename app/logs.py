"""Logging: plain lines for a console, or JSON lines for log collectors (``LOG_FORMAT=json``)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from flask import Flask


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def init_logging(app: Flask) -> None:
    """Configure the root logger once per process, from ``LOG_LEVEL`` and ``LOG_FORMAT``."""
    root = logging.getLogger()
    if getattr(root, "_modtools_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if app.config.get("LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    root._modtools_configured = True  # type: ignore[attr-defined]

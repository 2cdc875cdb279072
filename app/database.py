"""Database set-up: SQLite in WAL mode with foreign keys and a busy timeout; PostgreSQL as is."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.extensions import db

__all__ = ["db", "init_database"]


def init_database(app: Flask) -> None:
    """Bind SQLAlchemy and tune SQLite connections as they open."""
    uri: str = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        connect_args = dict(options.get("connect_args", {}))
        # Threads (waitress, Huey workers) share the pool; the busy timeout makes writers queue.
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000)
        options["connect_args"] = connect_args
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    else:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_pre_ping": True,
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
        }
    # Every web thread may hold a connection while it waits for the intake writer, which needs
    # one of its own, as do the worker threads: size the pool for all of them at once.
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    if not _in_memory(uri) and "poolclass" not in options:  # NullPool and friends take no size
        options.setdefault("pool_size", app.config["WEB_THREADS"] + app.config["HUEY_WORKERS"] + 4)
        options.setdefault("max_overflow", 16)
    importlib.import_module("app.models")  # register every table

    db.init_app(app)


def _in_memory(uri: str) -> bool:
    return uri in ("sqlite://", "sqlite:///") or ":memory:" in uri or "mode=memory" in uri


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a committed row survives power loss too, which "202 means durable" promises.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()

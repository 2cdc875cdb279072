"""Flask extensions, created unbound here and bound to an app in ``create_app``.

Huey is created with an in-memory store and given its real storage (SQLite in the instance folder,
or Redis) by :func:`init_huey`, so the task decorators in ``app/tasks.py`` can run at import time
while the app factory still decides where the queue lives. Flask-Migrate is imported only when
something migrates (:class:`Migrate`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from huey import Huey
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of every model."""


class Migrate:
    """Flask-Migrate, imported when something migrates: ``flask db …`` or ``flask_migrate.upgrade``.

    Flask-Migrate imports alembic, mako and pygments, about 11 MiB and 0.17 s that the server never
    needs. So ``init_app`` (which takes Flask-Migrate's arguments) registers two stand-ins: a
    ``db`` command whose arguments Flask-Migrate's own command group parses and runs, and an
    ``app.extensions["migrate"]`` entry that binds the real extension when first read.
    """

    def init_app(self, app: Flask, db: SQLAlchemy, **options: Any) -> None:
        """Register the ``db`` commands and the extension entry, without importing Flask-Migrate."""
        app.extensions["migrate"] = _MigrateOnFirstUse(app, db, options)
        app.cli.add_command(_DbCommand("db", help="Perform database migrations."))


class _MigrateOnFirstUse:
    """``app.extensions["migrate"]`` until something reads it, then Flask-Migrate's own entry."""

    def __init__(self, app: Flask, db: SQLAlchemy, options: dict[str, Any]) -> None:
        self._app, self._db, self._options = app, db, options

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not one of Flask-Migrate's (copy, pickle, half-made objects)
            raise AttributeError(name)
        from flask_migrate import Migrate as FlaskMigrate

        FlaskMigrate(self._app, self._db, **self._options)  # replaces this entry and ``db``
        return getattr(self._app.extensions["migrate"], name)


class _DbCommand(click.Command):
    """``flask db``: handed, with its arguments, to Flask-Migrate's command group."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Flask-Migrate's group parses the arguments; the context it makes runs its commands."""
        from flask_migrate.cli import db as commands

        return commands.make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        """Run what the context belongs to: Flask-Migrate's group (for ``main()`` callers)."""
        return ctx.command.invoke(ctx)


db = SQLAlchemy(model_class=Base)


def core_write(statement: Any, parameters: Any = None) -> Any:
    """Run an INSERT, UPDATE or DELETE on the session's connection, in its transaction.

    For the hot paths (the audit head, job claims, routing): executed through the session, such
    statements also pay for the ORM's bookkeeping of loaded objects, which these callers do not
    need (they touch no loaded object, or commit before reading one). Unlike session.execute
    this does not flush pending objects first. ``parameters`` (a dict, or a list of dicts for
    many rows) go with a statement built once with ``bindparam``, which skips building and
    cache-keying the statement on every call.
    """
    return db.session.connection().execute(statement, parameters)


login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()
# results=False: a job's outcome lives in its row; storing Huey's copy would cost a write per job.
huey = Huey("modtools", storage_class=MemoryStorage, utc=True, results=False)


def init_huey(app: Flask) -> None:
    """Point the shared Huey instance at this app's queue and remember the app for tasks."""
    huey.flask_app = app  # type: ignore[attr-defined]  # tasks open this app's context
    if app.config["HUEY_IMMEDIATE"]:
        huey._immediate = True
        huey.storage = MemoryStorage(huey.name)
        return
    huey._immediate = False
    huey.storage = storage_for_url(app.config["HUEY_URL"], huey.name)


class QueueStorage(SqliteStorage):
    """Huey's SQLite queue, committed without waiting for the disk (``synchronous=NORMAL``).

    The queue only carries job ids: the job rows in the main database are durable (fsynced), and
    at start-up ``jobs.recover_unfinished`` dispatches every queued job the queue lost. So a
    message lost with the last moments before a power cut costs nothing, and not fsyncing every
    enqueue and dequeue spares two disk flushes per job. WAL mode keeps the file consistent.
    """

    def _create_connection(self) -> Any:
        connection = super()._create_connection()
        connection.execute("pragma synchronous=NORMAL")
        return connection

    def enqueue_many(self, messages: list[bytes], priority: int = 0) -> None:
        """Put several messages on the queue in one transaction (the intake writer's batches)."""
        with self.db(commit=True) as cursor:
            cursor.executemany(
                "insert into task (queue, data, priority) values (?, ?, ?)",
                [(self.name, self.to_blob(message), priority) for message in messages],
            )


def storage_for_url(url: str, name: str) -> Any:
    """Huey storage for ``sqlite:///path`` or ``redis://host:port/db`` URLs."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return QueueStorage(name, filename=url.removeprefix("sqlite:///"), timeout=15)
    if parts.scheme in ("redis", "rediss", "unix"):
        return RedisStorage(name, url=url)
    raise ValueError(f"HUEY_URL must be sqlite:///… or redis://…, not {parts.scheme or url!r}")

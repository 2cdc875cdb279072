"""Flask extensions, created unbound here and bound to an app in ``create_app``.

Huey is created with an in-memory store and given its real storage (SQLite in the instance folder,
or Redis) by :func:`init_huey`, so the task decorators in ``app/tasks.py`` can run at import time
while the app factory still decides where the queue lives.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from huey import Huey
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of every model."""


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()
huey = Huey("modtools", storage_class=MemoryStorage, utc=True)


def init_huey(app: Flask) -> None:
    """Point the shared Huey instance at this app's queue and remember the app for tasks."""
    huey.flask_app = app  # type: ignore[attr-defined]  # tasks open this app's context
    if app.config["HUEY_IMMEDIATE"]:
        huey._immediate = True
        huey.storage = MemoryStorage(huey.name)
        return
    huey._immediate = False
    huey.storage = storage_for_url(app.config["HUEY_URL"], huey.name)


def storage_for_url(url: str, name: str) -> Any:
    """Huey storage for ``sqlite:///path`` or ``redis://host:port/db`` URLs."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return SqliteStorage(name, filename=url.removeprefix("sqlite:///"), timeout=15)
    if parts.scheme in ("redis", "rediss", "unix"):
        return RedisStorage(name, url=url)
    raise ValueError(f"HUEY_URL must be sqlite:///… or redis://…, not {parts.scheme or url!r}")

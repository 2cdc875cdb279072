"""Plain factories for the review tests: users, logins, sources, items with media, scan results."""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import count
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models.item import Item
from app.models.scan import ScanResult
from app.models.source import Source
from app.models.types import new_id, utcnow
from app.models.user import User
from app.services import hashing, storage
from app.services.ingest import derived_store, original_store
from tests.imagegen import encode, scene

_numbers = count(1)
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')


def make_user(app: Flask, role: str = "moderator", name: str = "") -> User:
    """A saved, active user, detached, for logging in as and passing to services."""
    number = next(_numbers)
    with app.app_context():
        user = User(
            email=f"{role}{number}@example.org",
            display_name=name or f"{role} {number}",
            password_hash="not-a-real-hash",
            role=role,
        )
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
    return user


def login_as(client: FlaskClient, user: User) -> None:
    """Put ``user`` in the client's session the way flask-login does after a real login."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


def csrf_of(client: FlaskClient, path: str = "/review/") -> str:
    """The CSRF token a browser holds after loading ``path``."""
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def make_source(app: Flask, name: str = "Forum", **settings: Any) -> int:
    """A source row (no token); returns its id."""
    with app.app_context():
        source = Source(
            name=name, slug=f"{name.lower().replace(' ', '-')}-{next(_numbers)}", settings=settings
        )
        db.session.add(source)
        db.session.commit()
        return source.id


def make_item(
    app: Flask,
    source_id: int,
    *,
    status: str = "queued",
    priority: int = 0,
    age_minutes: float = 0,
    seed: int | None = None,
    with_media: bool = False,
    **fields: Any,
) -> str:
    """An item row; with ``with_media`` a real synthetic image is stored with its previews."""
    number = next(_numbers)
    with app.app_context():
        item = Item(
            id=new_id(),
            source_id=source_id,
            external_id=f"ext-{number}",
            status=status,
            priority=priority,
            created_at=utcnow() - timedelta(minutes=age_minutes),
            **fields,
        )
        if with_media:
            data = encode(scene(320, 240, seed=seed if seed is not None else number), "JPEG")
            hashed = hashing.compute_hashes_and_info(data)
            original_store().put(data)
            derived_store().save(hashed.hashes.sha256, storage.make_derivatives(hashed.picture))
            item.sha256, item.md5 = hashed.hashes.sha256, hashed.hashes.md5
            item.pdq, item.pdq_quality = hashed.hashes.pdq, hashed.hashes.pdq_quality
            item.mime, item.width, item.height = "image/jpeg", 320, 240
            item.bytes, item.has_derivatives = len(data), True
        db.session.add(item)
        db.session.commit()
        return item.id


def add_scan(
    app: Flask,
    item_id: str,
    scanner: str = "hashbank",
    verdict: str = "match",
    labels: list[dict[str, Any]] | None = None,
    matches: list[dict[str, Any]] | None = None,
    raw: Any = None,
) -> None:
    """A finished scan result for the item."""
    with app.app_context():
        db.session.add(
            ScanResult(
                item_id=item_id,
                scanner=scanner,
                status="done",
                verdict=verdict,
                labels=labels or [],
                matches=matches or [],
                raw=raw,
                finished_at=utcnow(),
            )
        )
        db.session.commit()


def csam_match(app: Flask, item_id: str) -> None:
    """Record that the hash-bank scanner matched the item to a bank labelled csam."""
    add_scan(
        app,
        item_id,
        labels=[{"name": "csam", "score": 1.0}],
        matches=[
            {
                "bank_id": 1,
                "bank_name": "Test CSAM list",
                "labels": ["csam"],
                "signal_type": "pdq",
                "distance": 4,
                "score": 0.98,
            }
        ],
    )


def load(app: Flask, item_id: str) -> Item:
    """The item row, detached."""
    with app.app_context():
        item = db.session.get(Item, item_id)
        assert item is not None
        db.session.expunge(item)
        return item


def attach(user: User) -> User:
    """``user`` merged into the current session (for calling services inside a test's context)."""
    return db.session.merge(user, load=False)

"""Plain helpers for the sources and ingest tests: users, logging in, sources, synthetic images."""

from __future__ import annotations

import io
import json
import re
from itertools import count

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageDraw
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.user import User

_numbers = count(1)
HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(app: Flask, role: str = "admin") -> User:
    """A saved, active user with the given role (detached, its columns loaded)."""
    with app.app_context():
        user = User(email=f"{role}{next(_numbers)}@example.org", password_hash="unused", role=role)
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


def form_csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token of the forms on ``path``."""
    html = client.get(path).get_data(as_text=True)
    match = HIDDEN_CSRF.search(html)
    assert match, f"no form with a CSRF token on {path}"
    return match.group(1)


def png(seed: int, size: int = 96) -> bytes:
    """A small synthetic PNG; different seeds give different images."""
    image = Image.new("RGB", (size, size), ((seed * 53) % 256, (seed * 97) % 256, 120))
    draw = ImageDraw.Draw(image)
    for step in range(6):
        offset = (seed * 7 + step * 13) % (size // 2)
        draw.rectangle(
            (offset, step * 12, offset + 30, step * 12 + 10), fill=(255 - step * 30, 40, seed % 256)
        )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def audit_events(app: Flask, prefix: str = "") -> list[tuple[str, str]]:
    """``(action, details as JSON)`` of every audit event whose action starts with ``prefix``."""
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        return [(e.action, json.dumps(e.details)) for e in events if e.action.startswith(prefix)]

"""Plain helpers for the webhook receiver tests: sources of each kind, signed requests, rows."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.source import Source
from app.models.webhook import WebhookReceipt
from app.services import sources
from app.services.audit import Actor

# Fetching is the worker's business: with Huey not immediate, jobs wait in the queue and the
# tests look at the items the webhook created, never at the network.
NO_WORKER = {"HUEY_IMMEDIATE": False}


def make_hook_source(
    app: Flask, kind: str, settings: dict[str, Any] | None = None, name: str = "Forum"
) -> tuple[str, str]:
    """A new source of ``kind``; returns its slug and its webhook secret."""
    with app.app_context():
        source, _, secret = sources.create_source(
            name, kind, Actor.system("test"), settings=settings or {}
        )
        return source.slug, secret


def body_bytes(payload: Any) -> bytes:
    """The JSON a platform would send (compact, UTF-8)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def items(app: Flask, slug: str) -> list[Item]:
    """The source's items, detached, by external id."""
    with app.app_context():
        source = db.session.scalar(select(Source).where(Source.slug == slug))
        rows = db.session.scalars(
            select(Item).where(Item.source_id == source.id).order_by(Item.external_id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def receipts(app: Flask, slug: str) -> list[tuple[str, int, str | None]]:
    """The source's receipt log as ``(status, http status, error)``, oldest first."""
    with app.app_context():
        source = db.session.scalar(select(Source).where(Source.slug == slug))
        rows = db.session.scalars(
            select(WebhookReceipt)
            .where(WebhookReceipt.source_id == source.id)
            .order_by(WebhookReceipt.id)
        ).all()
        return [(r.status, r.http_status, r.error) for r in rows]


def disable(app: Flask, slug: str) -> None:
    """Switch the source off."""
    with app.app_context():
        source = db.session.scalar(select(Source).where(Source.slug == slug))
        sources.set_enabled(source, False, Actor.system("test"))

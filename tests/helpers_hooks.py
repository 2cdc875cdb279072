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

# RECONSTRUCTED Rocket.Chat fileUploaded body from shared/reference/webhooks.md (synthetic).
ROCKETCHAT_FILE_UPLOADED = {
    "token": "<integration token>",
    "bot": False,
    "channel_id": "GENERAL",
    "channel_name": "general",
    "message_id": "CeswhhAKTQMsnEbc8",
    "timestamp": "2023-03-21T16:21:39.131Z",
    "user_id": "6410766605957d866e0fcf37",
    "user_name": "james",
    "text": "",
    "user": {"_id": "6410766605957d866e0fcf37", "username": "james"},
    "room": {"_id": "GENERAL", "t": "c", "name": "general"},
    "message": {
        "_id": "CeswhhAKTQMsnEbc8",
        "rid": "GENERAL",
        "msg": "Here is the file",
        "ts": "2023-03-21T16:21:39.131Z",
        "u": {"_id": "6410766605957d866e0fcf37", "username": "james", "name": "James"},
        "file": {"_id": "uredcLri4GdehDQnD", "name": "globe.png", "type": "image/png"},
        "files": [
            {"_id": "uredcLri4GdehDQnD", "name": "globe.png", "type": "image/png"},
            {"_id": "thumbId0000000000", "name": "globe.png", "type": "image/png"},
        ],
        "attachments": [
            {
                "title": "globe.png",
                "type": "file",
                "title_link": "/file-upload/uredcLri4GdehDQnD/globe.png",
                "title_link_download": True,
                "image_url": "/file-upload/thumbId0000000000/globe.png",
                "image_type": "image/png",
                "image_size": 562975,
            }
        ],
    },
}

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


def discourse_chat_message(
    message_id: int, uploads: list[dict[str, Any]], cooked: str = "<p>Look at these</p>"
) -> dict[str, Any]:
    """A RECONSTRUCTED ``chat_message`` webhook body: the chat plugin's payload (``message`` as
    ``Chat::MessageSerializer`` and ``channel`` as ``Chat::ChannelSerializer`` write them) under
    the event type's root key, as Discourse's EmitWebHookEvent wraps it."""
    return {
        "chat_message": {
            "message": {
                "id": message_id,
                "message": "Look at these",
                "cooked": cooked,
                "created_at": "2024-05-02T10:11:12.345Z",
                "excerpt": "Look at these",
                "chat_channel_id": 2,
                "thread_id": None,
                "available_flags": [],
                "user": {
                    "id": 7,
                    "username": "angus",
                    "name": "Angus",
                    "avatar_template": "/user_avatar/forum.example.org/angus/{size}/3_2.png",
                    "moderator": False,
                    "admin": False,
                    "staff": False,
                    "new_user": False,
                    "primary_group_name": None,
                },
                "uploads": uploads,
            },
            "channel": {
                "id": 2,
                "chatable_id": 5,
                "chatable_type": "Category",
                "chatable_url": "/c/general/5",
                "title": "General",
                "slug": "general",
                "status": "open",
                "memberships_count": 12,
                "threading_enabled": False,
                "last_message_sent_at": "2024-05-02T10:11:12.345Z",
            },
        }
    }


def discourse_upload(upload_id: int, url: str, filename: str, **fields: Any) -> dict[str, Any]:
    """One upload as ``UploadSerializer`` writes it (an image unless ``fields`` say otherwise)."""
    extension = filename.rsplit(".", 1)[-1]
    return {
        "id": upload_id,
        "url": url,
        "original_filename": filename,
        "filesize": 10240,
        "width": 690,
        "height": 388,
        "thumbnail_width": 690,
        "thumbnail_height": 388,
        "extension": extension,
        "short_url": f"upload://{upload_id}abc.{extension}",
        "short_path": f"/uploads/short-url/{upload_id}abc.{extension}",
        "retain_hours": None,
        "human_filesize": "10 KB",
        **fields,
    }

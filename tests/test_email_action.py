"""The email action against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.action import ActionRun
from app.models.plugin import PluginConfig
from app.services import actions_config, decisions
from app.services.audit import Actor
from tests.helpers_review import attach, make_item, make_source, make_user


class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"UNDO_SECONDS": 0, "PUBLIC_URL": "https://mod.example.org"}


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:  # a free port: the controller cannot be told to pick one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def configure_email(app: Flask, port: int, **extra: Any) -> None:
    with app.app_context():
        db.session.add(
            PluginConfig(
                name="email",
                kind="action",
                enabled=True,
                settings={
                    "host": "127.0.0.1",
                    "port": port,
                    "tls": "none",
                    "from_address": "modtools@example.org",
                    "to": "trust@example.org, lead@example.org",
                    **extra,
                },
            )
        )
        actions_config.save({("remove", "*"): ["email"]}, Actor.system("test"))


def remove(app: Flask, item_id: str) -> ActionRun:
    lead = make_user(app, "lead")
    with app.app_context():
        decisions.decide(item_id, attach(lead), "remove", Actor.system("test"), category="hate")
        run = db.session.scalar(select(ActionRun).where(ActionRun.item_id == item_id))
        db.session.expunge(run)
        return run


def test_the_email_names_the_item_and_never_carries_the_image(app: Flask, mailbox: Any):
    box, port = mailbox
    configure_email(app, port)
    item_id = make_item(app, make_source(app), with_media=True)
    run = remove(app, item_id)
    assert run.status == "succeeded", run.error
    assert len(box.messages) == 1
    envelope = box.messages[0]
    assert sorted(envelope.rcpt_tos) == ["lead@example.org", "trust@example.org"]
    message = message_from_bytes(envelope.content)
    assert not message.is_multipart(), "text only: no attachment"
    text = message.get_payload(decode=True).decode()
    assert item_id in text and "Decision: remove" in text and "Category: hate" in text
    assert f"https://mod.example.org/review/items/{item_id}" in text
    assert "image/" not in envelope.content.decode("latin-1").lower().split("content-type")[1][:20]
    assert len(envelope.content) < 4000  # no image bytes hiding in there
    assert run.external_ref == message["Message-ID"]


def test_an_unreachable_server_is_retried(app: Flask):
    configure_email(app, 1)  # nothing listens on port 1
    item_id = make_item(app, make_source(app))
    run = remove(app, item_id)
    assert run.status == "queued" and run.attempts == 1 and run.error


def test_missing_settings_fail_at_once(app: Flask):
    with app.app_context():
        actions_config.save({("remove", "*"): ["email"]}, Actor.system("test"))
    item_id = make_item(app, make_source(app))
    run = remove(app, item_id)
    assert run.status == "failed" and "host" in run.error

"""Mastodon admin webhooks: status and report events become one URL item per image."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models.job import Job
from app.services.webhooks.signatures import hex_hmac_sha256
from tests.helpers_hooks import NO_WORKER, body_bytes, items, make_hook_source, receipts

MEDIA_URL = "https://files.mastodon.social/media_attachments/files/022/345/792/original/57859aede991da25.jpeg"
# RECONSTRUCTED status.created from shared/reference/webhooks.md (synthetic).
STATUS_CREATED = {
    "event": "status.created",
    "created_at": "2019-12-08T03:48:34.100Z",
    "object": {
        "id": "103270115826048975",
        "created_at": "2019-12-08T03:48:33.901Z",
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": "https://mastodon.social/users/Gargron/statuses/103270115826048975",
        "url": "https://mastodon.social/@Gargron/103270115826048975",
        "edited_at": None,
        "content": "<p>look</p>",
        "account": {
            "id": "1",
            "username": "Gargron",
            "acct": "Gargron",
            "avatar": "https://files.mastodon.social/accounts/avatars/000/000/001/original/d96d39a0abb45b92.jpg",
        },
        "media_attachments": [
            {
                "id": "22345792",
                "type": "image",
                "url": MEDIA_URL,
                "preview_url": MEDIA_URL.replace("original", "small"),
                "remote_url": None,
                "description": "test media description",
            },
            {"id": "22345793", "type": "gifv", "url": "https://files.mastodon.social/x.mp4"},
        ],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
    },
}
# VERBATIM (abridged) report.created from mastodon/documentation, with one image added.
REPORT_CREATED = {
    "event": "report.created",
    "created_at": "2023-10-26T13:34:00.351Z",
    "object": {
        "id": "8437",
        "category": "violation",
        "comment": "",
        "forwarded": True,
        "created_at": "2023-10-26T13:34:00.348Z",
        "updated_at": "2023-10-26T13:34:00.348Z",
        "account": {"id": "123456789", "username": "bobisaburger"},
        "target_account": {"id": "123454321", "username": "cheeseperson"},
        "statuses": [
            {
                "id": "12345678987654321",
                "created_at": "2023-10-26T11:29:13.000Z",
                "url": "https://someothermastodonsite.com/@cheeseperson/111301083360371621",
                "edited_at": "2023-10-26T11:30:31.000Z",
                "content": "<p>Here is some content</p>",
                "account": {
                    "id": "123454321",
                    "username": "cheeseperson",
                    "acct": "cheeseperson@someothermastodonsite.com",
                },
                "media_attachments": [
                    {
                        "id": "900",
                        "type": "image",
                        "url": None,
                        "remote_url": "https://someothermastodonsite.com/m/1.png",
                    }
                ],
            }
        ],
        "rules": [{"id": "2", "text": "Don't be a meanie!"}],
    },
}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return NO_WORKER


def send(client: FlaskClient, slug: str, secret: str, payload: Any, signature: str | None = None):
    body = body_bytes(payload)
    return client.post(
        f"/hooks/{slug}",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature": signature or hex_hmac_sha256(secret, body)},
    )


def test_status_created_makes_image_items_only(app: Flask, client: FlaskClient) -> None:
    slug, secret = make_hook_source(app, "mastodon", {"base_url": "https://mastodon.social"})
    answer = send(client, slug, secret, STATUS_CREATED)
    assert answer.status_code == 200 and answer.json["items_created"] == 1
    (item,) = items(app, slug)
    assert (item.external_id, item.image_url) == ("mastodon:media:22345792", MEDIA_URL)
    assert (item.uploader_id, item.uploader_name) == ("1", "Gargron")
    assert item.context_url == "https://mastodon.social/@Gargron/103270115826048975"
    assert item.context_text == "look"
    assert item.item_metadata["description"] == "test media description"


def test_report_uses_remote_url_and_target_account(app, client) -> None:
    slug, secret = make_hook_source(app, "mastodon")
    assert send(client, slug, secret, REPORT_CREATED).json["items_created"] == 1
    (item,) = items(app, slug)
    assert item.image_url == "https://someothermastodonsite.com/m/1.png"
    assert item.uploader_name == "cheeseperson@someothermastodonsite.com"
    assert item.item_metadata["report_id"] == "8437"


def test_image_not_ready_without_token_fails_visibly_until_status_updated(app, client) -> None:
    slug, secret = make_hook_source(app, "mastodon")
    pending = copy.deepcopy(STATUS_CREATED)
    pending["object"]["media_attachments"][0]["url"] = None
    answer = send(client, slug, secret, pending)
    assert answer.status_code == 200 and answer.json["status"] == "not_ready"
    (item,) = items(app, slug)  # never dropped: an item with the reason, the status as context
    assert (item.external_id, item.status, item.image_url) == (
        "mastodon:media:22345792",
        "fetch_failed",
        None,
    )
    assert "no mastodon_access_token" in item.status_reason
    assert (item.uploader_name, item.context_text) == ("Gargron", "look")
    assert "mastodon_access_token" in receipts(app, slug)[-1][2]
    updated = copy.deepcopy(STATUS_CREATED)
    updated["event"] = "status.updated"
    updated["object"]["edited_at"] = "2019-12-08T03:50:00.000Z"
    assert send(client, slug, secret, updated).json["items_created"] == 0
    (again,) = items(app, slug)  # the same item, given its URL and queued for the worker
    assert (again.id, again.status, again.image_url) == (item.id, "received", MEDIA_URL)
    assert again.status_reason is None


def test_image_not_ready_waits_and_schedules_refetch_with_token(app, client) -> None:
    slug, secret = make_hook_source(
        app, "mastodon", {"base_url": "https://mastodon.social", "mastodon_access_token": "tok"}
    )
    pending = copy.deepcopy(STATUS_CREATED)
    pending["object"]["media_attachments"][0]["url"] = None
    send(client, slug, secret, pending)
    (item,) = items(app, slug)
    assert (item.status, item.image_url) == ("received", None)
    assert "asking Mastodon again" in item.status_reason
    with app.app_context():
        job = db.session.scalar(select(Job).where(Job.name == "mastodon_refetch_status"))
        assert job is not None and job.args[1] == "103270115826048975"
        assert job.next_attempt_at is not None  # a few seconds from now, not at once


def test_replay_bad_signature_and_other_events(app, client) -> None:
    slug, secret = make_hook_source(app, "mastodon")
    assert send(client, slug, secret, STATUS_CREATED).json["items_created"] == 1
    assert send(client, slug, secret, STATUS_CREATED).json["status"] == "duplicate"
    assert send(client, slug, secret, STATUS_CREATED, signature="sha256=00").status_code == 401
    account = {"event": "account.created", "object": {"id": "5"}}
    assert send(client, slug, secret, account).json["status"] == "ignored"
    assert [r[0] for r in receipts(app, slug)] == ["accepted", "duplicate", "refused", "ignored"]

"""The generic receiver: our item JSON signed with Standard Webhooks (reference library signer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.api_helpers import b64, jpeg
from tests.helpers_hooks import NO_WORKER, body_bytes, items, make_hook_source, receipts


@pytest.fixture
def app_config() -> dict[str, Any]:
    return NO_WORKER


def send(
    client,
    slug: str,
    secret: str,
    payload: Any,
    msg_id: str = "msg_1",
    when: datetime | None = None,
    signature: str | None = None,
):
    body = body_bytes(payload)
    when = when or datetime.now(tz=UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature or Webhook(secret).sign(msg_id, when, body.decode()),
    }
    return client.post(
        f"/hooks/{slug}", data=body, headers=headers, content_type="application/json"
    )


ITEM = {
    "external_id": "post-1",
    "image": {"url": "https://cdn.example.org/a.jpg"},
    "uploader": {"id": 7, "name": "ann"},
    "context": {
        "url": "https://example.org/p/1",
        "text": "hi",
        "created_at": "2024-05-01T12:00:00Z",
    },
}


def test_one_item_and_a_batch(app, client) -> None:
    slug, secret = make_hook_source(app, "generic")
    assert send(client, slug, secret, ITEM).json["items_created"] == 1
    batch = {"items": [ITEM, {"external_id": "post-2", "image": {"data": b64(jpeg(2))}}]}
    answer = send(client, slug, secret, batch, msg_id="msg_2")
    assert answer.status_code == 200 and answer.json["items_created"] == 1
    first, second = items(app, slug)
    assert (first.image_url, first.uploader_id, first.context_text) == (
        "https://cdn.example.org/a.jpg",
        "7",
        "hi",
    )
    assert second.sha256 is not None


def test_standard_envelope(app, client) -> None:
    slug, secret = make_hook_source(app, "generic")
    envelope = {"type": "item.created", "timestamp": "2024-05-01T12:00:00Z", "data": ITEM}
    assert send(client, slug, secret, envelope).json["items_created"] == 1


def test_replays_old_messages_and_forgeries(app, client) -> None:
    slug, secret = make_hook_source(app, "generic")
    assert send(client, slug, secret, ITEM).status_code == 200
    again = send(client, slug, secret, ITEM)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    old = datetime.now(tz=UTC) - timedelta(minutes=6)
    assert send(client, slug, secret, ITEM, msg_id="msg_3", when=old).status_code == 409
    forged = send(client, slug, secret, ITEM, msg_id="msg_4", signature="v1,AAAA")
    assert forged.status_code == 401
    missing = client.post(f"/hooks/{slug}", data=body_bytes(ITEM), content_type="application/json")
    assert missing.status_code == 401
    assert [r[1] for r in receipts(app, slug)] == [200, 200, 409, 401, 401]
    assert len(items(app, slug)) == 1


def test_bad_item_is_refused_with_its_field(app, client) -> None:
    slug, secret = make_hook_source(app, "generic")
    answer = send(client, slug, secret, {"items": [ITEM, {"external_id": "x"}]})
    assert answer.status_code == 400
    assert "items[1].image" in answer.json["error"]["message"]
    assert items(app, slug) == []


def test_oversized_body(app, client) -> None:
    slug, secret = make_hook_source(app, "generic")
    app.config["HOOK_MAX_BODY_BYTES"] = 200
    big = {**ITEM, "context": {"text": "x" * 500}}
    assert send(client, slug, secret, big).status_code == 413

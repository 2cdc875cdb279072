"""Misskey note webhooks: the plaintext secret header, and image files of the note."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.helpers_hooks import NO_WORKER, body_bytes, items, make_hook_source, receipts

# RECONSTRUCTED from shared/reference/webhooks.md (synthetic).
NOTE = {
    "server": "https://misskey.example",
    "hookId": "9xyzhook01",
    "userId": "dummy-user-1",
    "eventId": "0d3b2a77-1",
    "createdAt": 1723456789000,
    "type": "note",
    "body": {
        "note": {
            "id": "dummy-note-1",
            "createdAt": "2024-08-12T10:00:00.000Z",
            "text": "This is a dummy note for testing purposes.",
            "cw": None,
            "userId": "dummy-user-1",
            "user": {"id": "dummy-user-1", "username": "dummy1", "host": None, "avatarUrl": None},
            "files": [
                {
                    "id": "9abcfile01",
                    "name": "lenna.jpg",
                    "type": "image/jpeg",
                    "isSensitive": False,
                    "url": "https://misskey.example/files/key1",
                    "thumbnailUrl": "https://misskey.example/files/thumbnail-key1",
                },
                {
                    "id": "9abcfile02",
                    "name": "song.mp3",
                    "type": "audio/mpeg",
                    "url": "https://misskey.example/files/key2",
                },
                {"id": "9abcfile03", "name": "b.png", "type": "image/png", "url": "/files/key3"},
            ],
        }
    },
}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return NO_WORKER


def send(client, slug, secret, payload, header: str | None = "same"):
    headers = {"X-Misskey-Hook-Secret": secret if header == "same" else header} if header else {}
    return client.post(
        f"/hooks/{slug}", data=body_bytes(payload), content_type="application/json", headers=headers
    )


def test_note_images_become_items(app, client) -> None:
    slug, secret = make_hook_source(app, "misskey", {"base_url": "https://misskey.example"})
    answer = send(client, slug, secret, NOTE)
    assert answer.status_code == 200 and answer.json["items_created"] == 2
    first, second = items(app, slug)
    assert (first.external_id, first.image_url) == (
        "misskey:file:9abcfile01",
        "https://misskey.example/files/key1",
    )
    assert second.image_url == "https://misskey.example/files/key3"
    assert (first.uploader_id, first.uploader_name) == ("dummy-user-1", "dummy1")
    assert first.context_url == "https://misskey.example/notes/dummy-note-1"
    assert first.context_text == "This is a dummy note for testing purposes."


def test_test_button_body_without_note_wrapper(app, client) -> None:
    slug, secret = make_hook_source(app, "misskey")
    payload = copy.deepcopy(NOTE)
    payload["body"] = payload["body"]["note"]
    assert send(client, slug, secret, payload).json["items_created"] == 2


def test_wrong_missing_secret_and_replay(app, client) -> None:
    slug, secret = make_hook_source(app, "misskey")
    assert send(client, slug, secret, NOTE, header="wrong").status_code == 401
    assert send(client, slug, secret, NOTE, header=None).status_code == 401
    assert send(client, slug, secret, NOTE).json["items_created"] == 2
    assert send(client, slug, secret, NOTE).json["status"] == "duplicate"
    assert [r[0] for r in receipts(app, slug)] == ["refused", "refused", "accepted", "duplicate"]


def test_follow_event_is_ignored(app, client) -> None:
    slug, secret = make_hook_source(app, "misskey")
    answer = send(client, slug, secret, {"type": "followed", "eventId": "e2", "body": {"user": {}}})
    assert answer.status_code == 200 and answer.json["status"] == "ignored"

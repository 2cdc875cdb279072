"""Discourse webhooks: signed post events become one URL item per posted image."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services.webhooks.signatures import hex_hmac_sha256
from tests.helpers_hooks import (
    NO_WORKER,
    body_bytes,
    disable,
    discourse_chat_message,
    discourse_upload,
    items,
    make_hook_source,
    receipts,
)

BASE = "https://forum.example.org"
SHA_A = "e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98"
SHA_B = "1234567890abcdef1234567890abcdef12345678"
SHA_C = "0fedcba9876543210fedcba9876543210fedcba9"
# Discourse's own spec fixture, VERBATIM in shared/reference/webhooks.md: a reply with no image.
WP_DISCOURSE_POST = {
    "post": {
        "id": 39,
        "name": None,
        "username": "angus",
        "avatar_template": "/user_avatar/localhost/angus/{size}/3_2.png",
        "created_at": "2021-11-10T04:13:36.854Z",
        "cooked": "<p>This is my reply to a post</p>",
        "post_number": 2,
        "post_type": 1,
        "updated_at": "2021-11-10T04:13:36.854Z",
        "topic_id": 15,
        "topic_slug": "this-is-a-topic-that-can-be-voted-on",
        "topic_title": "This is a topic that can be voted on",
        "category_id": 5,
        "raw": "This is my reply to a post",
        "user_id": 1,
        "version": 1,
    }
}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return NO_WORKER


def post(post_id: int, cooked: str, **fields: Any) -> dict[str, Any]:
    """A RECONSTRUCTED post payload (fields from the reference's fixture)."""
    return {
        "post": {
            "id": post_id,
            "username": "angus",
            "user_id": 7,
            "post_number": 3,
            "created_at": "2021-11-10T04:20:00.000Z",
            "cooked": cooked,
            "topic_id": 15,
            "topic_slug": "cats",
            "topic_title": "Cats",
            **fields,
        }
    }


def send(
    client: FlaskClient,
    slug: str,
    secret: str,
    payload: Any,
    event: str = "post_created",
    event_id: str = "158765",
    signature: str | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else body_bytes(payload)
    headers = {
        "X-Discourse-Event": event,
        "X-Discourse-Event-Type": "chat_message" if event.startswith("chat_") else "post",
        "X-Discourse-Event-Id": event_id,
        "X-Discourse-Instance": "https://evil.example",
        "X-Discourse-Event-Signature": signature or hex_hmac_sha256(secret, body),
    }
    return client.post(
        f"/hooks/{slug}", data=body, headers=headers, content_type="application/json"
    )


@pytest.fixture
def forum(app: Flask) -> tuple[str, str]:
    return make_hook_source(app, "discourse", {"base_url": BASE})


def test_post_with_relative_protocol_relative_and_lightbox_images(app, client, forum) -> None:
    slug, secret = forum
    cooked = (
        '<p>Look <img src="https://local.cdn.com/images/emoji/twitter/+1.png?v=12" title=":+1:" '
        'class="emoji" alt=":+1:"> at these</p>'
        f'<p><img src="/uploads/default/original/1X/{SHA_A}.png" alt="cat.png"></p>'
        '<p><div class="lightbox-wrapper"><a class="lightbox" '
        f'href="//forum.example.org/uploads/default/original/2X/{SHA_B}.jpeg" '
        f'data-download-href="//forum.example.org/uploads/default/{SHA_B}"><img '
        f'src="//forum.example.org/uploads/default/optimized/2X/{SHA_B}_2_690x388.jpeg" '
        'alt="RED"><div class="meta"><svg class="fa"><use href="#far-image"></use></svg>'
        "</div></a></div></p>"
        '<aside class="quote"><div class="title"><img class="avatar" '
        'src="/user_avatar/forum/bob/24/1_2.png"> bob:</div></aside>'
    )
    answer = send(client, slug, secret, post(40, cooked))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["items_created"] == 2
    found = items(app, slug)
    assert {i.external_id: i.image_url for i in found} == {
        f"discourse:post:40:{SHA_A}": f"{BASE}/uploads/default/original/1X/{SHA_A}.png",
        f"discourse:post:40:{SHA_B}": f"https://forum.example.org/uploads/default/original/2X/{SHA_B}.jpeg",
    }
    item = found[0]
    assert (item.uploader_id, item.uploader_name) == ("7", "angus")
    assert item.context_url == f"{BASE}/t/cats/15/3"
    assert item.context_text == "Cats\n\nLook at these\nbob:"
    assert item.context_created_at.isoformat().startswith("2021-11-10T04:20:00")
    assert item.item_metadata["post_id"] == 40
    assert item.status == "received"


def test_post_without_image_is_taken_and_makes_nothing(app, client, forum) -> None:
    slug, secret = forum
    answer = send(client, slug, secret, WP_DISCOURSE_POST)
    assert answer.status_code == 200
    assert answer.json["status"] == "ignored"
    assert items(app, slug) == []


def test_edit_adding_an_image_creates_only_the_new_one(app, client, forum) -> None:
    slug, secret = forum
    first = f'<p><img src="/uploads/default/original/1X/{SHA_A}.png"></p>'
    send(client, slug, secret, post(41, first), event_id="1")
    before = {i.external_id: i.id for i in items(app, slug)}
    edited = (
        f'<p><img src="//forum.example.org/uploads/default/original/1X/{SHA_B}.png"></p>' + first
    )
    answer = send(client, slug, secret, post(41, edited), event="post_edited", event_id="2")
    assert answer.json["items_created"] == 1
    after = {i.external_id: i.id for i in items(app, slug)}
    assert len(after) == 2 and all(after[key] == value for key, value in before.items())


def test_secure_upload_with_empty_src_uses_short_url(app, client, forum) -> None:
    slug, secret = forum
    cooked = (
        '<p><img src="/images/transparent.png" alt="upload" '
        'data-orig-src="upload://xyKj1g5mJy4zbB1fLRxTRBXpZhp.png"></p>'
    )
    send(client, slug, secret, post(42, cooked))
    (item,) = items(app, slug)
    assert item.image_url == f"{BASE}/uploads/short-url/xyKj1g5mJy4zbB1fLRxTRBXpZhp.png"


def test_redelivery_with_same_event_id_is_ignored(app, client, forum) -> None:
    slug, secret = forum
    payload = post(43, f'<p><img src="/uploads/default/original/1X/{SHA_A}.png"></p>')
    assert send(client, slug, secret, payload, event_id="77").json["items_created"] == 1
    again = send(client, slug, secret, payload, event_id="77")
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert len(items(app, slug)) == 1
    assert [r[0] for r in receipts(app, slug)] == ["accepted", "duplicate"]


def test_bad_and_missing_signatures_are_refused_and_logged(app, client, forum, caplog) -> None:
    slug, secret = forum
    payload = post(44, f'<p><img src="/uploads/default/original/1X/{SHA_A}.png"></p>')
    with caplog.at_level(logging.WARNING, logger="app.hooks"):
        wrong = send(client, slug, secret, payload, signature=hex_hmac_sha256("not-it", b"{}"))
        body = body_bytes(payload)
        missing = client.post(
            f"/hooks/{slug}",
            data=body,
            content_type="application/json",
            headers={"X-Discourse-Event": "post_created"},
        )
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert items(app, slug) == []
    assert [r[:2] for r in receipts(app, slug)] == [("refused", 401), ("refused", 401)]
    assert secret not in caplog.text and "refused" in caplog.text


def test_oversized_body_is_refused(app, client, forum) -> None:
    slug, secret = forum
    app.config["HOOK_MAX_BODY_BYTES"] = 1000
    answer = send(client, slug, secret, post(45, "<p>" + "x" * 2000 + "</p>"))
    assert answer.status_code == 413
    assert receipts(app, slug)[-1][:2] == ("refused", 413)


def test_unknown_slug_wrong_kind_and_disabled_source(app, client, forum) -> None:
    slug, secret = forum
    assert send(client, "no-such-source", secret, WP_DISCOURSE_POST).status_code == 404
    manual = client.post("/hooks/manual-uploads", data=b"{}")
    assert manual.status_code == 404
    disable(app, slug)
    assert send(client, slug, secret, WP_DISCOURSE_POST).status_code == 403


def test_ping_is_answered_and_logged(app, client, forum) -> None:
    slug, secret = forum
    answer = send(client, slug, secret, b'{"ping":"OK"}', event="ping")
    assert answer.status_code == 200 and answer.json["status"] == "ignored"
    assert receipts(app, slug)[-1][0] == "ignored"


def test_chat_message_with_several_images_skips_files_and_emoji(app, client, forum) -> None:
    slug, secret = forum
    uploads = [
        discourse_upload(31, f"/uploads/default/original/1X/{SHA_A}.png", "cat.png"),
        discourse_upload(
            32, f"//forum.example.org/uploads/default/original/2X/{SHA_B}.jpeg", "dog.jpeg"
        ),
        discourse_upload(
            33, "/uploads/default/original/1X/aaaa.pdf", "rules.pdf", width=None, height=None
        ),
    ]
    cooked = (
        '<p>Look at these <img src="/images/emoji/twitter/cat.png?v=12" class="emoji" '
        f'alt=":cat:"></p><p><img src="/uploads/default/original/3X/{SHA_C}.gif"></p>'
    )
    payload = discourse_chat_message(801, uploads, cooked)
    answer = send(client, slug, secret, payload, event="chat_message_created")
    assert answer.status_code == 200 and answer.json["items_created"] == 3
    found = {i.external_id: i for i in items(app, slug)}
    assert {key: item.image_url for key, item in found.items()} == {
        f"discourse:chat:801:{SHA_A}": f"{BASE}/uploads/default/original/1X/{SHA_A}.png",
        f"discourse:chat:801:{SHA_B}": f"https://forum.example.org/uploads/default/original/2X/{SHA_B}.jpeg",
        f"discourse:chat:801:{SHA_C}": f"{BASE}/uploads/default/original/3X/{SHA_C}.gif",
    }
    item = found[f"discourse:chat:801:{SHA_A}"]
    assert (item.uploader_id, item.uploader_name) == ("7", "angus")
    assert item.context_url == f"{BASE}/chat/c/general/2/801"
    assert item.context_text == "General\n\nLook at these"
    assert item.context_created_at.isoformat().startswith("2024-05-02T10:11:12")
    assert item.item_metadata["chat_message_id"] == 801
    assert item.item_metadata["chat_channel_id"] == 2
    assert item.item_metadata["filename"] == "cat.png"


def test_chat_message_without_image_and_other_chat_events_make_nothing(app, client, forum) -> None:
    slug, secret = forum
    plain = discourse_chat_message(802, [], "<p>Hello <strong>all</strong></p>")
    answer = send(client, slug, secret, plain, event="chat_message_created", event_id="1")
    assert answer.status_code == 200 and answer.json["status"] == "ignored"
    trashed = discourse_chat_message(
        803, [discourse_upload(31, f"/uploads/default/original/1X/{SHA_A}.png", "cat.png")]
    )
    answer = send(client, slug, secret, trashed, event="chat_message_trashed", event_id="2")
    assert answer.json["status"] == "ignored"
    assert items(app, slug) == []
    assert [r[2] for r in receipts(app, slug)] == [
        "The chat message has no images.",
        "The chat_message_trashed event carries no post or chat message; nothing to check.",
    ]


def test_chat_edit_adding_an_image_creates_only_the_new_one(app, client, forum) -> None:
    slug, secret = forum
    first = discourse_upload(31, f"/uploads/default/original/1X/{SHA_A}.png", "cat.png")
    send(client, slug, secret, discourse_chat_message(804, [first]), "chat_message_created", "1")
    before = {i.external_id: i.id for i in items(app, slug)}
    second = discourse_upload(34, f"/uploads/default/original/1X/{SHA_B}.webp", "b.webp")
    edited = discourse_chat_message(804, [first, second])
    answer = send(client, slug, secret, edited, event="chat_message_edited", event_id="2")
    assert answer.json["items_created"] == 1
    after = {i.external_id: i.id for i in items(app, slug)}
    assert len(after) == 2 and all(after[key] == value for key, value in before.items())


def test_source_page_shows_the_url_to_paste(app, client, forum) -> None:
    from tests.helpers_sources import login_as, make_user

    slug, secret = forum
    login_as(client, make_user(app))
    html = client.get(f"/admin/sources/{slug}").get_data(as_text=True)
    assert "Set up Discourse" in html and f"http://localhost/hooks/{slug}" in html
    assert secret not in html

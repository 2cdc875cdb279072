"""End to end, for every kind of platform source: a signed webhook from the platform arrives, its
images are fetched from the platform and appear in the review queue with their context and
uploader, a moderator removes one in the dashboard, and the action lands on the platform's API.

Real pieces throughout (``helpers_e2e``): the receiver, the worker's jobs running inline, the scan
pipeline, the review routes with CSRF, the action plugins; each platform is its fake on loopback.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services.webhooks import mastodon as mastodon_hooks
from tests.fakes import discourse_api, lemmy_api, mastodon_api, misskey_api, rocketchat_api, running
from tests.helpers_e2e import (
    E2E_CONFIG,
    action_runs,
    connect,
    deliver,
    log_in_moderator,
    only_item,
    remove_in_dashboard,
    review_page,
)
from tests.helpers_hooks import (
    ROCKETCHAT_FILE_UPLOADED,
    discourse_chat_message,
    discourse_upload,
    items,
    receipts,
)
from tests.helpers_sources import png
from tests.pipeline_helpers import queued_jobs, retry_until_settled

SHA_A = "e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98"
SHA_B = "1234567890abcdef1234567890abcdef12345678"
DISCOURSE_KEYS = {"discourse_api_key": discourse_api.API_KEY, "discourse_api_username": "system"}
MASTODON_KEYS = {"mastodon_access_token": mastodon_api.TOKEN}
LEMMY_KEYS = {"lemmy_jwt": lemmy_api.JWT, "pictrs_api_key": lemmy_api.PICTRS_KEY}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return E2E_CONFIG


def in_review_queue(client: FlaskClient, item_id: str) -> bool:
    """Whether the moderator's review queue shows the item."""
    return f'data-item-id="{item_id}"' in client.get("/review/").get_data(as_text=True)


def assert_ready_for_review(client: FlaskClient, item: Any, *shown: str) -> None:
    """The item waits in the queue, and its page shows ``shown`` (context, uploader...)."""
    assert item.status == "queued", item.status_reason
    assert item.sha256 and item.has_derivatives  # the worker fetched the image
    assert in_review_queue(client, item.id)
    page = review_page(client, item.id)
    for text in shown:
        assert text in page, text


# --- Discourse ------------------------------------------------------------------------------------


def test_discourse_post_image_removed_deletes_the_post(app: Flask, client: FlaskClient) -> None:
    upload = f"/uploads/default/original/1X/{SHA_A}.png"
    with running(discourse_api.FakeDiscourse()) as forum:
        forum.uploads[upload] = png(3)
        slug, secret = connect(
            app, "discourse", forum.url, DISCOURSE_KEYS, ["discourse_delete_post"]
        )
        post = {
            "id": 40,
            "user_id": 7,
            "username": "angus",
            "post_number": 3,
            "topic_id": 15,
            "topic_slug": "cats",
            "topic_title": "Cats of the forum",
            "cooked": f'<p>Look</p><p><img src="{upload}" alt="cat.png"></p>',
        }
        headers = {"X-Discourse-Event": "post_created", "X-Discourse-Event-Id": "158765"}
        deliver(client, "discourse", slug, secret, {"post": post}, **headers)
        log_in_moderator(app, client)
        item = only_item(app, slug)
        assert_ready_for_review(client, item, "angus", f"{forum.url}/t/cats/15/3", "Cats of the")
        remove_in_dashboard(client, item.id)
    assert action_runs(app, item.id) == [("discourse_delete_post", "succeeded", "Deleted post 40.")]
    deletes = [r for r in forum.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == ["/posts/40.json"]
    assert deletes[0].headers["Api-Key"] == discourse_api.API_KEY
    assert forum.deleted == [40]


def test_discourse_chat_images_removed_delete_the_message(app: Flask, client: FlaskClient) -> None:
    first, second = (f"/uploads/default/original/1X/{sha}.png" for sha in (SHA_A, SHA_B))
    with running(discourse_api.FakeDiscourse()) as forum:
        forum.uploads.update({first: png(4), second: png(5)})
        slug, secret = connect(
            app, "discourse", forum.url, DISCOURSE_KEYS, ["discourse_delete_chat_message"]
        )
        uploads = [
            discourse_upload(31, first, "cat.png"),
            discourse_upload(32, second, "dog.png"),
            discourse_upload(33, "/uploads/default/original/1X/a.zip", "cats.zip", width=None),
        ]
        headers = {"X-Discourse-Event": "chat_message_created", "X-Discourse-Event-Id": "9"}
        payload = discourse_chat_message(801, uploads)
        deliver(client, "discourse", slug, secret, payload, **headers)
        log_in_moderator(app, client)
        found = items(app, slug)
        assert len(found) == 2  # two images, the zip skipped
        for item in found:
            assert_ready_for_review(client, item, "angus", f"{forum.url}/chat/c/general/2/801")
        remove_in_dashboard(client, found[0].id)
    assert action_runs(app, found[0].id) == [
        ("discourse_delete_chat_message", "succeeded", "Deleted chat message 801.")
    ]
    assert forum.trashed_chat == [(2, 801)]


# --- Mastodon -------------------------------------------------------------------------------------


def mastodon_status(server: Any, status_id: str, media_path: str) -> dict[str, Any]:
    """A RECONSTRUCTED status (webhooks.md §2c) by account 108, one image at ``media_path``."""
    return {
        "id": status_id,
        "created_at": "2019-12-08T03:48:33.901Z",
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "uri": f"{server.url}/users/gargron/statuses/{status_id}",
        "url": f"{server.url}/@gargron/{status_id}",
        "edited_at": None,
        "content": "<p>look at this</p>",
        "account": {"id": "108", "username": "gargron", "acct": "gargron"},
        "media_attachments": [
            {
                "id": f"9{status_id}",
                "type": "image",
                "url": f"{server.url}{media_path}",
                "preview_url": f"{server.url}{media_path}?small",
                "remote_url": None,
                "description": "a cat",
            }
        ],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def status_event(status: dict[str, Any], media_ready: bool = True) -> dict[str, Any]:
    """The ``status.created`` webhook of ``status`` (its image URL null while processing)."""
    status = copy.deepcopy(status)
    if not media_ready:
        status["media_attachments"][0]["url"] = None
    return {"event": "status.created", "created_at": "2019-12-08T03:48:34.100Z", "object": status}


def test_mastodon_status_image_removed_acts_on_the_account(app, client) -> None:
    with running(mastodon_api.FakeMastodon()) as server:
        server.media["/system/cat.png"] = png(6)
        slug, secret = connect(
            app, "mastodon", server.url, MASTODON_KEYS, ["mastodon_account_action"]
        )
        deliver(
            client,
            "mastodon",
            slug,
            secret,
            status_event(mastodon_status(server, "1101", "/system/cat.png")),
        )
        log_in_moderator(app, client)
        item = only_item(app, slug)
        assert_ready_for_review(client, item, "gargron", f"{server.url}/@gargron/1101", "look at")
        remove_in_dashboard(client, item.id)
    ((action, status, summary),) = action_runs(app, item.id)
    assert (action, status) == ("mastodon_account_action", "succeeded")
    assert summary == "Account 108: sensitive (report 1)."
    assert server.reports["1"]["status_ids[]"] == ["1101"]
    account, form, key = server.actions[0]
    assert (account, form["type"], form["report_id"]) == ("108", "sensitive", "1") and key


def test_mastodon_image_still_processing_is_fetched_when_ready(app, client) -> None:
    with running(mastodon_api.FakeMastodon()) as server:
        server.media["/system/late.png"] = png(7)
        status = mastodon_status(server, "1102", "/system/late.png")
        server.statuses["1102"] = status
        server.processing_reads["1102"] = 1  # the first re-fetch still finds it processing
        slug, secret = connect(
            app, "mastodon", server.url, MASTODON_KEYS, ["mastodon_account_action"]
        )
        answer = deliver(client, "mastodon", slug, secret, status_event(status, False))
        assert answer.json["status"] == "not_ready"
        waiting = only_item(app, slug)  # visible at once, waiting for its URL
        assert (waiting.status, waiting.image_url) == ("received", None)
        assert [job.args[1] for job in queued_jobs(app, mastodon_hooks.REFETCH_JOB)] == ["1102"]
        retry_until_settled(app, mastodon_hooks.REFETCH_JOB)
        assert server.status_reads["1102"] == 2
        reads = [r for r in server.requests if r.path == "/api/v1/statuses/1102"]
        assert {r.headers["Authorization"] for r in reads} == {f"Bearer {mastodon_api.TOKEN}"}
        log_in_moderator(app, client)
        item = only_item(app, slug)
        assert item.id == waiting.id and item.image_url == f"{server.url}/system/late.png"
        assert_ready_for_review(client, item, "gargron", f"{server.url}/@gargron/1102")
        remove_in_dashboard(client, item.id)
    assert [run[:2] for run in action_runs(app, item.id)] == [
        ("mastodon_account_action", "succeeded")
    ]
    assert server.actions[0][0] == "108"


def test_mastodon_image_never_processed_ends_failed_with_the_reason(app, client) -> None:
    with running(mastodon_api.FakeMastodon()) as server:
        status = mastodon_status(server, "1103", "/system/never.png")
        server.statuses["1103"] = status
        server.processing_reads["1103"] = None  # Mastodon never finishes
        slug, secret = connect(app, "mastodon", server.url, MASTODON_KEYS, [])
        deliver(client, "mastodon", slug, secret, status_event(status, False))
        retry_until_settled(app, mastodon_hooks.REFETCH_JOB)
    assert server.status_reads["1103"] == mastodon_hooks.REFETCH_ATTEMPTS
    assert queued_jobs(app, mastodon_hooks.REFETCH_JOB) == []
    item = only_item(app, slug)
    assert (item.status, item.image_url) == ("fetch_failed", None)
    reason = f"after {mastodon_hooks.REFETCH_ATTEMPTS} tries"
    assert reason in item.status_reason
    log_in_moderator(app, client)
    assert reason in review_page(client, item.id)  # the page says why there is no image
    assert f'data-item-id="{item.id}"' in client.get("/review/?queue=all").get_data(as_text=True)


def test_mastodon_deleted_status_ends_failed_at_once(app, client) -> None:
    with running(mastodon_api.FakeMastodon()) as server:
        status = mastodon_status(server, "1104", "/system/gone.png")  # not on the server
        slug, secret = connect(app, "mastodon", server.url, MASTODON_KEYS, [])
        deliver(client, "mastodon", slug, secret, status_event(status, False))
        retry_until_settled(app, mastodon_hooks.REFETCH_JOB)
    assert len([r for r in server.requests if r.path == "/api/v1/statuses/1104"]) == 1
    item = only_item(app, slug)
    assert item.status == "fetch_failed" and "404" in item.status_reason
    assert receipts(app, slug)[-1][0] == "not_ready"


# --- pict-rs (Lemmy) ------------------------------------------------------------------------------


def test_pictrs_upload_is_reviewed_but_cannot_be_purged_without_an_alias(app, client) -> None:
    with running(lemmy_api.FakeLemmy()) as lemmy:
        slug, token = connect(
            app, "pictrs", lemmy.url, LEMMY_KEYS, ["pictrs_purge"], enqueue_accepted=True
        )
        # As pict-rs sends it: the processed bytes and their type, no credentials, no ids.
        answer = client.post(f"/hooks/{slug}/{token}", data=png(8), content_type="image/png")
        assert answer.status_code == 200 and answer.json["verdict"] == "allow"
        log_in_moderator(app, client)
        item = only_item(app, slug)
        assert_ready_for_review(client, item, item.external_id)
        remove_in_dashboard(client, item.id)
    ((action, status, error),) = action_runs(app, item.id)
    assert (action, status) == ("pictrs_purge", "failed")
    assert "which pict-rs file" in error  # pict-rs names no alias before it stores the file
    assert lemmy.purged == [] and lemmy.requests == []


# --- Rocket.Chat ----------------------------------------------------------------------------------


def test_rocketchat_file_removed_deletes_the_message(app: Flask, client: FlaskClient) -> None:
    original = "/file-upload/uredcLri4GdehDQnD/globe.png"
    with running(rocketchat_api.FakeRocketChat()) as chat:
        chat.files[original] = png(9)
        chat.messages.add(("GENERAL", "CeswhhAKTQMsnEbc8"))
        keys = {
            "rocketchat_user_id": rocketchat_api.USER_ID,
            "rocketchat_auth_token": rocketchat_api.AUTH_TOKEN,
        }
        slug, secret = connect(app, "rocketchat", chat.url, keys, ["rocketchat_delete_message"])
        # The reference's fileUploaded body; deliver puts the integration's token in it.
        answer = deliver(client, "rocketchat", slug, secret, ROCKETCHAT_FILE_UPLOADED)
        assert answer.json == {}  # anything else would be posted into the room
        log_in_moderator(app, client)
        item = only_item(app, slug)
        context_url = f"{chat.url}/channel/general?msg=CeswhhAKTQMsnEbc8"
        assert_ready_for_review(client, item, "james", context_url, "Here is the file")
        remove_in_dashboard(client, item.id)
    assert action_runs(app, item.id) == [
        ("rocketchat_delete_message", "succeeded", "Deleted message CeswhhAKTQMsnEbc8.")
    ]
    assert chat.deleted == [("GENERAL", "CeswhhAKTQMsnEbc8")]
    fetched = [r for r in chat.requests if r.path == original]
    assert fetched and fetched[0].headers["X-Auth-Token"] == rocketchat_api.AUTH_TOKEN


# --- Misskey --------------------------------------------------------------------------------------


def test_misskey_note_image_removed_deletes_the_note(app: Flask, client: FlaskClient) -> None:
    with running(misskey_api.FakeMisskey()) as server:
        server.files["/files/lenna-key"] = png(10)
        server.notes.add("dummy-note-1")
        keys = {"misskey_token": misskey_api.TOKEN}
        slug, secret = connect(app, "misskey", server.url, keys, ["misskey_delete_note"])
        # RECONSTRUCTED note webhook (webhooks.md §6c), its file on the fake server.
        note = {
            "id": "dummy-note-1",
            "createdAt": "2024-08-12T10:00:00.000Z",
            "text": "This is a dummy note for testing purposes.",
            "cw": None,
            "userId": "dummy-user-1",
            "user": {"id": "dummy-user-1", "name": "DummyUser1", "username": "dummy1"},
            "visibility": "public",
            "fileIds": ["9abcfile01"],
            "files": [
                {
                    "id": "9abcfile01",
                    "name": "lenna.jpg",
                    "type": "image/png",
                    "isSensitive": False,
                    "url": f"{server.url}/files/lenna-key",
                    "thumbnailUrl": f"{server.url}/files/thumbnail-lenna-key",
                }
            ],
        }
        payload = {
            "server": server.url,
            "hookId": "9xyzhook01",
            "userId": "dummy-user-1",
            "eventId": "0d3b2a77-1",
            "createdAt": 1723456789000,
            "type": "note",
            "body": {"note": note},
        }
        deliver(client, "misskey", slug, secret, payload)
        log_in_moderator(app, client)
        item = only_item(app, slug)
        assert_ready_for_review(
            client, item, "dummy1", f"{server.url}/notes/dummy-note-1", "dummy note for testing"
        )
        remove_in_dashboard(client, item.id)
    assert action_runs(app, item.id) == [
        ("misskey_delete_note", "succeeded", "Deleted note dummy-note-1.")
    ]
    assert server.deleted == ["dummy-note-1"]


# --- Generic (Standard Webhooks), here a Lemmy bridge ---------------------------------------------


def test_generic_item_removed_removes_the_lemmy_post_and_purges(app, client) -> None:
    with running(lemmy_api.FakeLemmy()) as lemmy:
        lemmy.images["/pictrs/image/f3c1a2.webp"] = png(11)
        removal = ["lemmy_remove_post", "pictrs_purge"]
        slug, secret = connect(app, "generic", lemmy.url, LEMMY_KEYS, removal)
        # Our item JSON in a Standard Webhooks envelope, as a bridge for Lemmy would send it.
        payload = {
            "type": "item.created",
            "timestamp": "2024-05-01T12:00:00Z",
            "data": {
                "external_id": "lemmy:post:501",
                "image": {"url": f"{lemmy.url}/pictrs/image/f3c1a2.webp"},
                "uploader": {"id": "33", "name": "lemmy_user"},
                "context": {"url": f"{lemmy.url}/post/501", "text": "A post with a picture"},
                "metadata": {"post_id": 501, "person_id": 33, "pictrs_alias": "f3c1a2.webp"},
            },
        }
        deliver(client, "generic", slug, secret, payload, webhook_id="msg_lemmy_501")
        log_in_moderator(app, client)
        item = only_item(app, slug)
        assert_ready_for_review(
            client, item, "lemmy_user", f"{lemmy.url}/post/501", "A post with a picture"
        )
        remove_in_dashboard(client, item.id)
    assert [run[:2] for run in action_runs(app, item.id)] == [
        ("lemmy_remove_post", "succeeded"),
        ("pictrs_purge", "succeeded"),
    ]
    assert lemmy.removed[0]["post_id"] == 501 and lemmy.purged == ["f3c1a2.webp"]

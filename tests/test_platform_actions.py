"""Actions on the platform: each against a fake of its API on loopback, success and failure."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask import Flask

from app.extensions import db
from app.models.action import ActionRun
from app.services import (
    actions,
    plugin_settings,
    source_secrets,
    sources,
)
from app.services.audit import Actor
from tests.fakes import discourse_api, lemmy_api, mastodon_api, misskey_api, rocketchat_api, running
from tests.helpers_review import make_item

ACTOR = Actor.system("test")
_keys = itertools.count(1)


def platform_item(
    app: Flask,
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, str],
    metadata: dict[str, Any],
    uploader_id: str | None = None,
) -> str:
    """An item of a new ``kind`` source, its credentials set the way the admin form sets them."""
    with app.app_context():
        source, _, _ = sources.create_source("Forum", kind, ACTOR, settings=settings)
        source_secrets.save_secrets(source, credentials, set(), ACTOR)
        source_id = source.id
    return make_item(app, source_id, item_metadata=metadata, uploader_id=uploader_id)


def act(app: Flask, item_id: str, action: str, settings: dict[str, str] | None = None) -> ActionRun:
    """One attempt of ``action`` on the item, as the worker makes it; the run afterwards."""
    with app.app_context():
        if settings:
            plugin_settings.save_settings(action, settings, set(), ACTOR)
        run = actions.create_run(item_id, action, f"test:{next(_keys)}")
        assert run is not None
        db.session.commit()
        actions.run_action(run.id)
        run = db.session.get(ActionRun, run.id, populate_existing=True)
        db.session.expunge(run)
        return run


def again(app: Flask, run: ActionRun) -> ActionRun:
    """The next attempt of a run that is waiting for its retry."""
    with app.app_context():
        actions.run_action(run.id)
        run = db.session.get(ActionRun, run.id, populate_existing=True)
        db.session.expunge(run)
        return run


DISCOURSE_KEYS = {"discourse_api_key": discourse_api.API_KEY, "discourse_api_username": "system"}


def discourse_item(
    app: Flask, url: str, metadata: dict[str, Any] | None = None, **credentials: str
) -> str:
    keys = credentials or DISCOURSE_KEYS
    return platform_item(
        app, "discourse", {"base_url": url}, keys, metadata or {"post_id": 40}, "7"
    )


CHAT = {"chat_message_id": 801, "chat_channel_id": 2, "platform": "discourse"}


def test_discourse_deletes_the_post_and_a_second_delete_counts_as_done(app: Flask):
    with running(discourse_api.FakeDiscourse()) as forum:
        item_id = discourse_item(app, forum.url)
        first = act(app, item_id, "discourse_delete_post")
        second = act(app, item_id, "discourse_delete_post")
    assert (first.status, first.response_summary) == ("succeeded", "Deleted post 40.")
    assert forum.deleted == [40]
    assert second.status == "succeeded" and "Already gone" in (second.response_summary or "")
    assert forum.requests[0].headers["Api-Username"] == "system"


def test_discourse_hides_silences_and_suspends(app: Flask):
    with running(discourse_api.FakeDiscourse()) as forum:
        item_id = discourse_item(app, forum.url)
        hidden = act(app, item_id, "discourse_hide_post", {"flag_type": "8"})
        silenced = act(app, item_id, "discourse_silence_user", {"days": "7", "delete_post": "1"})
        suspended = act(app, item_id, "discourse_suspend_user", {"delete_post": ""})
    assert [hidden.status, silenced.status, suspended.status] == ["succeeded"] * 3
    assert forum.hidden == [(40, 8)]
    (verb, user, body), (verb2, _, body2) = forum.user_actions
    assert (verb, user, body["post_id"], body["post_action"]) == ("silence", 7, 40, "delete")
    assert verb2 == "suspend" and "post_id" not in body2 and body2["suspend_until"]


def test_discourse_deletes_a_chat_message_and_a_gone_one_counts_as_done(app: Flask):
    with running(discourse_api.FakeDiscourse()) as forum:
        item_id = discourse_item(app, forum.url, CHAT)
        first = act(app, item_id, "discourse_delete_chat_message")
        # "delete the post" on a chat image deletes its message too: one mapping serves both
        second = act(app, item_id, "discourse_delete_post")
    assert (first.status, first.response_summary) == ("succeeded", "Deleted chat message 801.")
    assert forum.trashed_chat == [(2, 801)] and forum.deleted == []
    assert second.status == "succeeded" and "Already gone" in (second.response_summary or "")
    paths = [(r.method, r.path) for r in forum.requests]
    assert paths == [("DELETE", "/chat/api/channels/2/messages/801")] * 2
    assert forum.requests[0].headers["Api-Key"] == discourse_api.API_KEY


def test_discourse_chat_delete_refused_or_without_ids_fails_for_good(app: Flask):
    with running(discourse_api.FakeDiscourse()) as forum:
        wrong_key = discourse_item(app, forum.url, CHAT, discourse_api_key="wrong-key")
        refused = act(app, wrong_key, "discourse_delete_chat_message")
        post_item = act(app, discourse_item(app, forum.url), "discourse_delete_chat_message")
    assert refused.status == "failed" and "API key was refused" in (refused.error or "")
    assert post_item.status == "failed" and "which Discourse chat" in (post_item.error or "")
    assert forum.trashed_chat == [] and len(forum.requests) == 1


def test_a_refused_key_fails_for_good_and_says_where_to_fix_it(app: Flask):
    with running(discourse_api.FakeDiscourse()) as forum:
        item_id = discourse_item(app, forum.url, discourse_api_key="wrong-key")
        run = act(app, item_id, "discourse_delete_post")
    assert run.status == "failed" and run.attempts == 1
    assert "API key was refused" in (run.error or "") and "source's settings" in (run.error or "")
    assert forum.deleted == []


@pytest.mark.parametrize("behaviour", ["429", "500"])
def test_rate_limits_and_server_errors_are_retried(app: Flask, behaviour: str):
    with running(discourse_api.FakeDiscourse()) as forum:
        item_id = discourse_item(app, forum.url)
        forum.upcoming = [behaviour]
        waiting = act(app, item_id, "discourse_delete_post")
        assert (waiting.status, waiting.attempts) == ("queued", 1)
        assert f"HTTP {behaviour}" in (waiting.error or "")
        done = again(app, waiting)
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert forum.deleted == [40]


def test_an_item_from_another_platform_is_refused(app: Flask):
    with running(misskey_api.FakeMisskey()) as server:
        item_id = platform_item(app, "misskey", {"base_url": server.url}, {}, {"post_id": 40})
        run = act(app, item_id, "discourse_delete_post")
    assert run.status == "failed" and "misskey source" in (run.error or "")
    assert server.requests == []


def test_mastodon_files_a_report_then_acts_on_the_account_once(app: Flask):
    with running(mastodon_api.FakeMastodon()) as server:
        item_id = platform_item(
            app,
            "mastodon",
            {"base_url": server.url},
            {"mastodon_access_token": mastodon_api.TOKEN},
            {"status_id": "1101"},
            "108",
        )
        server.upcoming = ["", "503"]  # the report is filed, then the action fails once
        waiting = act(app, item_id, "mastodon_account_action", {"type": "suspend"})
        done = again(app, waiting)
    assert waiting.status == "queued" and done.status == "succeeded"
    assert len(server.reports) == 1  # the retry's Idempotency-Key found the same report
    assert server.reports["1"]["status_ids[]"] == ["1101"]
    account, form, key = server.actions[0]
    assert (account, form["type"], form["report_id"]) == ("108", "suspend", "1")
    assert key and done.external_ref == "1"


def test_mastodon_uses_the_report_the_item_came_with_and_a_bad_token_fails(app: Flask):
    with running(mastodon_api.FakeMastodon()) as server:
        server.reports["9"] = {}
        meta = {"status_id": "1101", "report_id": "9"}
        good = platform_item(
            app,
            "mastodon",
            {"base_url": server.url},
            {"mastodon_access_token": mastodon_api.TOKEN},
            meta,
            "108",
        )
        bad = platform_item(
            app, "mastodon", {"base_url": server.url}, {"mastodon_access_token": "x"}, meta, "108"
        )
        ok = act(app, good, "mastodon_account_action")
        refused = act(app, bad, "mastodon_account_action")
    assert ok.status == "succeeded" and server.actions[0][1]["type"] == "sensitive"
    assert server.actions[0][1]["report_id"] == "9" and len(server.reports) == 1
    assert refused.status == "failed" and "HTTP 401" in (refused.error or "")


def lemmy_item(app: Flask, url: str, jwt: str = lemmy_api.JWT) -> str:
    return platform_item(
        app,
        "pictrs",
        {"base_url": url, "pictrs_url": url},
        {"lemmy_jwt": jwt, "pictrs_api_key": lemmy_api.PICTRS_KEY},
        {"post_id": 501, "person_id": 33, "pictrs_alias": "f3c1a2.webp"},
    )


def test_lemmy_removes_bans_and_pictrs_purges(app: Flask):
    with running(lemmy_api.FakeLemmy()) as lemmy:
        item_id = lemmy_item(app, lemmy.url)
        removed = act(app, item_id, "lemmy_remove_post")
        banned = act(app, item_id, "lemmy_ban_user", {"remove_data": "1", "api_version": "v4"})
        purged = act(app, item_id, "pictrs_purge")
        purged_again = act(app, item_id, "pictrs_purge")
    assert [r.status for r in (removed, banned, purged, purged_again)] == ["succeeded"] * 4
    assert lemmy.removed[0]["post_id"] == 501 and lemmy.removed[0]["removed"] is True
    path, body = lemmy.bans[0]
    assert path == "/api/v4/admin/ban" and body["remove_or_restore_data"] is True
    assert lemmy.purged == ["f3c1a2.webp"]


def test_lemmy_refused_login_fails_and_a_502_is_retried(app: Flask):
    with running(lemmy_api.FakeLemmy()) as lemmy:
        refused = act(app, lemmy_item(app, lemmy.url, jwt="expired"), "lemmy_remove_post")
        lemmy.upcoming = ["502"]
        waiting = act(app, lemmy_item(app, lemmy.url), "lemmy_ban_user")
    assert refused.status == "failed" and "HTTP 401" in (refused.error or "")
    assert waiting.status == "queued" and "HTTP 502" in (waiting.error or "")


def test_rocketchat_deletes_the_message_and_deactivates_the_author(app: Flask):
    with running(rocketchat_api.FakeRocketChat()) as chat:
        credentials = {
            "rocketchat_user_id": rocketchat_api.USER_ID,
            "rocketchat_auth_token": rocketchat_api.AUTH_TOKEN,
        }
        meta = {"message_id": "msg-abc", "room_id": "GENERAL"}
        item_id = platform_item(app, "rocketchat", {"base_url": chat.url}, credentials, meta, "u9")
        deleted = act(app, item_id, "rocketchat_delete_message")
        gone = act(app, item_id, "rocketchat_delete_message")
        deactivated = act(app, item_id, "rocketchat_deactivate_user")
    assert [deleted.status, gone.status, deactivated.status] == ["succeeded"] * 3
    assert chat.deleted == [("GENERAL", "msg-abc")] and chat.deactivated == ["u9"]
    assert "Already gone" in (gone.response_summary or "")


def test_misskey_deletes_the_note_suspends_and_a_wrong_token_fails(app: Flask):
    with running(misskey_api.FakeMisskey()) as server:
        meta = {"note_id": "9note01"}
        good = platform_item(
            app,
            "misskey",
            {"base_url": server.url},
            {"misskey_token": misskey_api.TOKEN},
            meta,
            "9u",
        )
        bad = platform_item(app, "misskey", {"base_url": server.url}, {"misskey_token": "x"}, meta)
        deleted = act(app, good, "misskey_delete_note")
        gone = act(app, good, "misskey_delete_note")
        suspended = act(app, good, "misskey_suspend_user")
        refused = act(app, bad, "misskey_delete_note")
    assert [deleted.status, gone.status, suspended.status] == ["succeeded"] * 3
    assert server.deleted == ["9note01"] and server.suspended == ["9u"]
    assert refused.status == "failed" and "API key was refused" in (refused.error or "")
    assert "Authorization" not in server.requests[0].headers  # the token travels as "i"


def test_an_id_that_is_not_an_id_never_reaches_a_url(app: Flask):
    with running(discourse_api.FakeDiscourse()) as forum:
        item_id = platform_item(
            app, "discourse", {"base_url": forum.url}, DISCOURSE_KEYS, {"post_id": "../admin"}
        )
        run = act(app, item_id, "discourse_delete_post")
    assert run.status == "failed" and "which Discourse post" in (run.error or "")
    assert forum.requests == []

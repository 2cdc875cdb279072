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
    actions_config,
    decisions,
    plugin_settings,
    source_secrets,
    sources,
)
from app.services.audit import Actor
from app.services.webhooks.signatures import hex_hmac_sha256
from tests.fakes import discourse_api, lemmy_api, mastodon_api, misskey_api, rocketchat_api, running
from tests.helpers_hooks import body_bytes, items, make_hook_source
from tests.helpers_review import attach, make_item, make_user
from tests.helpers_sources import png

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


def discourse_item(app: Flask, url: str, **credentials: str) -> str:
    return platform_item(
        app, "discourse", {"base_url": url}, credentials or DISCOURSE_KEYS, {"post_id": 40}, "7"
    )


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


# --- end to end: webhook → item → a lead's removal → the post is deleted on the forum ------------


@pytest.fixture
def app_config() -> dict[str, Any]:
    # The worker fetches from the fake forum on loopback; actions start as soon as decided.
    return {
        "FETCH_ALLOW_NETWORKS": ["127.0.0.0/8"],
        "UNDO_SECONDS": 0,
        "PIPELINE_ROUTE_ON_CLEAR": "queued",  # the team sees every image
    }


def test_a_removed_discourse_image_deletes_its_post(app: Flask, client: Any):
    sha1 = "e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98"
    upload = f"/uploads/default/original/1X/{sha1}.png"
    with running(discourse_api.FakeDiscourse()) as forum:
        forum.uploads[upload] = png(3)
        slug, secret = make_hook_source(app, "discourse", {"base_url": forum.url})
        with app.app_context():
            source = sources.find_source(slug)
            source_secrets.save_secrets(source, DISCOURSE_KEYS, set(), ACTOR)
            actions_config.save({("remove", "spam"): ["discourse_delete_post"]}, ACTOR)
        payload = {
            "post": {
                "id": 40,
                "user_id": 7,
                "username": "angus",
                "post_number": 3,
                "topic_id": 15,
                "cooked": f'<p>Look</p><p><img src="{upload}" alt="cat.png"></p>',
            }
        }
        body = body_bytes(payload)
        answer = client.post(
            f"/hooks/{slug}",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Discourse-Event": "post_created",
                "X-Discourse-Event-Type": "post",
                "X-Discourse-Event-Id": "158765",
                "X-Discourse-Event-Signature": hex_hmac_sha256(secret, body),
            },
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        (item,) = items(app, slug)
        assert item.status == "queued", item.status_reason
        lead = make_user(app, "lead")
        with app.app_context():
            decisions.decide(item.id, attach(lead), "remove", ACTOR, category="spam")
            (run,) = actions.runs_for_item(item.id)
            assert (run.action, run.status) == ("discourse_delete_post", "succeeded")
    deletes = [r for r in forum.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == ["/posts/40.json"]
    assert deletes[0].headers["Api-Key"] == discourse_api.API_KEY
    assert forum.deleted == [40]

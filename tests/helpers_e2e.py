"""Plain helpers for the end-to-end platform tests: a source connected to a fake platform, a
delivery signed the way that platform signs it, and a moderator's removal in the dashboard.

The tests run the real pieces: the webhook receiver, the worker's jobs (inline, ``HUEY_IMMEDIATE``)
fetching images from the fake over loopback, the scan pipeline, the review pages with their CSRF
tokens, and the platform action calling the fake's API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks import Webhook

from app.extensions import db
from app.services import actions, actions_config, source_secrets, sources
from app.services.audit import Actor
from app.services.webhooks import pictrs
from app.services.webhooks.signatures import hex_hmac_sha256
from tests.helpers_hooks import body_bytes, items, make_hook_source
from tests.helpers_review import login_as, make_user

ACTOR = Actor.system("test")
# The worker fetches from the fakes on loopback; actions start as soon as a decision is made;
# every scanned image waits for a person, as a team that reviews everything has it.
E2E_CONFIG = {
    "FETCH_ALLOW_NETWORKS": ["127.0.0.0/8"],
    "UNDO_SECONDS": 0,
    "PIPELINE_ROUTE_ON_CLEAR": "queued",
}
HTMX = {"HX-Request": "true"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def connect(
    app: Flask,
    kind: str,
    platform_url: str,
    credentials: dict[str, str],
    removal: list[str],
    **settings: Any,
) -> tuple[str, str]:
    """A ``kind`` source set up as the docs say: its ``base_url`` is the fake platform, its
    credentials entered in the form, and *remove as spam* mapped to the ``removal`` actions.
    Returns the slug and the webhook secret (for pict-rs, the validation URL's path token)."""
    if kind in ("pictrs", "generic"):  # the fake Lemmy serves its pict-rs' internal API too
        settings.setdefault("pictrs_url", platform_url)
    slug, secret = make_hook_source(app, kind, {"base_url": platform_url, **settings})
    with app.app_context():
        source = sources.find_source(slug)
        source_secrets.save_secrets(source, credentials, set(), ACTOR)
        actions_config.save({("remove", "spam"): removal}, ACTOR)
        if kind == "pictrs":
            secret = pictrs.issue_path_token(source, ACTOR)
    return slug, secret


def deliver(
    client: FlaskClient, kind: str, slug: str, secret: str, payload: Any, **headers: str
) -> Any:
    """POST ``payload`` to the source's webhook URL, signed as the platform ``kind`` signs it."""
    if kind == "rocketchat":  # the integration's token travels in the body
        payload = {**payload, "token": secret}
    body = body_bytes(payload)
    if kind == "discourse":
        headers["X-Discourse-Event-Signature"] = hex_hmac_sha256(secret, body)
    elif kind == "mastodon":
        headers["X-Hub-Signature"] = hex_hmac_sha256(secret, body)
    elif kind == "misskey":
        headers["X-Misskey-Hook-Secret"] = secret
    elif kind == "generic":
        message_id, now = headers.pop("webhook_id", "msg_e2e_1"), datetime.now(tz=UTC)
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = Webhook(secret).sign(message_id, now, body.decode())
    answer = client.post(
        f"/hooks/{slug}", data=body, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer


def only_item(app: Flask, slug: str) -> Any:
    """The source's one item (detached); fails when there is not exactly one."""
    (item,) = items(app, slug)
    return item


def review_page(client: FlaskClient, item_id: str) -> str:
    """The item's page in the dashboard, as the moderator logged in sees it."""
    page = client.get(f"/review/items/{item_id}")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def log_in_moderator(app: Flask, client: FlaskClient) -> None:
    """A new moderator, logged in on ``client``."""
    login_as(client, make_user(app, "moderator"))


def remove_in_dashboard(client: FlaskClient, item_id: str, category: str = "spam") -> None:
    """The logged-in moderator claims the item and removes it, through the real routes and
    with the CSRF token of the page, as the browser does."""
    token = CSRF.search(review_page(client, item_id))
    assert token, "no CSRF token on the item page"
    form = {"csrf_token": token.group(1)}
    claimed = client.post(f"/review/items/{item_id}/claim", data=form, headers=HTMX)
    assert claimed.status_code == 200, claimed.get_data(as_text=True)
    decided = client.post(
        f"/review/items/{item_id}/decide",
        data={**form, "outcome": "remove", "category": category},
        headers=HTMX,
    )
    # 200 with the next item's screen, or 204 with HX-Redirect to the queue when none is left
    assert decided.status_code in (200, 204), decided.get_data(as_text=True)


def action_runs(app: Flask, item_id: str) -> list[tuple[str, str, str | None]]:
    """``(action, status, summary or error)`` of each action run on the item."""
    with app.app_context():
        runs = actions.runs_for_item(item_id)
        found = [(r.action, r.status, r.response_summary or r.error) for r in runs]
        db.session.rollback()
        return found

"""The review pages as a moderator uses them: queue, claim, decide and next, undo, clusters,
roles, CSRF on every state change, and no markup the Content-Security-Policy would block."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.services import claims
from tests.helpers_review import (
    add_scan,
    attach,
    csrf_of,
    load,
    login_as,
    make_item,
    make_source,
    make_user,
)
from tests.helpers_ui import inline_code

HTMX = {"HX-Request": "true"}


def post(
    client: FlaskClient,
    path: str,
    data: dict[str, Any] | None = None,
    htmx: bool = False,
    token_from: str = "/review/",
) -> Any:
    token = csrf_of(client, token_from)
    return client.post(
        path, data={"csrf_token": token, **(data or {})}, headers=HTMX if htmx else {}
    )


def test_the_queue_shows_blurred_previews_only(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    item_id = make_item(app, source, with_media=True, priority=100)
    add_scan(
        app,
        item_id,
        labels=[{"name": "spam", "score": 0.91}],
        matches=[{"bank_id": 1, "bank_name": "Spam bank", "labels": ["spam"], "distance": 5}],
    )
    login_as(client, make_user(app))
    html = client.get("/review/").get_data(as_text=True)
    assert f'src="/media/items/{item_id}/preview"' in html
    assert "/original" not in html and "/thumbnail" not in html
    assert "spam 0.91" in html and "match Spam bank d=5" in html and "priority 100" in html
    assert inline_code(html) == []
    assert '<script src="/static/js/review.js" defer>' in html
    assert "Escalated" not in re.search(r'<nav class="queue-tabs".*?</nav>', html, re.S).group(0)


def test_escalated_queue_is_for_leads(app: Flask, client: FlaskClient) -> None:
    make_item(app, make_source(app), status="escalated")
    login_as(client, make_user(app))
    assert client.get("/review/?queue=escalated").status_code == 403
    assert post(client, "/review/next", {"queue": "escalated"}).status_code == 403
    login_as(client, make_user(app, "lead"))
    assert client.get("/review/?queue=escalated").status_code == 200


def test_filters_live_in_the_url_and_htmx_gets_the_grid_only(
    app: Flask, client: FlaskClient
) -> None:
    forum, chat = make_source(app, "Forum"), make_source(app, "Chat")
    for _ in range(50):
        make_item(app, forum)
    make_item(app, chat)
    login_as(client, make_user(app))
    page = client.get(f"/review/?source={forum}&label=&text=").get_data(as_text=True)
    assert page.count('class="queue-card"') == 48
    older = re.search(r'rel="next" href="([^"]+)"', page)
    assert older and f"source={forum}" in older.group(1)
    fragment = client.get(older.group(1).replace("&amp;", "&"), headers=HTMX)
    assert "<html" not in fragment.get_data(as_text=True)
    assert fragment.get_data(as_text=True).count('class="queue-card"') == 2
    assert "HX-Request" in fragment.headers["Vary"]


def test_counts_refresh_as_out_of_band_numbers(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    for _ in range(3):
        make_item(app, source)
    login_as(client, make_user(app))
    html = client.get("/review/counts", headers=HTMX).get_data(as_text=True)
    assert '<span class="queue-tabs__count" id="count-review" hx-swap-oob="true">3</span>' in html
    page = client.get("/review/").get_data(as_text=True)
    assert 'hx-trigger="every 10s, queue-changed from:body" hx-swap="none"' in page


def test_claim_from_the_grid_and_next(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    low = make_item(app, source, priority=1)
    high = make_item(app, source, priority=9)
    moderator = make_user(app)
    login_as(client, moderator)
    response = post(client, f"/review/claim/{low}", {"source": str(source)})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/review/items/{low}?source={source}"
    response = post(client, "/review/next", htmx=True)
    assert response.headers["HX-Redirect"] == f"/review/items/{high}"
    assert load(app, high).claimed_by_id == load(app, low).claimed_by_id == moderator.id


def test_decide_and_next_swaps_in_the_next_item_and_refreshes_counts(
    app: Flask, client: FlaskClient
) -> None:
    source = make_source(app)
    first = make_item(app, source, priority=9, with_media=True)
    second = make_item(app, source, priority=1, with_media=True)
    moderator = make_user(app)
    login_as(client, moderator)
    post(client, f"/review/items/{first}/claim", htmx=True)
    page = client.get(f"/review/items/{first}").get_data(as_text=True)
    assert inline_code(page) == []
    assert 'data-key="a"' in page and 'data-key="r"' in page and 'data-key="e"' in page
    response = post(
        client,
        f"/review/items/{first}/decide",
        {"outcome": "remove", "category": "spam", "note": "seen before"},
        htmx=True,
        token_from=f"/review/items/{first}",
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'data-item-id="{second}"' in html and "<html" not in html
    assert "Removed as spam. Press u to undo." in html
    assert response.headers["HX-Push-Url"] == f"/review/items/{second}"
    assert "queue-changed" in json.loads(response.headers["HX-Trigger"])
    assert load(app, first).status == "removed"
    assert load(app, second).claimed_by_id == moderator.id
    queue = client.get("/review/").get_data(as_text=True)
    assert first not in queue


def test_decisions_without_a_claim_are_refused_with_a_reason(
    app: Flask, client: FlaskClient
) -> None:
    item_id = make_item(app, make_source(app))
    login_as(client, make_user(app))
    response = post(client, f"/review/items/{item_id}/decide", {"outcome": "approve"}, htmx=True)
    assert response.status_code == 409
    assert "Claim this item" in response.get_data(as_text=True)
    page = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert 'data-key="c"' in page and 'data-key="a"' not in page


def test_the_undo_bar_undoes_the_last_decision(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    item_id = make_item(app, source, priority=5)
    make_item(app, source)
    login_as(client, make_user(app))
    post(client, f"/review/items/{item_id}/claim")
    post(client, f"/review/items/{item_id}/decide", {"outcome": "approve"}, htmx=True)
    page = client.get("/review/").get_data(as_text=True)
    undo = re.search(r'action="(/review/decisions/\d+/undo)"', page)
    assert undo and 'data-key="u"' in page
    response = post(client, undo.group(1), htmx=False)
    assert response.headers["Location"] == f"/review/items/{item_id}"
    assert load(app, item_id).status == "queued"


def test_a_similar_image_cluster_is_decided_at_once(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    twins = [make_item(app, source, with_media=True, seed=42, priority=3) for _ in range(3)]
    other = make_item(app, source, with_media=True, seed=7)
    lead = make_user(app, "lead")
    login_as(client, lead)
    page = client.get(f"/review/items/{twins[0]}").get_data(as_text=True)
    assert (
        page.count("distance 0") == 2
        and other not in page.split("similar-title")[1].split("uploader-title")[0]
    )
    response = post(
        client,
        f"/review/items/{twins[0]}/cluster",
        {"outcome": "approve", "item_id": twins[1:]},
        htmx=True,
    )
    assert response.status_code == 200
    assert [load(app, item_id).status for item_id in twins] == ["approved"] * 3
    assert load(app, other).status == "queued"


def test_the_item_page_shows_context_history_uploader_and_raw_answers(
    app: Flask, client: FlaskClient
) -> None:
    source = make_source(app)
    item_id = make_item(
        app,
        source,
        uploader_id="u-7",
        uploader_name="quietfox",
        context_text="look at this",
        with_media=True,
    )
    sibling = make_item(app, source, uploader_id="u-7", status="removed", with_media=True)
    add_scan(app, item_id, raw={"vendor_said": "hello"})
    moderator = make_user(app)
    login_as(client, moderator)
    post(client, f"/review/items/{item_id}/claim")
    with app.app_context():
        db.session.add(
            AuditEvent(
                seq=1,
                actor_type="system",
                actor_label="pipeline",
                action="item.status",
                target_type="item",
                target_id=item_id,
                details={"to": "queued"},
                prev_hash="0",
                hash="1",
            )
        )
        db.session.commit()
    html = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert "quietfox" in html and "look at this" in html
    assert f"/review/items/{sibling}" in html  # the uploader's other item, with its outcome
    assert "item.status" in html and 'id="scan-results-' in html
    raw = client.get(f"/review/items/{item_id}/raw", headers=HTMX).get_data(as_text=True)
    assert "vendor_said" in raw


def test_leads_take_over_claims_and_moderators_cannot(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app))
    holder = make_user(app, name="Holder")
    with app.app_context():
        claims.claim(item_id, attach(holder))
    login_as(client, make_user(app))
    page = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert "Holder is working on this item" in page
    assert post(client, f"/review/items/{item_id}/take-over").status_code == 403
    lead = make_user(app, "lead")
    login_as(client, lead)
    assert post(client, f"/review/items/{item_id}/take-over", htmx=True).status_code == 200
    assert load(app, item_id).claimed_by_id == lead.id


def test_renew_and_release(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app))
    login_as(client, make_user(app))
    post(client, f"/review/items/{item_id}/claim")
    assert post(client, f"/review/items/{item_id}/renew", htmx=True).status_code == 204
    post(client, f"/review/items/{item_id}/release", htmx=True)
    assert load(app, item_id).claimed_by_id is None
    lost = post(client, f"/review/items/{item_id}/renew", htmx=True)
    assert "ran out" in lost.get_data(as_text=True)


def test_every_state_change_needs_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app))
    login_as(client, make_user(app, "admin"))
    client.get("/review/")  # a session with a CSRF secret, as a browser would have
    routes = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("review.", "media.")) and "POST" in rule.methods
    ]
    assert len(routes) >= 12
    for rule in routes:
        path = rule.rule.replace("<item_id>", item_id).replace("<int:decision_id>", "1")
        response = client.post(path, data={"outcome": "approve", "mode": "full"})
        assert response.status_code == 400, path
        assert "expired or did not come from this site" in response.get_data(as_text=True)
    assert load(app, item_id).status == "queued"


@pytest.mark.parametrize("path", ["/review/demo", "/review/demo/remove"])
def test_demo_buttons_are_for_admins(app: Flask, client: FlaskClient, path: str) -> None:
    login_as(client, make_user(app, "lead"))
    assert post(client, path).status_code == 403


def test_the_dashboard_fragment(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    make_item(app, source, age_minutes=90)
    login_as(client, make_user(app))
    html = client.get("/review/dashboard", headers=HTMX).get_data(as_text=True)
    assert "Review at a glance" in html and "1 h" in html
    assert "Decided by you today" in html and "Revealed by you today" in html
    with app.app_context():
        assert db.session.scalars(select(AuditEvent)).all() == []  # looking changes nothing


@pytest.mark.parametrize(
    ("status", "label"),
    [("queued", "Routed because"), ("fetch_failed", "Not fetched because")],
)
def test_the_item_page_says_why_in_words_that_fit_its_state(
    app: Flask, client: FlaskClient, status: str, label: str
) -> None:
    reason = "The image could not be fetched: The server answered 404 Not Found."
    item_id = make_item(app, make_source(app), status=status, status_reason=reason)
    login_as(client, make_user(app))
    html = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert f"<dt>{label}</dt><dd>{reason}</dd>" in html
    assert ("Routed because" in html) == (status == "queued")

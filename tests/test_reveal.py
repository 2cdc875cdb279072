"""Safe viewing: previews only by default, originals only with a fresh reveal token of your own,
every reveal audited and counted, CSAM-matched items only for leads with a reason."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageChops
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.review import Reveal, RevealMode
from app.services import reveal
from app.services.ingest import original_store
from tests.helpers_review import (
    csam_match,
    csrf_of,
    load,
    login_as,
    make_item,
    make_source,
    make_user,
)

TOKEN_URL = re.compile(r'src="(/media/items/[^"]+/original\?token=[^"]+)"')


def reveal_post(client: FlaskClient, item_id: str, mode: str = "greyscale", **form: str) -> Any:
    token = csrf_of(client, f"/review/items/{item_id}")
    return client.post(
        f"/review/items/{item_id}/reveal",
        data={"csrf_token": token, "mode": mode, **form},
        headers={"HX-Request": "true"},
    )


def image_url(response: Any) -> str:
    match = TOKEN_URL.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1).replace("&amp;", "&")


def is_grey(data: bytes) -> bool:
    """True when the image has no colour (WebP stores greyscale as RGB with equal channels)."""
    with Image.open(io.BytesIO(data)) as picture:
        red, green, blue = picture.convert("RGB").split()
    spread = [ImageChops.difference(red, other).getextrema()[1] for other in (green, blue)]
    return max(spread) <= 12


def assert_safe_headers(response: Any) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_previews_need_a_login_and_are_never_cached(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    assert client.get(f"/media/items/{item_id}/preview").status_code == 302  # to the login page
    login_as(client, make_user(app))
    response = client.get(f"/media/items/{item_id}/preview")
    assert response.status_code == 200 and response.mimetype == "image/webp"
    assert_safe_headers(response)
    assert is_grey(response.data)
    with Image.open(io.BytesIO(response.data)) as preview:
        assert max(preview.size) <= 320


def test_the_original_needs_a_reveal_token(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    login_as(client, make_user(app))
    for suffix in (
        "original",
        "original?token=",
        "original?token=forged.value.here",
        "thumbnail",
        "thumbnail?token=nope",
    ):
        assert client.get(f"/media/items/{item_id}/{suffix}").status_code == 403, suffix
    html = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert f"/media/items/{item_id}/preview" in html
    assert "/original" not in html and "/thumbnail" not in html


def test_a_reveal_is_audited_counted_and_returns_a_working_token(
    app: Flask, client: FlaskClient
) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    moderator = make_user(app)
    login_as(client, moderator)
    response = reveal_post(client, item_id, "full")
    assert response.status_code == 200
    image = client.get(image_url(response))
    item = load(app, item_id)
    with app.app_context():
        assert image.data == original_store().get(item.sha256 or "")
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "item.revealed")
        ).one()
        assert (event.target_id, event.actor_id, event.details["mode"]) == (
            item_id,
            str(moderator.id),
            "full",
        )
        assert db.session.scalars(select(Reveal.mode)).all() == ["full"]
        assert reveal.exposure_today(moderator.id) == 1
    assert image.mimetype == "image/jpeg"
    assert_safe_headers(image)
    assert b"token" not in event_details_bytes(app)


def event_details_bytes(app: Flask) -> bytes:
    with app.app_context():
        return repr(db.session.scalars(select(AuditEvent.details)).all()).encode()


def test_greyscale_and_partial_reveals_are_rendered_never_the_raw_bytes(
    app: Flask, client: FlaskClient
) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    login_as(client, make_user(app))
    for mode in ("greyscale", "partial"):
        image = client.get(image_url(reveal_post(client, item_id, mode)))
        assert image.status_code == 200 and image.mimetype == "image/webp", mode
        assert is_grey(image.data), mode  # the default preference is greyscale
        with Image.open(io.BytesIO(image.data)) as picture:
            assert not picture.info.get("exif")


def test_a_token_is_bound_to_its_user_and_item(app: Flask, client: FlaskClient) -> None:
    source = make_source(app)
    item_id = make_item(app, source, with_media=True)
    other_item = make_item(app, source, with_media=True)
    login_as(client, make_user(app))
    url = image_url(reveal_post(client, item_id))
    assert client.get(url.replace(item_id, other_item)).status_code == 403
    colleague = app.test_client()
    login_as(colleague, make_user(app))
    assert colleague.get(url).status_code == 403
    assert client.get(url).status_code == 200


def test_tokens_expire(app: Flask, client: FlaskClient) -> None:
    app.config["REVEAL_TOKEN_SECONDS"] = 1
    item_id = make_item(app, make_source(app), with_media=True)
    login_as(client, make_user(app))
    url = image_url(reveal_post(client, item_id))
    assert client.get(url).status_code == 200
    time.sleep(2.1)
    assert client.get(url).status_code == 403


def test_the_break_reminder_shows_at_the_threshold(app: Flask, client: FlaskClient) -> None:
    app.config["EXPOSURE_REMINDER_AT"] = 2
    item_id = make_item(app, make_source(app), with_media=True)
    login_as(client, make_user(app))
    assert "short break" not in reveal_post(client, item_id).get_data(as_text=True)
    second = reveal_post(client, item_id).get_data(as_text=True)
    assert "You have revealed 2 images today" in second and "short break" in second
    assert 'id="exposure-banner" hx-swap-oob="true"' in second
    assert "<dialog" not in second  # a calm note, not a modal


def test_a_moderator_cannot_reveal_a_csam_matched_item(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    csam_match(app, item_id)
    moderator = make_user(app)
    login_as(client, moderator)
    page = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert "Only a lead or an admin can reveal it" in page
    assert "Test CSAM list" in page and 'data-key="v"' not in page
    response = reveal_post(client, item_id, "full")
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalars(select(Reveal)).all() == []
        # Even a token minted for the moderator (say, before the match arrived) is refused.
        token = reveal.make_token(moderator.id, item_id, RevealMode.FULL)
    assert client.get(f"/media/items/{item_id}/original?token={token}").status_code == 403


def test_a_lead_reveals_a_csam_matched_item_only_with_a_reason(
    app: Flask, client: FlaskClient
) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    csam_match(app, item_id)
    login_as(client, make_user(app, "lead"))
    assert reveal_post(client, item_id, "greyscale").status_code == 400
    assert reveal_post(client, item_id, "greyscale", reason="short").status_code == 400
    reason = "Confirming the match before the NCMEC report"
    response = reveal_post(client, item_id, "greyscale", reason=reason)
    assert response.status_code == 200
    assert client.get(image_url(response)).status_code == 200
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "item.revealed")
        ).one()
        assert event.details["reason"] == reason and event.details["lead_only"] is True


@pytest.mark.parametrize("path", ["/review/items/{id}/reveal"])
def test_reveal_needs_the_csrf_token(app: Flask, client: FlaskClient, path: str) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    login_as(client, make_user(app))
    response = client.post(path.format(id=item_id), data={"mode": "full"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalars(select(Reveal)).all() == []


def test_preferences_are_per_user_and_drive_the_default_mode(
    app: Flask, client: FlaskClient
) -> None:
    item_id = make_item(app, make_source(app), with_media=True)
    moderator = make_user(app)
    login_as(client, moderator)
    token = csrf_of(client, "/review/preferences")
    response = client.post("/review/preferences", data={"csrf_token": token, "blur_strength": "9"})
    assert response.status_code == 303
    with app.app_context():
        prefs = reveal.preferences(moderator.id)
        assert (prefs.blur_strength, prefs.greyscale, prefs.auto_reveal_unflagged) == (
            9,
            False,
            False,
        )
        assert reveal.preferences(make_user(app).id).greyscale is True
    assert 'value="full" data-key="v"' in client.get(f"/review/items/{item_id}").get_data(
        as_text=True
    )


def test_auto_reveal_only_for_items_every_scanner_cleared(app: Flask, client: FlaskClient) -> None:
    from tests.helpers_review import add_scan

    source = make_source(app)
    clear, flagged, unscanned = (make_item(app, source, with_media=True) for _ in range(3))
    add_scan(app, clear, verdict="clear")
    add_scan(app, flagged, verdict="flag", labels=[{"name": "nudity", "score": 0.7}])
    moderator = make_user(app)
    login_as(client, moderator)
    with app.app_context():
        reveal.save_preferences(moderator.id, 6, True, True)
    pages = {
        item_id: client.get(f"/review/items/{item_id}").get_data(as_text=True)
        for item_id in (clear, flagged, unscanned)
    }
    assert 'hx-trigger="load" data-auto-reveal' in pages[clear]
    assert "data-auto-reveal" not in pages[flagged] and "data-auto-reveal" not in pages[unscanned]

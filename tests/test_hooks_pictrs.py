"""pict-rs external validation: 2xx keeps an upload, anything else (errors too) rejects it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from app.extensions import db
from app.models.source import Source
from app.services import banks
from app.services.audit import Actor
from app.services.hashing import compute_hashes
from app.services.webhooks import pictrs
from tests.helpers_hooks import disable, items, make_hook_source, receipts
from tests.imagegen import encode, scene
from tests.pipeline_helpers import TEST_PLUGINS, configure, only_scanners

IMAGE = encode(scene(320, 200, seed=11), "WEBP")


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(TEST_PLUGINS)


def pictrs_source(app: Flask, **settings: Any) -> tuple[str, str]:
    """A pict-rs source and its path token."""
    slug, _ = make_hook_source(app, "pictrs", settings, name="Lemmy pict-rs")
    with app.app_context():
        source = db.session.scalar(select(Source).where(Source.slug == slug))
        return slug, pictrs.issue_path_token(source, Actor.system("test"))


def validate(client, slug: str, token: str, data: bytes = IMAGE):
    # As pict-rs sends it: the processed bytes, their media type, no credentials.
    return client.post(f"/hooks/{slug}/{token}", data=data, content_type="image/webp")


def test_an_unknown_image_is_accepted(app, client) -> None:
    slug, token = pictrs_source(app)
    answer = validate(client, slug, token)
    assert answer.status_code == 200 and answer.json["verdict"] == "allow"
    assert items(app, slug) == []  # enqueue_accepted is off
    assert receipts(app, slug) == [("accepted", 200, "verdict allow")]


def test_a_blocked_hash_is_rejected(app, client) -> None:
    slug, token = pictrs_source(app, enqueue_accepted=True)
    with app.app_context():
        bank = banks.create_bank("CSAM hashes", Actor.system("test"), labels=["csam"])
        banks.add_entry(bank, "sha256", compute_hashes(IMAGE).sha256, Actor.system("test"))
        db.session.commit()
    answer = validate(client, slug, token)
    assert answer.status_code == 403 and answer.json["error"]["code"] == "blocked"
    assert items(app, slug) == []


def test_accepted_images_are_enqueued_when_asked(app, client) -> None:
    slug, token = pictrs_source(app, enqueue_accepted=True)
    assert validate(client, slug, token).status_code == 200
    (item,) = items(app, slug)
    assert item.external_id.startswith("sha256:") and item.mime == "image/webp"


def test_failures_reject_never_accept(app, client) -> None:
    slug, token = pictrs_source(app)
    assert validate(client, slug, token, data=b"not an image").status_code == 422
    only_scanners(app, test_fast_list={"label": ""}, test_fast_broken={})
    assert validate(client, slug, token).status_code == 503
    configure(app, "hashbank", enabled=True)
    with app.app_context():
        db.session.execute(text("DROP TABLE plugin_configs"))
        db.session.commit()
    failed = validate(client, slug, token)
    assert failed.status_code == 500 and "verdict" not in failed.json


def test_wrong_token_disabled_oversized(app, client) -> None:
    slug, token = pictrs_source(app)
    assert validate(client, slug, "x" * 43).status_code == 401
    assert validate(client, "nope", token).status_code == 404
    app.config["MAX_IMAGE_BYTES"] = 100
    assert validate(client, slug, token).status_code == 413
    disable(app, slug)
    assert validate(client, slug, token).status_code == 403
    assert [r[1] for r in receipts(app, slug)] == [401, 413, 403]


def test_a_source_without_token_refuses(app, client) -> None:
    slug, _ = make_hook_source(app, "pictrs")
    assert validate(client, slug, "").status_code in (404, 405)
    assert validate(client, slug, "anything").status_code == 401


def test_admin_sees_the_validation_url_once_and_it_works(app, client) -> None:
    import re

    from tests.helpers_sources import form_csrf, login_as, make_user

    login_as(client, make_user(app))
    page = client.post(
        "/admin/sources/new",
        data={
            "csrf_token": form_csrf(client, "/admin/sources/new"),
            "name": "Lemmy",
            "kind": "pictrs",
        },
    )
    html = page.get_data(as_text=True)
    match = re.search(r'data-once="pictrs">http://localhost(/hooks/lemmy/[A-Za-z0-9_-]+)<', html)
    assert match, "the validation URL is on the page"
    assert client.post(match.group(1), data=IMAGE, content_type="image/webp").status_code == 200
    detail = client.get("/admin/sources/lemmy").get_data(as_text=True)
    assert "Set up pict-rs" in detail and match.group(1) not in detail

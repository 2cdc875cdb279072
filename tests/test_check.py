"""``POST /api/v1/check``: block, review or allow in one request, and never allow by accident."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import text

from app.extensions import db
from app.models.item import Item
from app.services import banks
from app.services.audit import Actor
from app.services.hashing import compute_hashes
from tests.imagegen import TESTDATA, encode, scene
from tests.pipeline_helpers import TEST_PLUGINS, configure, only_scanners

IMAGE = encode(scene(320, 200, seed=7), "JPEG", quality=90)


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(TEST_PLUGINS)


def check(
    client: FlaskClient,
    token: str,
    data: bytes = IMAGE,
    content_type: str = "image/jpeg",
    query: str = "",
) -> Any:
    return client.post(
        f"/api/v1/check{query}",
        data=data,
        content_type=content_type,
        headers={"Authorization": f"Bearer {token}"},
    )


def add_to_bank(app: Flask, labels: list[str], signal_type: str, signal: str) -> None:
    with app.app_context():
        bank = banks.create_bank("NCMEC hash sharing", Actor.system("test"), labels=labels)
        banks.add_entry(bank, signal_type, signal, Actor.system("test"), note="case 1234")
        db.session.commit()


def test_a_bank_match_on_a_blocking_label_blocks(
    app: Flask, client: FlaskClient, token: str
) -> None:
    hashes = compute_hashes(IMAGE)
    add_to_bank(app, ["csam"], "sha256", hashes.sha256)
    answer = check(client, token)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["verdict"] == "block"
    assert (body["sha256"], body["pdq"], body["pdq_quality"]) == (
        hashes.sha256,
        hashes.pdq,
        hashes.pdq_quality,
    )
    (match,) = body["matches"]
    assert match["scanner"] == "hashbank" and match["bank_name"] == "NCMEC hash sharing"
    assert match["labels"] == ["csam"] and match["distance"] == 0
    assert "note" not in match and "signal" not in match  # bank internals stay here
    assert "case 1234" not in answer.get_data(as_text=True)


def test_a_photo_gets_the_hashes_its_item_would_get(client: FlaskClient, token: str) -> None:
    # 1600×1004: decoded at half scale and resized on the check's helper thread.
    photo = (TESTDATA / "bridge-mods" / "aaa-orig.jpg").read_bytes()
    body = check(client, token, photo).get_json()
    hashes = compute_hashes(photo)
    assert (body["sha256"], body["pdq"], body["pdq_quality"]) == (
        hashes.sha256,
        hashes.pdq,
        hashes.pdq_quality,
    )


def test_a_near_pdq_match_is_found_too(app: Flask, client: FlaskClient, token: str) -> None:
    resized = encode(scene(320, 200, seed=7).resize((256, 160)), "PNG")  # same picture, smaller
    add_to_bank(app, ["terrorism"], "pdq", compute_hashes(resized).pdq)
    body = check(client, token).get_json()
    assert body["verdict"] == "block"
    assert body["matches"][0]["signal_type"] == "pdq"
    assert 0 < body["matches"][0]["distance"] <= 31


@pytest.mark.parametrize(
    ("label", "verdicts", "expected"),
    [
        ("spam", None, "review"),  # a label CHECK_VERDICTS does not list uses "*"
        ("ncii", None, "block"),
        ("", None, "allow"),
        ("spam", {"spam": "allow"}, "allow"),
        ("spam", {"*": "block"}, "block"),
    ],
)
def test_verdicts_follow_check_verdicts(
    app: Flask,
    client: FlaskClient,
    token: str,
    label: str,
    verdicts: dict[str, str] | None,
    expected: str,
) -> None:
    if verdicts is not None:
        app.config["CHECK_VERDICTS"] = verdicts
    only_scanners(app, test_fast_list={"label": label})
    body = check(client, token).get_json()
    assert body["verdict"] == expected
    assert body["scanners"] == ["test_fast_list"]


def test_only_fast_scanners_run(app: Flask, client: FlaskClient, token: str) -> None:
    only_scanners(app, test_verdict={"verdict": "match"}, test_flaky={"fail_times": 99})
    body = check(client, token).get_json()
    assert (body["verdict"], body["scanners"]) == ("allow", [])


def test_the_image_can_come_as_base64_json(app: Flask, client: FlaskClient, token: str) -> None:
    only_scanners(app, test_fast_list={"label": "csam"})
    body = {"data": base64.b64encode(IMAGE).decode()}
    answer = client.post("/api/v1/check", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.get_json()["verdict"] == "block"


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"GIF89a-not-really", "image/gif", 422, "corrupt_image"),
        (b"hello, world", "image/png", 415, "unsupported_type"),
        (IMAGE, "text/plain", 415, "unsupported_content_type"),
        (b'{"data": "!!!"}', "application/json", 400, "invalid_base64"),
        (b'{"image": "x"}', "application/json", 400, "unknown_field"),
        (b'{"external_id": "a"}', "application/json", 400, "missing_field"),
    ],
)
def test_refused_images_get_json_errors(
    client: FlaskClient, token: str, data: bytes, content_type: str, status: int, code: str
) -> None:
    answer = check(client, token, data, content_type)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == code
    assert "verdict" not in answer.get_json()


def test_query_values_are_checked(client: FlaskClient, token: str) -> None:
    assert check(client, token, query="?enqueue=maybe").get_json()["error"]["field"] == "enqueue"
    answer = check(client, token, query="?enqueue=true&external_id=")
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == "external_id"


def test_an_oversized_image_is_refused_with_413(
    app: Flask, client: FlaskClient, token: str
) -> None:
    app.config["MAX_IMAGE_BYTES"] = 1000
    answer = check(client, token)
    assert answer.status_code == 413 and answer.get_json()["error"]["field"] == "image"


def test_a_token_is_required(client: FlaskClient) -> None:
    answer = client.post("/api/v1/check", data=IMAGE, content_type="image/jpeg")
    assert answer.status_code == 401


def test_enqueue_also_accepts_the_image_as_an_item(
    app: Flask, client: FlaskClient, token: str
) -> None:
    only_scanners(app, test_fast_list={"label": "spam"})
    answer = check(client, token, query="?enqueue=true&external_id=upload-77")
    body = answer.get_json()
    assert answer.status_code == 200 and body["verdict"] == "review"
    with app.app_context():
        item = db.session.get(Item, body["item"]["id"])
        assert item is not None and item.external_id == "upload-77"
        assert item.sha256 == body["sha256"] and item.source.name == "Forum"
        assert item.status == "queued"  # accepted, processed and scanned (jobs run inline here)
    again = check(client, token, query="?enqueue=1&external_id=upload-77").get_json()
    assert again["item"]["id"] == body["item"]["id"]  # re-delivery is the same item


def test_enqueue_keeps_the_checks_hashes_instead_of_checking_again(
    app: Flask, client: FlaskClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    body = check(client, token, query="?enqueue=true&external_id=upload-78").get_json()
    # Once for the check, once by the worker for the previews (jobs run inline here); the
    # accepted item is not checked a second time, and keeps the hash the platform was told.
    assert len(opened) == 2
    with app.app_context():
        item = db.session.get(Item, body["item"]["id"])
        assert (item.pdq, item.pdq_quality) == (body["pdq"], body["pdq_quality"])
        assert item.pdq is not None and item.has_derivatives


def test_a_scanner_that_fails_never_answers_allow(
    app: Flask, client: FlaskClient, token: str
) -> None:
    only_scanners(app, test_fast_list={"label": ""}, test_fast_broken={})
    answer = check(client, token)
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "scanner_failed"
    assert "verdict" not in answer.get_json()


def test_a_database_failure_never_answers_allow(
    app: Flask, client: FlaskClient, token: str
) -> None:
    with app.app_context():
        db.session.execute(text("DROP TABLE plugin_configs"))
        db.session.commit()
    answer = check(client, token)
    assert answer.status_code == 500
    assert "error" in answer.get_json() and "verdict" not in answer.get_json()


def test_a_misconfigured_verdict_table_fails_closed(
    app: Flask, client: FlaskClient, token: str
) -> None:
    app.config["CHECK_VERDICTS"] = {"csam": "nuke"}
    configure(app, "test_fast_list", label="csam")
    answer = check(client, token)
    assert answer.status_code == 500 and answer.get_json()["error"]["code"] == "misconfigured"

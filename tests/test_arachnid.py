"""The Arachnid Shield scanner, run by the real pipeline against a fake Shield on loopback.

Items arrive through the API with synthetic images. By default only the item's PDQ hash leaves
the server; the fake checks credentials and request shapes as C3P's SDKs send them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from app.services import reveal
from app.services.hashing import compute_hashes
from plugins.arachnid import ArachnidScanner
from tests.api_helpers import image_host, jpeg, load_item
from tests.conftest import csrf_token
from tests.fakes import raw_record, send_item, serving, switch_on
from tests.fakes.arachnid import PASSWORD, USERNAME, FakeArachnid
from tests.imagegen import encode
from tests.pipeline_helpers import item_state, log_in_as, results, retry_until_settled


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"FETCH_ALLOW_NETWORKS": ["127.0.0.0/8"]}


@pytest.fixture
def shield() -> Iterator[FakeArachnid]:
    with serving(FakeArachnid()) as fake:
        yield fake


def switch_on_shield(app: Flask, fake: FakeArachnid, **settings: str) -> None:
    form = {"username": USERNAME, "password": PASSWORD, "base_url": fake.url + "/"}
    switch_on(app, "arachnid", {**form, **settings})


def flipped(pdq: str, bits: int) -> str:
    """``pdq`` with its lowest ``bits`` bits inverted: a near copy ``bits`` away."""
    return f"{int(pdq, 16) ^ ((1 << bits) - 1):064x}"


def test_by_default_only_the_pdq_hash_is_sent_and_a_near_csam_match_is_kept(
    app: Flask, client: FlaskClient, shield: FakeArachnid, token: str
) -> None:
    switch_on_shield(app, shield)
    image = jpeg(seed=21)
    pdq = compute_hashes(image).pdq
    assert pdq is not None
    shield.known_pdq[flipped(pdq, 3)] = "csam"
    item_id = send_item(client, token, "a-1", image)

    result = results(app, item_id)["arachnid"]
    assert (result["status"], result["verdict"]) == ("done", "match")
    assert result["labels"] == [{"name": "csam", "score": 1.0}]
    (found,) = result["matches"]
    assert (found["bank_name"], found["distance"], found["match_type"]) == (
        "Arachnid Shield",
        3,
        "near",
    )
    assert "signal" not in found  # the database's hash stays on this server
    assert item_state(app, item_id)[:2] == ("queued", "match by arachnid (csam)")
    with app.app_context():
        assert reveal.sensitivity(item_id).lead_only

    (request,) = shield.requests
    assert request.path == "/v1/pdq/"
    assert request.get_json() == {"hashes": [base64.b64encode(bytes.fromhex(pdq)).decode()]}
    assert len(request.get_data()) < 100  # a hash, never the image
    assert request.headers["Accept"] == "application/json"
    raw = raw_record(app, item_id, "arachnid")
    assert raw["sent"] == "pdq" and PASSWORD not in repr(raw)

    log_in_as(app, client, "moderator")
    page = client.get(f"/items/{item_id}/scans", headers={"HX-Request": "true"})
    assert "Arachnid Shield · d=3 (pdq)" in page.get_data(as_text=True)


@pytest.mark.parametrize("behaviour", [None, "pdq-null"])
def test_an_unknown_hash_is_clear(
    app: Flask, client: FlaskClient, shield: FakeArachnid, token: str, behaviour: str | None
) -> None:
    shield.upcoming = [behaviour] if behaviour else []
    switch_on_shield(app, shield)
    item_id = send_item(client, token, "a-2", jpeg(seed=22))
    assert results(app, item_id)["arachnid"]["verdict"] == "clear"
    assert item_state(app, item_id)[0] == "cleared"


def test_a_picture_too_flat_for_pdq_is_not_sent(
    app: Flask, client: FlaskClient, shield: FakeArachnid, token: str
) -> None:
    switch_on_shield(app, shield)
    item_id = send_item(client, token, "a-3", encode(Image.new("RGB", (300, 300), "grey")))
    assert results(app, item_id)["arachnid"]["verdict"] == "clear"
    assert raw_record(app, item_id, "arachnid")["skipped"].startswith("no usable PDQ hash")
    assert shield.requests == []


def test_bytes_mode_sends_the_image_and_keeps_exact_and_near_matches(
    app: Flask, client: FlaskClient, shield: FakeArachnid, token: str
) -> None:
    switch_on_shield(app, shield, mode="bytes")
    known, similar = jpeg(seed=23), jpeg(seed=24)
    shield.known_media[hashlib.sha256(known).hexdigest()] = "csam"
    shield.near_media[hashlib.sha256(similar).hexdigest()] = "harmful-abusive-material"
    exact_id = send_item(client, token, "a-4", known)
    near_id = send_item(client, token, "a-5", similar)

    exact = results(app, exact_id)["arachnid"]
    assert exact["labels"] == [{"name": "csam", "score": 1.0}]
    assert exact["matches"][0]["match_type"] == "exact"
    assert exact["matches"][0]["distance"] == 0
    near = results(app, near_id)["arachnid"]
    assert near["labels"] == [{"name": "harmful_abusive_material", "score": 1.0}]
    assert (near["matches"][0]["match_type"], near["matches"][0]["distance"]) == ("near", None)
    with app.app_context():
        assert not reveal.sensitivity(near_id).lead_only  # only csam is for leads

    upload = shield.requests[0]
    assert upload.path == "/v1/media/" and upload.mimetype == "image/jpeg"
    assert upload.get_data() == known
    raw = raw_record(app, exact_id, "arachnid")
    assert raw["response"]["sha256_hex"] == load_item(app, exact_id).sha256.upper()


def test_url_mode_sends_the_url_and_an_unauthorised_host_cannot_be_judged(
    app: Flask, client: FlaskClient, shield: FakeArachnid, token: str
) -> None:
    switch_on_shield(app, shield, mode="url")
    files = {"/a.jpg": (jpeg(seed=25), "image/jpeg"), "/b.jpg": (jpeg(seed=28), "image/jpeg")}
    with image_host(files) as host:
        shield.known_urls[host.url("/a.jpg")] = "csam"
        matched = send_item(client, token, "a-6", url=host.url("/a.jpg"))
        shield.authorised_hosts = {"images.forum.example"}
        refused = send_item(client, token, "a-7", url=host.url("/b.jpg"))

    assert results(app, matched)["arachnid"]["verdict"] == "match"
    assert shield.requests[0].get_json() == {"url": host.url("/a.jpg")}
    result = results(app, refused)["arachnid"]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    raw = raw_record(app, refused, "arachnid")
    assert raw["error"].startswith(
        "Arachnid Shield may not fetch images from this URL's host (HTTP 403): "
        "Hostname not authorized for this user."
    )
    assert (raw["sent"], raw["error_kind"]) == ("url", "url")


def test_refused_credentials_end_the_scan_at_once_with_a_message_that_says_so(
    app: Flask,
    client: FlaskClient,
    shield: FakeArachnid,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    switch_on_shield(app, shield, password="not-the-password-5")
    with caplog.at_level(logging.DEBUG):
        item_id = send_item(client, token, "a-8", jpeg(seed=26))
    result = results(app, item_id)["arachnid"]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    assert retry_until_settled(app) == 0  # no retry can fix a password
    raw = raw_record(app, item_id, "arachnid")
    assert raw["error"] == (
        "Arachnid Shield refused the API username or password (HTTP 401): "
        "Invalid username/password. Check them in the Arachnid Shield settings."
    )
    assert raw["error_kind"] == "credentials"
    assert "not-the-password-5" not in caplog.text + repr(result) + repr(raw)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("429", "Arachnid Shield could not answer now (HTTP 429): Request was throttled. It asks"),
        ("429-bare", "Arachnid Shield could not answer now (HTTP 429): Request was throttled."),
        ("500", "Arachnid Shield could not answer now (HTTP 500): Service temporarily"),
        ("503", "Arachnid Shield could not answer now (HTTP 503)"),
        ("malformed", "Arachnid Shield's answer was not the JSON object it documents."),
        ("timeout", "No answer from Arachnid Shield within 0.9 s."),
    ],
)
def test_a_passing_failure_is_retried_until_shield_answers(
    app: Flask,
    client: FlaskClient,
    shield: FakeArachnid,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
    message: str,
) -> None:
    monkeypatch.setattr(ArachnidScanner, "timeout", 1.0)  # a quick test of a slow vendor
    image = jpeg(seed=27)
    shield.known_media[hashlib.sha256(image).hexdigest()] = "csam"
    shield.upcoming = [behaviour]
    switch_on_shield(app, shield, mode="bytes")
    with caplog.at_level(logging.INFO, logger="app.services.pipeline"):
        item_id = send_item(client, token, "a-9", image)
        retry_until_settled(app)  # the backoff's wait is skipped

    assert f"(attempt 1): ArachnidUnavailable: {message}" in caplog.text
    result = results(app, item_id)["arachnid"]
    assert (result["verdict"], result["attempts"], result["error"]) == ("match", 2, None)


def test_test_connection_from_the_admin_page_sends_no_image(
    app: Flask, client: FlaskClient, shield: FakeArachnid
) -> None:
    log_in_as(app, client, "admin")
    page = "/admin/plugins/arachnid"
    form = {
        "setting-username": USERNAME,
        "setting-base_url": shield.url + "/",
        "setting-mode": "pdq",
        "from_form": "1",
    }

    def test_with(password: str) -> str:
        answer = client.post(
            f"{page}/test",
            data={"csrf_token": csrf_token(client, page), **form, "setting-password": password},
            headers={"HX-Request": "true"},
        )
        return answer.get_data(as_text=True)

    assert "Arachnid Shield accepted the username and password" in test_with(PASSWORD)
    refused = test_with("wrong-password-3")
    assert "refused the API username or password (HTTP 401)" in refused
    assert "wrong-password-3" not in refused
    assert [request.path for request in shield.requests] == ["/v1/pdq/", "/v1/pdq/"]

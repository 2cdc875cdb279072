"""The PhotoDNA scanner, run by the real pipeline against a fake PhotoDNA on loopback.

Items arrive through the API with synthetic images; the fake checks each request as Microsoft
documents it, so a wrong header or body shows up as PhotoDNA's own error.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services import reveal
from plugins.photodna import PhotoDNAScanner
from tests.api_helpers import image_host, jpeg
from tests.conftest import csrf_token
from tests.fakes import raw_record, send_item, serving, switch_on
from tests.fakes.photodna import KEY, FakePhotoDNA, match_flag
from tests.imagegen import encode, scene
from tests.pipeline_helpers import item_state, log_in_as, results, retry_until_settled


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"FETCH_ALLOW_NETWORKS": ["127.0.0.0/8"]}


@pytest.fixture
def photodna() -> Iterator[FakePhotoDNA]:
    with serving(FakePhotoDNA()) as fake:
        yield fake


def switch_on_photodna(app: Flask, fake: FakePhotoDNA, **settings: str) -> None:
    switch_on(
        app,
        "photodna",
        {"subscription_key": KEY, "base_url": fake.base_url, "mode": "bytes", **settings},
    )


def test_a_known_image_is_a_csam_match_only_leads_can_reveal(
    app: Flask, client: FlaskClient, photodna: FakePhotoDNA, token: str
) -> None:
    image = jpeg(seed=3)
    photodna.add_known_image(image, match_flag("Test", ("A1", "B2"), 179))
    switch_on_photodna(app, photodna)
    item_id = send_item(client, token, "p-1", image)

    result = results(app, item_id)["photodna"]
    assert (result["status"], result["verdict"]) == ("done", "match")
    assert result["labels"] == [
        {"name": "csam", "score": 1.0},
        {"name": "csam_a1", "score": 1.0},
        {"name": "csam_b2", "score": 1.0},
    ]
    (found,) = result["matches"]
    assert found["bank_name"] == "PhotoDNA Test" and found["distance"] == 179
    assert found["violations"] == ["A1", "B2"] and found["match_id"] == "7469692"
    assert item_state(app, item_id)[:2] == ("queued", "match by photodna (csam, csam_a1, csam_b2)")
    with app.app_context():
        assert reveal.sensitivity(item_id).lead_only

    (request,) = photodna.requests
    assert request.get_json() == {
        "DataRepresentation": "inline",
        "Value": base64.b64encode(image).decode(),
    }
    assert "enhance" not in request.args
    raw = raw_record(app, item_id, "photodna")
    assert raw["sent"] == "bytes" and raw["response"]["IsMatch"] is True
    assert KEY not in repr(raw)

    log_in_as(app, client, "moderator")
    page = client.get(f"/items/{item_id}/scans", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert "PhotoDNA Test · d=179 (photodna)" in page and "csam_b2 1.00" in page


def test_an_unknown_image_is_clear(
    app: Flask, client: FlaskClient, photodna: FakePhotoDNA, token: str
) -> None:
    switch_on_photodna(app, photodna)
    item_id = send_item(client, token, "p-2", jpeg(seed=4))
    result = results(app, item_id)["photodna"]
    assert (result["verdict"], result["labels"], result["matches"]) == ("clear", [], [])
    assert item_state(app, item_id)[0] == "cleared"


def test_url_mode_sends_the_platforms_url_and_asks_for_enhanced_matching(
    app: Flask, client: FlaskClient, photodna: FakePhotoDNA, token: str
) -> None:
    switch_on_photodna(app, photodna, mode="url", enhance="on")
    with image_host({"/a.jpg": (jpeg(seed=5), "image/jpeg")}) as host:
        photodna.known_urls[host.url("/a.jpg")] = [match_flag("NCMEC", ("A2",), 40)]
        matched = send_item(client, token, "p-3", url=host.url("/a.jpg"))
    unsent = send_item(client, token, "p-4", jpeg(seed=6))  # no URL: sent as bytes

    assert results(app, matched)["photodna"]["matches"][0]["bank_name"] == "PhotoDNA NCMEC"
    by_url, by_bytes = photodna.requests
    assert by_url.get_json() == {"DataRepresentation": "URL", "Value": host.url("/a.jpg")}
    assert by_url.args["enhance"] == "true"
    assert by_bytes.get_json()["DataRepresentation"] == "inline"
    assert raw_record(app, unsent, "photodna")["sent"] == "bytes"


def test_types_photodna_does_not_take_are_sent_as_jpeg(
    app: Flask, client: FlaskClient, photodna: FakePhotoDNA, token: str
) -> None:
    switch_on_photodna(app, photodna)
    item_id = send_item(client, token, "p-5", encode(scene(400, 300, seed=7), "WEBP"))
    assert results(app, item_id)["photodna"]["verdict"] == "clear"
    sent = base64.b64decode(photodna.requests[0].get_json()["Value"])
    assert sent[:3] == b"\xff\xd8\xff"  # a JPEG
    raw = raw_record(app, item_id, "photodna")
    assert raw["converted_from"]["type"] == "image/webp"
    assert raw["converted_to"]["size"] == [400, 300]


def test_an_image_below_photodnas_minimum_is_could_not_judge(
    app: Flask, client: FlaskClient, photodna: FakePhotoDNA, token: str
) -> None:
    switch_on_photodna(app, photodna)
    item_id = send_item(client, token, "p-6", jpeg(seed=8, width=200, height=120))
    result = results(app, item_id)["photodna"]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    raw = raw_record(app, item_id, "photodna")
    assert raw["error"].startswith("The image is outside PhotoDNA's limits: at least 160×160")
    assert raw["error_kind"] == "image" and raw["response"]["Status"]["Code"] == 3208
    assert item_state(app, item_id)[:2] == ("queued", "scanner failed: photodna")
    assert retry_until_settled(app) == 0  # nothing to retry: PhotoDNA has answered


def test_a_refused_key_ends_the_scan_at_once_with_a_message_that_says_so(
    app: Flask,
    client: FlaskClient,
    photodna: FakePhotoDNA,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    switch_on(app, "photodna", {"subscription_key": "wrong-key-77", "base_url": photodna.base_url})
    with caplog.at_level(logging.DEBUG):
        item_id = send_item(client, token, "p-7", jpeg(seed=9))
    result = results(app, item_id)["photodna"]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    assert retry_until_settled(app) == 0  # no retry can fix a key
    raw = raw_record(app, item_id, "photodna")
    assert raw["error"].startswith(
        "PhotoDNA refused the subscription key (HTTP 401). Check the key in the PhotoDNA settings"
    )
    assert (raw["error_kind"], raw["http_status"]) == ("credentials", 401)
    assert "wrong-key-77" not in caplog.text + repr(result) + repr(raw)
    assert item_state(app, item_id)[:2] == ("queued", "scanner failed: photodna")


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("429", "PhotoDNA's rate limit was exceeded (HTTP 429). It asks to wait 1 s."),
        ("429-bare", "PhotoDNA's rate limit was exceeded (HTTP 429). Rate limit is exceeded."),
        ("quota", "PhotoDNA's call volume quota is used up (HTTP 403): Out of call volume"),
        ("500", "PhotoDNA is having trouble (HTTP 500)."),
        ("malformed", "PhotoDNA's answer was not the JSON object it documents."),
        ("3004", "PhotoDNA could not process the request (3004: Unknown scenario"),
        ("timeout", "No answer from PhotoDNA within 0.9 s."),
    ],
)
def test_a_passing_failure_is_retried_until_photodna_answers(
    app: Flask,
    client: FlaskClient,
    photodna: FakePhotoDNA,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
    message: str,
) -> None:
    monkeypatch.setattr(PhotoDNAScanner, "timeout", 1.0)  # a quick test of a slow vendor
    image = jpeg(seed=10)
    photodna.add_known_image(image)
    photodna.upcoming = [behaviour]
    switch_on_photodna(app, photodna)
    with caplog.at_level(logging.INFO, logger="app.services.pipeline"):
        item_id = send_item(client, token, "p-8", image)
        retry_until_settled(app)  # the backoff's wait is skipped

    assert f"(attempt 1): PhotoDNAUnavailable: {message}" in caplog.text
    result = results(app, item_id)["photodna"]
    assert (result["verdict"], result["attempts"], result["error"]) == ("match", 2, None)
    assert item_state(app, item_id)[0] == "queued"


def test_test_connection_from_the_admin_page(
    app: Flask, client: FlaskClient, photodna: FakePhotoDNA
) -> None:
    log_in_as(app, client, "admin")
    page = "/admin/plugins/photodna"
    form = {"setting-base_url": photodna.base_url, "setting-mode": "bytes", "from_form": "1"}

    def test_with(key: str) -> str:
        answer = client.post(
            f"{page}/test",
            data={"csrf_token": csrf_token(client, page), **form, "setting-subscription_key": key},
            headers={"HX-Request": "true"},
        )
        return answer.get_data(as_text=True)

    works = test_with(KEY)
    assert "PhotoDNA accepted the subscription key and matched a test picture" in works
    refused = test_with("not-the-key")
    assert "PhotoDNA refused the subscription key (HTTP 401)" in refused
    assert KEY not in works and "not-the-key" not in refused
    assert photodna.requests[0].headers["Ocp-Apim-Subscription-Key"] == KEY

"""The Hive scanner, V2 and V3, run by the real pipeline against a fake Hive on loopback.

The fake checks each API generation's own auth scheme and body shape, so sending a V2 key as a
Bearer token, or JSON to the V2 endpoint, fails here as it would at Hive.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from plugins.hive import DEFAULT_THRESHOLDS
from tests.api_helpers import image_host, jpeg
from tests.conftest import csrf_token
from tests.fakes import raw_record, send_item, serving, switch_on
from tests.fakes.hive import V2_KEY, V3_KEY, FakeHive
from tests.pipeline_helpers import item_state, log_in_as, results, retry_until_settled


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"FETCH_ALLOW_NETWORKS": ["127.0.0.0/8"]}


@pytest.fixture
def hive() -> Iterator[FakeHive]:
    with serving(FakeHive()) as fake:
        yield fake


def switch_on_hive(app: Flask, hive: FakeHive, version: str = "v2", **settings: str) -> None:
    key = V3_KEY if version == "v3" else V2_KEY
    switch_on(
        app, "hive", {"api_version": version, "api_key": key, "endpoint": hive.url, **settings}
    )


def labels_of(app: Flask, item_id: str) -> list[dict[str, Any]]:
    with app.app_context():
        from app.services.pipeline import latest_results

        return next(r.labels for r in latest_results(item_id) if r.scanner == "hive")


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_a_class_over_its_threshold_flags_with_hives_names_and_our_categories(
    app: Flask, client: FlaskClient, hive: FakeHive, token: str, version: str
) -> None:
    hive.scores = {"gun_in_hand": 0.95, "general_suggestive": 0.3}
    switch_on_hive(app, hive, version)
    image = jpeg(seed=1)
    item_id = send_item(client, token, f"h-{version}", image)

    result = results(app, item_id)["hive"]
    assert (result["status"], result["verdict"]) == ("done", "flag")
    found = labels_of(app, item_id)
    assert found[0] == {"name": "gun_in_hand", "score": 0.95, "category": "weapons"}
    assert {"name": "general_suggestive", "score": 0.3, "category": "suggestive"} in found
    assert not any(label["name"].startswith("no_") for label in found)  # negatives left out
    assert all(label["score"] >= 0.01 for label in found)
    assert item_state(app, item_id)[1] == "flag by hive (general_suggestive, gun_in_hand)"

    (request,) = hive.requests
    if version == "v2":
        assert request.headers["Authorization"] == f"token {V2_KEY}"
        assert hive.uploads == [("image", image)]
    else:
        assert request.headers["Authorization"] == f"Bearer {V3_KEY}"
        assert request.get_json() == {"input": [{"media_base64": base64.b64encode(image).decode()}]}
    assert V2_KEY not in repr(raw_record(app, item_id, "hive"))

    log_in_as(app, client, "moderator")  # the item page shows Hive's name and our category
    page = client.get(f"/items/{item_id}/scans", headers={"HX-Request": "true"})
    assert 'gun_in_hand 0.95 <span class="muted">(weapons)</span>' in page.get_data(as_text=True)


def test_scores_under_every_threshold_are_clear_and_thresholds_are_the_operators(
    app: Flask, client: FlaskClient, hive: FakeHive, token: str
) -> None:
    hive.scores = {"general_nsfw": 0.6}
    switch_on_hive(app, hive)
    cleared = send_item(client, token, "h-1", jpeg(seed=2))
    assert results(app, cleared)["hive"]["verdict"] == "clear"
    assert {"name": "general_nsfw", "score": 0.6, "category": "adult_nudity"} in labels_of(
        app, cleared
    )

    # A category threshold covers every Hive class in it.
    switch_on_hive(app, hive, thresholds="adult_nudity=0.5")
    flagged = send_item(client, token, "h-2", jpeg(seed=3))
    assert results(app, flagged)["hive"]["verdict"] == "flag"


def test_an_animation_keeps_each_classs_highest_score_over_its_frames(
    app: Flask, client: FlaskClient, hive: FakeHive, token: str
) -> None:
    hive.scores, hive.upcoming = {"very_bloody": 0.97}, ["frames"]
    switch_on_hive(app, hive, "v3")
    item_id = send_item(client, token, "h-3", jpeg(seed=4))
    assert {"name": "very_bloody", "score": 0.97, "category": "violence_gore"} in labels_of(
        app, item_id
    )
    assert results(app, item_id)["hive"]["verdict"] == "flag"


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_url_mode_sends_the_platforms_url(
    app: Flask, client: FlaskClient, hive: FakeHive, token: str, version: str
) -> None:
    switch_on_hive(app, hive, version, send_url="on")
    with image_host({"/a.jpg": (jpeg(seed=5), "image/jpeg")}) as host:
        item_id = send_item(client, token, "h-4", url=host.url("/a.jpg"))
    assert results(app, item_id)["hive"]["verdict"] == "clear"
    (request,) = hive.requests
    if version == "v2":
        assert request.form["url"] == host.url("/a.jpg") and not hive.uploads
    else:
        assert request.get_json() == {"input": [{"media_url": host.url("/a.jpg")}]}


@pytest.mark.parametrize(
    ("settings", "behaviour", "kind", "message"),
    [
        ({"api_key": "wrong"}, None, "credentials", "Hive refused the credentials (HTTP 403)"),
        ({"api_version": "v3"}, None, "credentials", "Hive refused the credentials (HTTP 403)"),
        ({}, "balance", "image", "the account's balance is insufficient"),
        ({}, "bad-image", "image", "Hive could not judge this image (HTTP 400): Unable to"),
        ({}, "task-failed", "image", "Hive could not judge this image: Model error"),
        ({"thresholds": "gun_in_hand=high"}, None, "settings", "line 1: 'high' is not a number"),
    ],
)
def test_failures_retrying_cannot_fix_end_the_scan_at_once(
    app: Flask,
    client: FlaskClient,
    hive: FakeHive,
    token: str,
    settings: dict[str, str],
    behaviour: str | None,
    kind: str,
    message: str,
) -> None:
    hive.upcoming = [behaviour] if behaviour else []
    switch_on_hive(app, hive, **settings)  # api_version v3 with the V2 key: the wrong scheme
    item_id = send_item(client, token, "h-5", jpeg(seed=6))

    result = results(app, item_id)["hive"]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    raw = raw_record(app, item_id, "hive")
    assert message in raw["error"] and raw["error_kind"] == kind
    assert retry_until_settled(app) == 0
    assert item_state(app, item_id)[:2] == ("queued", "scanner failed: hive")


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("429", "Hive is busy or failing (HTTP 429): Project has been rate limited"),
        ("500", "Hive is busy or failing (HTTP 500): Internal server error"),
    ],
)
def test_rate_limits_and_server_errors_are_retried(
    app: Flask, client: FlaskClient, hive: FakeHive, token: str, behaviour: str, message: str
) -> None:
    hive.upcoming, hive.scores = [behaviour], {"yes_nazi": 0.99}
    switch_on_hive(app, hive, "v3")
    item_id = send_item(client, token, "h-6", jpeg(seed=7))
    assert message in results(app, item_id)["hive"]["error"]
    assert retry_until_settled(app) == 1
    assert results(app, item_id)["hive"]["verdict"] == "flag"
    assert labels_of(app, item_id)[0]["category"] == "hate"


def test_test_connection_and_threshold_checks_on_the_admin_page(
    app: Flask, client: FlaskClient, hive: FakeHive
) -> None:
    log_in_as(app, client, "admin")
    page = "/admin/plugins/hive"

    def test_with(**fields: str) -> str:
        form = {"setting-api_version": "v2", "setting-endpoint": hive.url,
                "setting-thresholds": DEFAULT_THRESHOLDS, "from_form": "1"}  # fmt: skip
        form.update({f"setting-{name}": value for name, value in fields.items()})
        answer = client.post(
            f"{page}/test",
            data={"csrf_token": csrf_token(client, page), **form},
            headers={"HX-Request": "true"},
        )
        return answer.get_data(as_text=True)

    assert "Hive accepted the credentials and classified a test picture." in test_with(
        api_key=V2_KEY
    )
    assert "Hive refused the credentials (HTTP 403)" in test_with(api_key="nope")
    typo = test_with(api_key=V2_KEY, thresholds="gun_in_hnd=0.9")
    assert "Not in our vocabulary (check the spelling): gun_in_hnd." in typo
    assert "line 2" in test_with(api_key=V2_KEY, thresholds="general_nsfw=0.9\nnonsense")
    assert hive.uploads[0][0] == "image"  # a file name, never the item's

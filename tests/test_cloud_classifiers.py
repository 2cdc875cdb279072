"""Google Vision, AWS Rekognition, Azure Content Safety and Sightengine against fakes on loopback.

Items arrive through the API with synthetic images; the real pipeline runs the real plugin,
which talks HTTP to a fake that checks each request as the vendor documents it (keys, SigV4,
body shapes) and answers the vendor's shapes and errors. Every service gets the same checks:
a flag with labels and our categories, a clear, a refused key (final at once), a passing
failure (retried), a timeout, an image the service cannot judge, and "Test connection" on the
admin page.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from app.plugins import current_plugins
from tests.api_helpers import image_host, jpeg, loopback_only, make_source
from tests.conftest import csrf_token
from tests.fakes import FakeService, raw_record, running, send_item, serving, sightengine, switch_on
from tests.fakes import aws_rekognition as aws
from tests.fakes import azure_content_safety as azure
from tests.fakes import google_vision as google
from tests.imagegen import encode, scene
from tests.pipeline_helpers import item_state, log_in_as, results, retry_until_settled


@dataclass(frozen=True)
class Case:
    """One service: its fake, its settings, how to make it flag, what it then reports."""

    scanner: str
    fake: Callable[[], FakeService]
    settings: Callable[[FakeService], dict[str, str]]
    wrong_key: dict[str, str]
    make_it_flag: Callable[[Any], None]
    flagged: dict[str, Any]  # the label the flag must show: name, score, category
    busy: str  # a behaviour that is retried (429 or 5xx)
    busy_message: str
    refusal_message: str


def _flag_google(fake: Any) -> None:
    fake.likelihoods.update(adult="VERY_LIKELY", racy="POSSIBLE")


def _flag_aws(fake: Any) -> None:
    fake.labels[:] = [
        ("Explicit", "", 1, 98.2),
        ("Explicit Nudity", "Explicit", 2, 98.2),
        ("Exposed Female Genitalia", "Explicit Nudity", 3, 97.1),
        ("Weapons", "Violence", 2, 40.0),  # under MinConfidence 50: AWS leaves it out
    ]


def _flag_azure(fake: Any) -> None:
    fake.severities.update(Violence=4, Hate=2)


def _flag_sightengine(fake: Any) -> None:
    fake.scores.update({"gore.prob": 0.91, "gore.classes.very_bloody": 0.88})


CASES = {
    "google_vision": Case(
        "google_vision", google.FakeGoogleVision,
        lambda f: {"api_key": google.KEY, "endpoint": f.url},
        {"api_key": "AIza-wrong-key-000"}, _flag_google,
        {"name": "adult", "score": 1.0, "category": "adult_nudity"},
        "429", "Google Cloud Vision is busy or failing (HTTP 429): Quota exceeded",
        "Google Cloud Vision refused the credentials (HTTP 400): API key not valid.",
    ),
    "aws_rekognition": Case(
        "aws_rekognition", aws.FakeRekognition,
        lambda f: {"region": aws.REGION, "access_key_id": aws.ACCESS_KEY,
                   "secret_access_key": aws.SECRET_KEY, "endpoint": f.url},
        {"secret_access_key": "not/the/secret"}, _flag_aws,
        {"name": "Exposed Female Genitalia", "score": 0.971, "category": "adult_nudity"},
        "throttle", "AWS Rekognition is busy or failing (HTTP 400): ThrottlingException",
        "AWS Rekognition refused the credentials (HTTP 403): InvalidSignatureException",
    ),
    "azure_content_safety": Case(
        "azure_content_safety", azure.FakeContentSafety,
        lambda f: {"endpoint": f.url, "api_key": azure.KEY},
        {"api_key": "wrong-azure-key"}, _flag_azure,
        {"name": "Violence", "score": 0.67, "category": "violence_gore"},
        "500", "Azure AI Content Safety is busy or failing (HTTP 500): InternalServerError",
        "Azure AI Content Safety refused the credentials (HTTP 401): 401: Access denied",
    ),
    "sightengine": Case(
        "sightengine", sightengine.FakeSightengine,
        lambda f: {"api_user": sightengine.API_USER, "api_secret": sightengine.API_SECRET,
                   "endpoint": f.url},
        {"api_secret": "wrong-secret-99"}, _flag_sightengine,
        {"name": "gore.prob", "score": 0.91, "category": "violence_gore"},
        "usage_limit", "Sightengine is busy or failing (HTTP 429): usage_limit",
        "Sightengine refused the credentials (HTTP 401): argument_error: Incorrect API user",
    ),
}  # fmt: skip


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
def fake(case: Case) -> Iterator[Any]:
    with serving(case.fake()) as service:
        yield service


def test_a_flagged_image_shows_the_vendors_labels_with_our_categories(
    app: Flask, client: FlaskClient, case: Case, fake: Any, token: str
) -> None:
    case.make_it_flag(fake)
    switch_on(app, case.scanner, case.settings(fake))
    item_id = send_item(client, token, "c-1", jpeg(seed=1))

    result = results(app, item_id)[case.scanner]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "flag", 1)
    with app.app_context():
        from app.services.pipeline import latest_results

        (row,) = [r for r in latest_results(item_id) if r.scanner == case.scanner]
        assert case.flagged in row.labels
        assert all(0.0 <= label["score"] <= 1.0 for label in row.labels)
    assert item_state(app, item_id)[0] == "queued"
    raw = repr(raw_record(app, item_id, case.scanner))
    assert all(secret not in raw for secret in case.settings(fake).values() if "key" in secret)


def test_a_harmless_image_is_clear(
    app: Flask, client: FlaskClient, case: Case, fake: Any, token: str
) -> None:
    switch_on(app, case.scanner, case.settings(fake))
    item_id = send_item(client, token, "c-2", jpeg(seed=2))
    result = results(app, item_id)[case.scanner]
    assert (result["verdict"], result["labels"]) == ("clear", [])
    assert item_state(app, item_id)[:2] == ("cleared", "cleared by every scanner")


def test_a_refused_key_ends_the_scan_at_once_with_a_message_that_says_so(
    app: Flask, client: FlaskClient, case: Case, fake: Any, token: str
) -> None:
    switch_on(app, case.scanner, {**case.settings(fake), **case.wrong_key})
    item_id = send_item(client, token, "c-3", jpeg(seed=3))

    result = results(app, item_id)[case.scanner]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    assert retry_until_settled(app) == 0  # no retry can fix a key
    raw = raw_record(app, item_id, case.scanner)
    assert raw["error"].startswith(case.refusal_message) and raw["error_kind"] == "credentials"
    assert "in this scanner's settings" in raw["error"]
    assert all(wrong not in repr(raw) for wrong in case.wrong_key.values())
    assert item_state(app, item_id)[:2] == ("queued", f"scanner failed: {case.scanner}")


def test_rate_limits_and_server_errors_are_retried_with_backoff(
    app: Flask, client: FlaskClient, case: Case, fake: Any, token: str
) -> None:
    case.make_it_flag(fake)
    fake.upcoming = [case.busy]
    switch_on(app, case.scanner, case.settings(fake))
    item_id = send_item(client, token, "c-4", jpeg(seed=4))

    waiting = results(app, item_id)[case.scanner]
    assert waiting["status"] == "pending" and case.busy_message in waiting["error"]
    assert item_state(app, item_id)[0] == "scanning"
    assert retry_until_settled(app) == 1
    assert results(app, item_id)[case.scanner]["verdict"] == "flag"


def test_a_vendor_that_does_not_answer_is_cut_off_and_tried_again(
    app: Flask,
    client: FlaskClient,
    case: Case,
    fake: Any,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with app.app_context():
        monkeypatch.setattr(type(current_plugins().scanners[case.scanner]), "timeout", 0.5)
    fake.upcoming = ["timeout"]
    switch_on(app, case.scanner, case.settings(fake))
    item_id = send_item(client, token, "c-5", jpeg(seed=5))

    assert "timed out" in results(app, item_id)[case.scanner]["error"].lower()
    assert retry_until_settled(app) == 1
    assert results(app, item_id)[case.scanner]["verdict"] == "clear"


def test_test_connection_from_the_admin_page(
    app: Flask, client: FlaskClient, case: Case, fake: Any
) -> None:
    log_in_as(app, client, "admin")
    page = f"/admin/plugins/{case.scanner}"

    def test_with(settings: dict[str, str]) -> str:
        form = {f"setting-{name}": value for name, value in settings.items()}
        answer = client.post(
            f"{page}/test",
            data={"csrf_token": csrf_token(client, page), **form, "from_form": "1"},
            headers={"HX-Request": "true"},
        )
        return answer.get_data(as_text=True)

    with app.app_context():
        defaults = {
            s.name: str(s.default)
            for s in current_plugins().scanners[case.scanner].settings
            if s.default is not None and s.type != "boolean"
        }
    works = test_with({**defaults, **case.settings(fake)})
    assert "accepted the credentials and classified a test picture" in works
    refused = test_with({**defaults, **case.settings(fake), **case.wrong_key})
    assert case.refusal_message.replace("'", "&#39;") in refused
    assert all(wrong not in refused for wrong in case.wrong_key.values())


# --- what each service does its own way ----------------------------------------------------------


def scan_with(
    app: Flask, client: FlaskClient, case: str, fake: Any, settings: dict[str, str], **item: Any
) -> tuple[str, dict[str, Any], Any]:
    """Switch ``case`` on with ``settings`` over its defaults, send one item, return its result."""
    switch_on(app, case, {**CASES[case].settings(fake), **settings})
    token = make_source(app, f"Source {uuid.uuid4().hex[:8]}")[1]
    item_id = send_item(client, token, uuid.uuid4().hex, **item)
    return item_id, results(app, item_id)[case], raw_record(app, item_id, case)


def labels_of(app: Flask, item_id: str, scanner: str) -> list[dict[str, Any]]:
    with app.app_context():
        from app.services.pipeline import latest_results

        return next(r.labels for r in latest_results(item_id) if r.scanner == scanner)


@pytest.mark.parametrize(
    ("likelihood", "score"),
    [("VERY_UNLIKELY", None), ("UNLIKELY", 0.25), ("POSSIBLE", 0.5), ("LIKELY", 0.75),
     ("VERY_LIKELY", 1.0), ("UNKNOWN", None)],
)  # fmt: skip
def test_google_likelihoods_become_even_scores(
    app: Flask, client: FlaskClient, likelihood: str, score: float | None
) -> None:
    with serving(google.FakeGoogleVision()) as fake:
        fake.likelihoods["violence"] = likelihood
        item_id, result, _ = scan_with(app, client, "google_vision", fake, {}, data=jpeg(seed=20))
    expected = [{"name": "violence", "score": score, "category": "violence_gore"}]
    assert labels_of(app, item_id, "google_vision") == (expected if score else [])  # 0: left out
    assert result["verdict"] == ("flag" if (score or 0) >= 0.75 else "clear")
    (request,) = fake.requests
    assert request.headers["X-Goog-Api-Key"] == google.KEY and "key" not in request.args


def test_google_and_sightengine_send_the_url_when_asked(app: Flask, client: FlaskClient) -> None:
    app.config["FETCH_ALLOW_NETWORKS"] = ["127.0.0.0/8"]
    with (
        loopback_only(),
        image_host({"/p.jpg": (jpeg(seed=21), "image/jpeg")}) as host,
        running(google.FakeGoogleVision()) as vision,
        running(sightengine.FakeSightengine()) as engine,
    ):
        switch_on(
            app, "google_vision", {**CASES["google_vision"].settings(vision), "send_url": "on"}
        )
        switch_on(app, "sightengine", {**CASES["sightengine"].settings(engine), "send_url": "on"})
        token = make_source(app)[1]
        item_id = send_item(client, token, "u-1", url=host.url("/p.jpg"))
    assert {results(app, item_id)[s]["verdict"] for s in ("google_vision", "sightengine")} == {
        "clear"
    }
    image = vision.requests[0].get_json()["requests"][0]["image"]
    assert image == {"source": {"imageUri": host.url("/p.jpg")}}
    form = engine.requests[0].form
    assert form["url"] == host.url("/p.jpg") and form["api_secret"] == sightengine.API_SECRET
    assert "api_secret" not in engine.requests[0].args  # never in the URL


@pytest.mark.parametrize(
    ("case", "behaviour", "message"),
    [
        ("google_vision", "bad-image", "Google Cloud Vision could not judge this image: Bad image"),
        ("aws_rekognition", "bad-image", "(HTTP 400): InvalidImageFormatException: Request has"),
        ("sightengine", "bad-image", "Sightengine could not judge this image: media_error: Media"),
        ("sightengine", "plan", "Sightengine: your plan does not allow this: plan_error"),
    ],
)
def test_an_image_or_plan_the_service_refuses_is_an_error_verdict_with_its_message(
    app: Flask, client: FlaskClient, case: str, behaviour: str, message: str
) -> None:
    with serving(CASES[case].fake()) as fake:
        fake.upcoming = [behaviour]
        _, result, raw = scan_with(app, client, case, fake, {}, data=jpeg(seed=22))
        assert retry_until_settled(app) == 0
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    assert message in raw["error"]


def test_azure_severities_and_its_minimum_image_size(app: Flask, client: FlaskClient) -> None:
    name = "azure_content_safety"
    with serving(azure.FakeContentSafety()) as fake:
        fake.severities.update(Sexual=2, Violence=6, Hate=4)
        item_id, result, _ = scan_with(app, client, name, fake, {}, data=jpeg(seed=23))
        small = encode(Image.new("RGB", (40, 40), "grey"), "JPEG")  # Azure wants 50 px or more
        _, tiny, raw = scan_with(app, client, name, fake, {}, data=small)
    assert result["verdict"] == "flag"
    assert labels_of(app, item_id, "azure_content_safety") == [
        {"name": "Violence", "score": 1.0, "category": "violence_gore"},
        {"name": "Hate", "score": 0.67, "category": "hate"},
        {"name": "Sexual", "score": 0.33, "category": "adult_nudity"},
    ]
    assert fake.requests[0].get_json()["outputType"] == "FourSeverityLevels"
    assert fake.requests[0].args["api-version"] == "2024-09-01"
    assert (tiny["verdict"], tiny["attempts"]) == ("error", 1)
    assert "InvalidImageSize: Image size must be 50x50" in raw["error"]


def test_rekognition_temporary_credentials_parents_and_webp(
    app: Flask, client: FlaskClient
) -> None:
    temporary = {"access_key_id": aws.TEMP_KEY, "secret_access_key": aws.TEMP_SECRET,
                 "session_token": aws.TEMP_TOKEN, "min_confidence": "60"}  # fmt: skip
    with serving(aws.FakeRekognition()) as fake:
        fake.labels[:] = [
            ("Violence", "", 1, 91.0),
            ("Knife Fight", "Violence", 2, 90.0),  # not in the vocabulary: its parent's category
            ("Smoking", "Drugs & Tobacco Paraphernalia & Use", 3, 55.0),  # under MinConfidence
        ]
        item_id, result, _ = scan_with(app, client, "aws_rekognition", fake, temporary,
                                       data=encode(scene(300, 200, seed=25), "WEBP"))  # fmt: skip
    assert result["verdict"] == "clear"  # Violence has no default threshold; Graphic Violence has
    assert labels_of(app, item_id, "aws_rekognition") == [
        {"name": "Violence", "score": 0.91, "category": "violence_gore"},
        {"name": "Knife Fight", "score": 0.9, "category": "violence_gore"},
    ]
    body = json.loads(fake.requests[0].get_data())
    assert base64.b64decode(body["Image"]["Bytes"])[:3] == b"\xff\xd8\xff"  # sent as a JPEG
    assert body["MinConfidence"] == 60
    assert "x-amz-security-token" in fake.requests[0].headers["Authorization"]


def test_sightengine_labels_are_paths_without_the_descriptive_parts(
    app: Flask, client: FlaskClient
) -> None:
    with serving(sightengine.FakeSightengine()) as fake:
        fake.scores.update({"nudity.suggestive_classes.bikini": 0.8, "weapon.classes.knife": 0.7})
        item_id, result, _ = scan_with(app, client, "sightengine", fake, {}, data=jpeg(seed=26))
    found = labels_of(app, item_id, "sightengine")
    assert found == [
        {"name": "nudity.suggestive_classes.bikini", "score": 0.8, "category": "suggestive"},
        {"name": "weapon.classes.knife", "score": 0.7, "category": "weapons"},
    ]  # not nudity.none 0.99, nudity.context.*, gore.type.real 0.9, firearm_action 0.9
    assert result["verdict"] == "flag"  # weapons=0.6 by default
    assert fake.requests[0].form["models"] == "nudity-2.1,weapon,gore-2.0,offensive"

"""The HMA scanner, run by the real pipeline against a fake HMA on loopback, and our banks
exported in a form HMA's own exchange code reads.

Items arrive through the API with synthetic images; their PDQ hashes (or near copies) are put
into the fake's banks, as an HMA fed by NCMEC or StopNCII would hold them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from PIL import Image
from threatexchange.exchanges.impl.file_api import (
    FileCollaborationConfig,
    LocalFileSignalExchangeAPI,
)
from threatexchange.signal_type.pdq.signal import PdqSignal

from app.extensions import db
from app.services import banks, reveal
from app.services.audit import Actor
from app.services.hashing import compute_hashes
from plugins.hma import HMAScanner
from tests.api_helpers import jpeg, loopback_only
from tests.conftest import csrf_token
from tests.fakes import raw_record, running, send_item, serving, switch_on
from tests.fakes.hma import FakeHMA
from tests.imagegen import encode
from tests.pipeline_helpers import item_state, log_in_as, results, retry_until_settled

PROXY_TOKEN = "Bearer hma-proxy-token-9d1"


@pytest.fixture
def hma() -> Iterator[FakeHMA]:
    with serving(FakeHMA()) as fake:
        yield fake


def switch_on_hma(app: Flask, fake: FakeHMA, **settings: str) -> None:
    switch_on(app, "hma", {"base_url": fake.url, **settings})


def pdq_of(image: bytes) -> str:
    pdq = compute_hashes(image).pdq
    assert pdq is not None
    return pdq


def flipped(pdq: str, bits: int) -> str:
    """``pdq`` with its lowest ``bits`` bits inverted: a near copy ``bits`` away."""
    return f"{int(pdq, 16) ^ ((1 << bits) - 1):064x}"


def test_matched_banks_become_labels_and_distances_numbers(
    app: Flask, client: FlaskClient, hma: FakeHMA, token: str
) -> None:
    image = jpeg(seed=31)
    content_id = hma.add("NCMEC_CSAM", flipped(pdq_of(image), 4))
    hma.add("SPAM_WAVE", flipped(pdq_of(image), 10))
    hma.add("SPAM_WAVE", flipped(pdq_of(image), 40))  # too far: HMA does not return it
    switch_on_hma(app, hma, bank_labels="NCMEC_CSAM: csam")
    item_id = send_item(client, token, "h-1", image)

    result = results(app, item_id)["hma"]
    assert (result["status"], result["verdict"]) == ("done", "match")
    assert result["labels"] == [
        {"name": "csam", "score": round(1 - 4 / 256, 4)},
        {"name": "spam_wave", "score": round(1 - 10 / 256, 4)},
    ]
    csam, spam = result["matches"]
    assert (csam["bank_name"], csam["bank_content_id"], csam["distance"]) == (
        "NCMEC_CSAM",
        content_id,
        4,
    )
    assert (spam["bank_name"], spam["distance"], spam["labels"]) == ("SPAM_WAVE", 10, ["spam_wave"])
    with app.app_context():
        assert reveal.sensitivity(item_id).lead_only

    (request,) = hma.requests
    assert (request.method, request.path) == ("GET", "/m/lookup")
    assert request.args.to_dict() == {
        "signal_type": "pdq",
        "signal": pdq_of(image),
        "seed": item_id,
    }
    assert raw_record(app, item_id, "hma")["response"]["NCMEC_CSAM"][0]["distance"] == "4"

    log_in_as(app, client, "moderator")
    page = client.get(f"/items/{item_id}/scans", headers={"HX-Request": "true"})
    assert "NCMEC_CSAM · d=4 (pdq)" in page.get_data(as_text=True)


def test_the_bank_allow_list_is_sent_and_held_to(
    app: Flask, client: FlaskClient, hma: FakeHMA, token: str
) -> None:
    image = jpeg(seed=32)
    hma.add("STOPNCII", pdq_of(image))
    hma.add("OTHER", pdq_of(image))
    switch_on_hma(app, hma, banks="stopncii, ncmec_csam")
    item_id = send_item(client, token, "h-2", image)

    assert hma.requests[0].args["banks"] == "STOPNCII,NCMEC_CSAM"
    (found,) = results(app, item_id)["hma"]["matches"]
    assert (found["bank_name"], found["distance"]) == ("STOPNCII", 0)


def test_no_match_is_clear(app: Flask, client: FlaskClient, hma: FakeHMA, token: str) -> None:
    hma.add("NCMEC_CSAM", pdq_of(jpeg(seed=33)))
    switch_on_hma(app, hma)
    item_id = send_item(client, token, "h-3", jpeg(seed=34))
    result = results(app, item_id)["hma"]
    assert (result["verdict"], result["matches"]) == ("clear", [])
    assert item_state(app, item_id)[0] == "cleared"


def test_bytes_mode_sends_the_image_for_hma_to_hash(
    app: Flask, client: FlaskClient, hma: FakeHMA, token: str
) -> None:
    image = jpeg(seed=35, width=640, height=480)
    hma.add("NCMEC_CSAM", pdq_of(image))
    switch_on_hma(app, hma, mode="bytes")
    item_id = send_item(client, token, "h-4", image)

    (found,) = results(app, item_id)["hma"]["matches"]
    # HMA hashes the full picture, we hash a 512-pixel one: a few bits apart, well within 31.
    assert found["bank_name"] == "NCMEC_CSAM" and 0 <= found["distance"] <= 16
    (request,) = hma.requests
    assert request.method == "POST" and hma.uploads == [image]
    assert request.files["photo"].mimetype == "image/jpeg"
    assert raw_record(app, item_id, "hma")["sent"] == "bytes"


@pytest.mark.parametrize("mode", ["pdq", "bytes"])
def test_a_picture_too_flat_for_pdq_is_clear_with_the_reason_kept(
    app: Flask, client: FlaskClient, hma: FakeHMA, token: str, mode: str
) -> None:
    switch_on_hma(app, hma, mode=mode)
    item_id = send_item(client, token, f"h-5-{mode}", encode(Image.new("RGB", (300, 300), "red")))
    assert results(app, item_id)["hma"]["verdict"] == "clear"
    raw = raw_record(app, item_id, "hma")
    if mode == "pdq":
        assert raw["skipped"].startswith("no usable PDQ hash") and hma.requests == []
    else:
        assert raw["skipped"] == "HMA found the picture too flat to hash"
        assert raw["response"] == {"pdq": ""}


def test_the_proxy_header_is_sent_and_a_refusal_says_what_to_check(
    app: Flask,
    client: FlaskClient,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    image = jpeg(seed=36)
    with loopback_only(), running(FakeHMA(("X-Auth", PROXY_TOKEN))) as guarded:
        guarded.add("NCMEC_CSAM", pdq_of(image))
        switch_on_hma(app, guarded, auth_header="X-Auth", auth_value=PROXY_TOKEN)
        allowed = send_item(client, token, "h-6", image)
        switch_on_hma(app, guarded, auth_value="Bearer wrong-token-4")
        with caplog.at_level(logging.DEBUG):
            refused = send_item(client, token, "h-7", jpeg(seed=37))

    assert results(app, allowed)["hma"]["verdict"] == "match"
    failed = results(app, refused)["hma"]
    assert (failed["status"], failed["verdict"], failed["attempts"]) == ("done", "error", 1)
    assert retry_until_settled(app) == 0  # no retry can fix a header
    raw = raw_record(app, refused, "hma")
    assert raw["error"] == (
        "HMA, or the proxy in front of it, refused the request (HTTP 401). Check the "
        "authentication header settings; looking up images needs HMA's hasher role as well as "
        "its matcher."
    )
    assert raw["error_kind"] == "credentials"
    assert "wrong-token-4" not in caplog.text + repr(failed) + repr(raw)
    assert PROXY_TOKEN not in repr(raw_record(app, allowed, "hma"))


def test_sending_images_to_an_hma_without_its_hasher_fails_clearly(
    app: Flask, client: FlaskClient, hma: FakeHMA, token: str
) -> None:
    hma.hasher = False
    switch_on_hma(app, hma, mode="bytes")
    item_id = send_item(client, token, "h-8", jpeg(seed=38))
    assert results(app, item_id)["hma"]["verdict"] == "error"
    error = raw_record(app, item_id, "hma")["error"]
    assert error.startswith("HMA, or the proxy in front of it, refused the request (HTTP 403): ")
    assert "This instance does not hash: ROLE_HASHER is off." in error


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("index", "HMA could not answer now (HTTP 503): index not yet ready."),
        ("429", "HMA could not answer now (HTTP 429): try again later."),
        ("500", "HMA could not answer now (HTTP 500): try again later."),
        ("malformed", "HMA's answer was not JSON."),
        ("timeout", "No answer from HMA within 0.9 s."),
    ],
)
def test_a_passing_failure_is_retried_until_hma_answers(
    app: Flask,
    client: FlaskClient,
    hma: FakeHMA,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
    message: str,
) -> None:
    monkeypatch.setattr(HMAScanner, "timeout", 1.0)  # a quick test of a slow matcher
    image = jpeg(seed=39)
    hma.add("NCMEC_CSAM", pdq_of(image))
    if behaviour == "index":
        hma.index_loaded = False  # a matcher that has just started
    else:
        hma.upcoming = [behaviour]
    switch_on_hma(app, hma)
    with caplog.at_level(logging.INFO, logger="app.services.pipeline"):
        item_id = send_item(client, token, "h-9", image)
        hma.index_loaded = True
        retry_until_settled(app)  # the backoff's wait is skipped

    assert f"(attempt 1): HMAUnavailable: {message}" in caplog.text
    result = results(app, item_id)["hma"]
    assert (result["verdict"], result["attempts"], result["error"]) == ("match", 2, None)


def test_test_connection_from_the_admin_page(app: Flask, client: FlaskClient, hma: FakeHMA) -> None:
    log_in_as(app, client, "admin")
    page = "/admin/plugins/hma"

    def test_with(**fields: str) -> str:
        form = {"setting-base_url": hma.url, "setting-mode": "pdq", "from_form": "1", **fields}
        answer = client.post(
            f"{page}/test",
            data={"csrf_token": csrf_token(client, page), **form},
            headers={"HX-Request": "true"},
        )
        return answer.get_data(as_text=True)

    assert "HMA answered, but has no PDQ index yet" in test_with()
    hma.add("NCMEC_CSAM", "f" * 64)
    hma.add("STOPNCII", "0" * 64)
    assert "HMA answered: its PDQ index holds 2 hashes." in test_with()
    assert "Bank labels, line 1: write" in test_with(**{"setting-bank_labels": "csam"})
    assert "has no /m/index/status (HTTP 404)" in test_with(**{"setting-base_url": hma.url + "/x"})


def test_a_bank_exported_for_hma_is_read_by_hmas_own_exchange_code(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    pdq = pdq_of(jpeg(seed=40))
    with app.app_context():
        bank = banks.create_bank("NCMEC industry", Actor.system("test"), labels=["csam"])
        banks.add_entry(bank, "pdq", pdq, Actor.system("test"))
        banks.add_entry(bank, "md5", "d35c785545392755e7e4164457657269", Actor.system("test"))
        db.session.commit()
    exported = tmp_path / "ncmec.txt"
    done = runner.invoke(
        args=["banks", "export", "NCMEC industry", str(exported), "--format", "te"]
    )
    assert done.exit_code == 0, done.output

    # What HMA's fetcher runs for a "local_file" exchange pointed at the file.
    collab = FileCollaborationConfig(name="MODTOOLS", api="local_file", filename=str(exported))
    exchange = LocalFileSignalExchangeAPI.for_collab(collab)
    (delta,) = exchange.fetch_iter([PdqSignal], None)
    signals = exchange.naive_convert_to_signal_type([PdqSignal], collab, delta.updates)
    assert list(signals[PdqSignal]) == [pdq]  # the md5 of the file is not an HMA signal

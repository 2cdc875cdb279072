"""The signature checks against the platforms' published test vectors and reference signer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from app.services.webhooks.signatures import (
    SignatureError,
    hex_hmac_sha256,
    standard_signature,
    verify_hex_hmac,
    verify_plain_secret,
    verify_standard,
)

STANDARD_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TS = "1614265330"
STANDARD_BODY = b'{"test": 2432232314}'
STANDARD_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_discourse_published_vector() -> None:
    secret, body = "my_lovely_secret_for_web_hook", b'{"ping":"OK"}'
    expected = "sha256=162f107f6b5022353274eb1a7197885cfd35744d8d08e5bcea025d309386b7d6"
    assert hex_hmac_sha256(secret, body) == expected
    verify_hex_hmac(secret, body, expected, "X-Discourse-Event-Signature")
    verify_hex_hmac(secret, body, expected.upper().replace("SHA256", "sha256"), "x")


def test_mastodon_computed_vector() -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    body = b'{"event":"status.created","created_at":"2020-01-01T00:00:00.000Z","object":{"id":"1"}}'
    header = "sha256=0b8a424fb3feea723b2319ee490f309d2742eb2679f79f378dcf86c677edfbe7"
    verify_hex_hmac(secret, body, header, "X-Hub-Signature")


@pytest.mark.parametrize("header", [None, "", "sha256=00", "sha1=abc"])
def test_hex_hmac_refuses_missing_and_wrong(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_hex_hmac("a-secret-of-12+", b"{}", header, "X-Hub-Signature")


def test_hex_hmac_refuses_a_changed_body() -> None:
    header = hex_hmac_sha256("a-secret-of-12+", b'{"a":1}')
    with pytest.raises(SignatureError):
        verify_hex_hmac("a-secret-of-12+", b'{"a": 1}', header, "X-Hub-Signature")


def test_standard_published_vector() -> None:
    assert standard_signature(STANDARD_KEY, STANDARD_ID, STANDARD_TS, STANDARD_BODY) == STANDARD_SIG
    got = verify_standard(
        STANDARD_KEY,
        STANDARD_BODY,
        STANDARD_ID,
        STANDARD_TS,
        f"v1a,bm90IGl0 {STANDARD_SIG}",
        now=int(STANDARD_TS) + 10,
    )
    assert got == STANDARD_ID


def test_standard_matches_reference_library_signer() -> None:
    now = datetime.now(tz=UTC).replace(microsecond=0)
    body = b'{"external_id":"1","image":{"url":"https://cdn.example/a.jpg"}}'
    signature = Webhook(STANDARD_KEY).sign("msg_1", now, body.decode())
    assert verify_standard(STANDARD_KEY, body, "msg_1", str(int(now.timestamp())), signature)


def test_standard_refuses_old_future_and_forged() -> None:
    with pytest.raises(SignatureError) as old:
        verify_standard(STANDARD_KEY, STANDARD_BODY, STANDARD_ID, STANDARD_TS, STANDARD_SIG)
    assert old.value.replay
    future = int(time.time()) + 301
    sig = standard_signature(STANDARD_KEY, "m", str(future), b"{}")
    with pytest.raises(SignatureError) as ahead:
        verify_standard(STANDARD_KEY, b"{}", "m", str(future), sig)
    assert ahead.value.replay
    with pytest.raises(SignatureError) as forged:
        verify_standard(
            STANDARD_KEY, b"{}", STANDARD_ID, STANDARD_TS, STANDARD_SIG, now=int(STANDARD_TS)
        )
    assert not forged.value.replay
    with pytest.raises(SignatureError):
        verify_standard(STANDARD_KEY, b"{}", None, STANDARD_TS, STANDARD_SIG)


def test_plain_secret() -> None:
    verify_plain_secret("whsec_abc", "whsec_abc", "token field")
    for given in (None, "", "whsec_abd", "whsec_ab"):
        with pytest.raises(SignatureError):
            verify_plain_secret("whsec_abc", given, "token field")

"""Checking each platform's proof that a webhook came from it, always in constant time.

- Discourse (``X-Discourse-Event-Signature``) and Mastodon (``X-Hub-Signature``): ``sha256=`` and
  the lowercase hex HMAC-SHA256 of the raw body, keyed with the secret as typed.
- Standard Webhooks (our generic receiver): ``webhook-signature`` holds space-separated
  ``v1,<base64>`` entries, each an HMAC-SHA256 of ``id.timestamp.body`` keyed with the
  base64-decoded ``whsec_`` secret; the timestamp must be within five minutes of now.
- Misskey (``X-Misskey-Hook-Secret``) and Rocket.Chat (the ``token`` field): the secret itself.

Every check works on the bytes as received, never on re-serialised JSON, and raises
:class:`SignatureError` with a reason that is safe to log (it never contains the secret).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

STANDARD_TOLERANCE_SECONDS = 5 * 60
STANDARD_PREFIX = "whsec_"


class SignatureError(Exception):
    """The request's proof of origin is missing or wrong; ``replay`` when only its age is."""

    def __init__(self, reason: str, *, replay: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.replay = replay


def hex_hmac_sha256(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` as Discourse and Mastodon send it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hex_hmac(secret: str, body: bytes, header: str | None, name: str) -> None:
    """Check a ``sha256=<hex>`` header (``name`` is only for the message)."""
    if not header:
        raise SignatureError(f"The {name} header is missing.")
    expected = hex_hmac_sha256(secret, body)
    # Platforms send lowercase hex; accept uppercase too rather than refuse a valid signature.
    given = header.strip().lower()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError(f"The {name} signature does not match the body.")


def verify_plain_secret(secret: str, given: str | None, name: str) -> None:
    """Check a secret the platform sends as it is (Misskey's header, Rocket.Chat's token)."""
    if not given:
        raise SignatureError(f"The {name} is missing.")
    if not hmac.compare_digest(secret.encode(), given.encode()):
        raise SignatureError(f"The {name} is wrong.")


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``, decoded."""
    text = secret.removeprefix(STANDARD_PREFIX)
    try:
        # The reference library adds missing padding; so do we, to accept the same secrets.
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return secret.encode()


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(
    secret: str,
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    tolerance: int = STANDARD_TOLERANCE_SECONDS,
) -> str:
    """Check Standard Webhooks headers; returns the ``webhook-id`` to deduplicate on."""
    if not msg_id or not timestamp or not signature:
        raise SignatureError(
            "The webhook-id, webhook-timestamp and webhook-signature headers are required."
        )
    if "." in msg_id or len(msg_id) > 255:
        raise SignatureError("The webhook-id header is not a valid message id.")
    if not timestamp.isdigit():
        raise SignatureError("The webhook-timestamp header must be whole seconds since 1970.")
    expected = standard_signature(secret, msg_id, timestamp, body).encode()
    # Several entries allow key rotation; entries of other versions (v1a) are skipped.
    matched = False
    for entry in signature.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected, f"v1,{value}".encode()):
            matched = True
    if not matched:
        raise SignatureError("No v1 entry of webhook-signature matches the body.")
    # Checked after the signature, so only a genuine message is ever called a replay.
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise SignatureError(
            "The webhook-timestamp is more than five minutes from our clock: an old message "
            "sent again, or a clock that is wrong (check NTP on both servers).",
            replay=True,
        )
    return msg_id

"""Calling a Hasher-Matcher-Actioner (HMA 1.x, Meta's ``OpenMediaMatch``) matcher over HTTP.

``GET /m/lookup?signal_type=pdq&signal=<hash>`` answers ``{"<BANK>": [{"bank_content_id": 1,
"distance": "4"}]}`` (distances are strings; ``{}`` when nothing matched); ``POST /m/lookup``
with the image as the multipart field ``photo`` (needs HMA's hasher role too) answers
``{"pdq": {"<BANK>": [...]}}``, or ``{"pdq": ""}`` when the picture was too flat to hash.
Errors are ``{"message": …}``. HMA has no authentication of its own; sites put a reverse proxy
in front of it, hence the optional header. The contract is in ``shared/reference/hma.md`` §2.

``HMAUnavailable`` is worth retrying (network, index not loaded yet, 5xx); ``HMARefused`` is not
(the header, the address, a setting, an image HMA cannot hash): the scan ends at once with
verdict ``error``, the reason and its ``error_kind`` in the raw record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from app.plugins import ScanOutcome

CONNECT_TIMEOUT = 5.0


class HMAUnavailable(Exception):
    """HMA could not answer now (network, index not loaded yet, its own error): try again."""


class HMARefused(Exception):
    """HMA (or the proxy in front of it) refused, or cannot hash this image: do not retry.

    ``kind`` says what to fix: ``credentials``, ``settings``, ``request`` or ``image``.
    """

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.status = kind, status

    def outcome(self, sent: str) -> ScanOutcome:
        """The final ``error`` outcome that records this refusal; the pipeline does not retry."""
        raw = {"error": str(self), "error_kind": self.kind, "http_status": self.status}
        return ScanOutcome("error", raw={"sent": sent, **raw})


def lookup_hash(
    base_url: str, pdq: str, params: Mapping[str, str], headers: Mapping[str, str], timeout: float
) -> Any:
    """Look our PDQ hash up; HMA's answer (banks to matches)."""
    query = {"signal_type": "pdq", "signal": pdq, **params}
    return call("GET", base_url, "/m/lookup", headers, timeout, params=query)


def lookup_image(
    base_url: str,
    data: bytes,
    mime: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    timeout: float,
) -> Any:
    """Send the image for HMA to hash and look up; its answer (signal types to banks)."""
    photo = {"photo": ("image." + mime.rsplit("/", 1)[-1], data, mime)}
    return call("POST", base_url, "/m/lookup", headers, timeout, params=params, files=photo)


def index_status(base_url: str, headers: Mapping[str, str], timeout: float) -> Any:
    """HMA's matcher index status per signal type (``GET /m/index/status``)."""
    return call("GET", base_url, "/m/index/status", headers, timeout)


def call(
    method: str,
    base_url: str,
    path: str,
    headers: Mapping[str, str],
    timeout: float,
    **request: Any,
) -> Any:
    """One request to HMA; its JSON answer, or the exception saying what went wrong."""
    url = base_url.rstrip("/") + path
    read_timeout = round(timeout * 0.9, 2)  # under the deadline: our message wins the race
    with requests.Session() as session:
        session.headers.update({"Accept": "application/json", **headers})
        try:
            reply = session.request(
                method, url, timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout), **request
            )
        except requests.Timeout:
            raise HMAUnavailable(f"No answer from HMA within {read_timeout:g} s.") from None
        except requests.ConnectionError as error:
            reason = str(error).rsplit(": ", 1)[-1].rstrip(")'\"")[:200]
            raise HMAUnavailable(
                f"Could not connect to HMA at {urlsplit(url).netloc}: {reason}."
            ) from None
    if reply.status_code >= 400:
        raise _error(reply, path, image_sent="files" in request)
    try:
        return reply.json()
    except ValueError:
        raise HMAUnavailable("HMA's answer was not JSON.") from None


def _error(reply: requests.Response, path: str, *, image_sent: bool) -> Exception:
    """The exception for an error answer, with HMA's ``message`` (it never holds secrets)."""
    status = reply.status_code
    try:
        body = reply.json()
    except ValueError:
        body = None
    # HMA's errors are JSON; /status answers in plain text; a proxy's HTML page says nothing.
    plain = reply.headers.get("Content-Type", "").startswith("text/plain")
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    message = (message or (reply.text.strip() if plain else ""))[:300]
    said = f": {message.rstrip('.')}." if message else "."
    if status in (401, 403):
        return HMARefused(
            f"HMA, or the proxy in front of it, refused the request (HTTP {status}){said} "
            "Check the authentication header settings; looking up images needs HMA's hasher "
            "role as well as its matcher.",
            "credentials",
            status,
        )
    if status == 404:
        return HMARefused(
            f"HMA has no {path} (HTTP 404). Check the address and that HMA runs its matcher.",
            "settings",
            status,
        )
    if status in (408, 429) or status >= 500:
        return HMAUnavailable(f"HMA could not answer now (HTTP {status}){said}")
    if image_sent and status in (400, 413, 415, 422):
        return HMARefused(f"HMA could not hash this image (HTTP {status}){said}", "image", status)
    return HMARefused(f"HMA refused the request (HTTP {status}){said}", "request", status)

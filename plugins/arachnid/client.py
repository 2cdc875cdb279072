"""Calling the Arachnid Shield API of the Canadian Centre for Child Protection (C3P).

Three ways to ask, all ``POST`` with HTTP Basic authentication: ``/v1/media/`` (the image's
bytes as the body, with its type), ``/v1/url/`` (``{"url": …}``: Shield fetches it) and
``/v1/pdq/`` (``{"hashes": [<base64 PDQ>]}``: only the hash leaves the server). Errors carry
``{"detail": …}``. The contract is in ``shared/reference/vendor-apis.md`` section 3.

``ArachnidUnavailable`` is worth retrying (network, rate limit, 5xx); ``ArachnidRefused`` is
not (the credentials, a request Shield cannot take, an image or URL host it will not scan): the
scan ends at once with verdict ``error``, the reason and its ``error_kind`` in the raw record.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import requests

from app.plugins import ScanOutcome

DEFAULT_BASE_URL = "https://shield.projectarachnid.com/"
CONNECT_TIMEOUT = 5.0
NO_MATCH = "no-known-match"
IMAGE_STATUSES = {400, 413, 415, 422}  # for media and URLs: this image, not the request


class ArachnidUnavailable(Exception):
    """Arachnid Shield could not answer now (network, rate limit, its own error): try again."""


class ArachnidRefused(Exception):
    """Arachnid Shield refused, or will not scan this image: retrying cannot help.

    ``kind`` says what to fix: ``credentials``, ``request``, ``image`` or ``url`` (the host).
    """

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.status = kind, status

    def outcome(self, sent: str) -> ScanOutcome:
        """The final ``error`` outcome that records this refusal; the pipeline does not retry."""
        raw = {"error": str(self), "error_kind": self.kind, "http_status": self.status}
        return ScanOutcome("error", raw={"sent": sent, **raw})


def pdq_as_base64(pdq_hex: str) -> str:
    """Our PDQ hash (64 hex digits) as Shield wants it: the 32 bytes, base64-encoded."""
    return base64.b64encode(bytes.fromhex(pdq_hex)).decode("ascii")


def scan_media(
    base_url: str, credentials: tuple[str, str], data: bytes, mime: str, timeout: float
) -> dict[str, Any]:
    """Send the image's bytes; Shield's ``ScannedMedia`` answer."""
    headers = {"Content-Type": mime}
    return _post(base_url, "v1/media/", credentials, timeout, data=data, headers=headers)


def scan_url(
    base_url: str, credentials: tuple[str, str], url: str, timeout: float
) -> dict[str, Any]:
    """Ask Shield to fetch and scan ``url``; its ``ScannedMedia`` answer."""
    return _post(base_url, "v1/url/", credentials, timeout, json={"url": url})


def scan_pdq(
    base_url: str, credentials: tuple[str, str], hashes: list[str], timeout: float
) -> dict[str, Any]:
    """Look base64 PDQ hashes up; Shield's ``ScannedPDQHashes`` answer."""
    return _post(base_url, "v1/pdq/", credentials, timeout, json={"hashes": hashes})


def _post(
    base_url: str, path: str, credentials: tuple[str, str], timeout: float, **body: Any
) -> dict[str, Any]:
    url = base_url.rstrip("/") + "/" + path  # the trailing slash is part of Shield's paths
    read_timeout = round(timeout * 0.9, 2)  # under the deadline: our message wins the race
    with requests.Session() as session:
        session.auth = credentials
        session.headers["Accept"] = "application/json"
        try:
            reply = session.post(
                url, timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout), **body
            )
        except requests.Timeout:
            raise ArachnidUnavailable(
                f"No answer from Arachnid Shield within {read_timeout:g} s."
            ) from None
        except requests.ConnectionError as error:
            reason = str(error).rsplit(": ", 1)[-1].rstrip(")'\"")[:200]
            raise ArachnidUnavailable(
                f"Could not connect to Arachnid Shield at {urlsplit(url).hostname}: {reason}."
            ) from None
    if reply.status_code >= 400:
        raise _error(reply, image_request=path != "v1/pdq/")
    try:
        answer = reply.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ArachnidUnavailable("Arachnid Shield's answer was not the JSON object it documents.")
    return answer


def _error(reply: requests.Response, *, image_request: bool) -> Exception:
    """The exception for an error answer, with Shield's ``detail`` (it never holds secrets)."""
    status = reply.status_code
    try:
        detail = str(reply.json().get("detail") or "")[:300]
    except (ValueError, AttributeError):
        detail = ""
    said = f": {detail.rstrip('.')}." if detail else "."
    if status == 401:
        return ArachnidRefused(
            f"Arachnid Shield refused the API username or password (HTTP 401){said} "
            "Check them in the Arachnid Shield settings.",
            "credentials",
            status,
        )
    if "hostname not authorized" in detail.lower():
        return ArachnidRefused(
            f"Arachnid Shield may not fetch images from this URL's host (HTTP {status}){said} "
            "Ask C3P to authorise the host, or switch to sending bytes or PDQ hashes.",
            "url",
            status,
        )
    if status in (408, 429) or status >= 500:
        wait = reply.headers.get("Retry-After")
        asks = f" It asks to wait {wait} s." if wait else ""
        return ArachnidUnavailable(
            f"Arachnid Shield could not answer now (HTTP {status}){said}{asks}"
        )
    if image_request and status in IMAGE_STATUSES:
        message = f"Arachnid Shield cannot scan this image (HTTP {status}){said}"
        return ArachnidRefused(message, "image", status)
    kind = "credentials" if status == 403 else "request"
    return ArachnidRefused(
        f"Arachnid Shield refused the request (HTTP {status}){said}", kind, status
    )

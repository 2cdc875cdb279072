"""Calling Microsoft PhotoDNA Cloud Service's ``Match`` operation, and what its answers mean.

PhotoDNA answers HTTP 200 even when it could not process a request: the outcome is the body's
``Status.Code`` (3000 is OK). The gateway in front of it (Azure API Management) answers 401, 403
and 429 itself, with ``{"statusCode", "message"}``. The contract is in
``shared/reference/vendor-apis.md`` section 1.

Failures are sorted by what retrying can do: ``PhotoDNAUnavailable`` (network, rate limit,
quota, 5xx: the pipeline tries again with backoff) and ``PhotoDNARefused`` (the key, the request,
or an image PhotoDNA cannot judge: the scan ends at once with verdict ``error``, as the other
vendor scanners' refusals do, with the reason and its ``error_kind`` in the raw record).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import requests

from app.plugins import ScanOutcome

DEFAULT_BASE_URL = "https://api.microsoftmoderator.com/photodna/v1.0/"
CONNECT_TIMEOUT = 5.0
OK = 3000
# Codes that are about this image: PhotoDNA answered, but cannot judge it.
IMAGE_PROBLEMS = {
    3206: "PhotoDNA could not read the file as an image (3206)",
    3208: "The image is outside PhotoDNA's limits: at least 160×160 pixels, at most 4 MB (3208)",
    3209: "The image is larger than PhotoDNA accepts in one request (3209)",
}
# Codes that are about the request: the same request will fail the same way.
REQUEST_PROBLEMS = {
    3002: "PhotoDNA says a request parameter is invalid or missing (3002)",
}


class PhotoDNAUnavailable(Exception):
    """PhotoDNA could not answer now (network, rate limit, quota, its own error): try again."""


class PhotoDNARefused(Exception):
    """PhotoDNA refused, or cannot judge this image: retrying cannot help.

    ``kind`` says what to fix: ``credentials`` (the key), ``request`` or ``image``.
    """

    def __init__(
        self, message: str, kind: str, status: int | None = None, answer: Any = None
    ) -> None:
        super().__init__(message)
        self.kind, self.status, self.answer = kind, status, answer

    def outcome(self, sent: dict[str, Any]) -> ScanOutcome:
        """The final ``error`` outcome that records this refusal; the pipeline does not retry."""
        raw = {"error": str(self), "error_kind": self.kind, "http_status": self.status}
        return ScanOutcome("error", raw={**sent, **raw, "response": self.answer})


def inline_request(data: bytes) -> dict[str, str]:
    """The body of a Match request carrying the image itself, base64-encoded."""
    return {"DataRepresentation": "inline", "Value": base64.b64encode(data).decode("ascii")}


def url_request(url: str) -> dict[str, str]:
    """The body of a Match request that asks PhotoDNA to fetch the image from ``url``."""
    return {"DataRepresentation": "URL", "Value": url}


def match(
    base_url: str, key: str, body: dict[str, str], *, enhance: bool, timeout: float
) -> dict[str, Any]:
    """POST one Match request; PhotoDNA's answer when its status is OK, else raise."""
    url = base_url.rstrip("/") + "/Match"
    # A little under the scanner's deadline, so our own clear message wins the race.
    read_timeout = round(timeout * 0.9, 2)
    with requests.Session() as session:
        session.headers.update({"Ocp-Apim-Subscription-Key": key, "Accept": "application/json"})
        try:
            reply = session.post(
                url,
                json=body,
                params={"enhance": "true"} if enhance else None,
                timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout),
            )
        except requests.Timeout:
            raise PhotoDNAUnavailable(
                f"No answer from PhotoDNA within {read_timeout:g} s."
            ) from None
        except requests.ConnectionError as error:
            host = urlsplit(url).hostname
            raise PhotoDNAUnavailable(
                f"Could not connect to PhotoDNA at {host}: {_reason(error)}."
            ) from None
    _check_http_status(reply)
    answer = _json(reply)
    code = _status_code(answer)
    if code == OK:
        return answer
    if code is None:
        raise PhotoDNAUnavailable("PhotoDNA's answer has no Status code.")
    if code in IMAGE_PROBLEMS:
        raise PhotoDNARefused(IMAGE_PROBLEMS[code] + ".", "image", 200, answer)
    description = str(answer["Status"].get("Description") or "")[:200]
    if code in REQUEST_PROBLEMS:
        raise PhotoDNARefused(f"{REQUEST_PROBLEMS[code]}: {description}", "request", 200, answer)
    # 3004 ("unknown scenario or unhandled error") and codes we do not know: PhotoDNA's side.
    raise PhotoDNAUnavailable(f"PhotoDNA could not process the request ({code}: {description}).")


def _check_http_status(reply: requests.Response) -> None:
    status = reply.status_code
    if status == 200:
        return
    message = _gateway_message(reply)
    if status == 401:
        raise PhotoDNARefused(
            "PhotoDNA refused the subscription key (HTTP 401). Check the key in the PhotoDNA "
            f"settings and that its subscription is active. {message}".rstrip(),
            "credentials",
            status,
        )
    if status == 403 and "quota" in message.lower():
        raise PhotoDNAUnavailable(
            f"PhotoDNA's call volume quota is used up (HTTP 403): {message} Ask Microsoft for "
            "a larger quota, or wait until it is replenished."
        )
    if status == 429:
        wait = reply.headers.get("Retry-After")
        asks = f" It asks to wait {wait} s." if wait else ""
        raise PhotoDNAUnavailable(
            f"PhotoDNA's rate limit was exceeded (HTTP 429).{asks} {message}".rstrip()
        )
    if status >= 500 or status == 408:
        raise PhotoDNAUnavailable(f"PhotoDNA is having trouble (HTTP {status}). {message}".rstrip())
    kind = "credentials" if status == 403 else "request"
    raise PhotoDNARefused(
        f"PhotoDNA refused the request (HTTP {status}). {message}".rstrip(), kind, status
    )


def _gateway_message(reply: requests.Response) -> str:
    """The gateway's ``message``, if the body has one: it says what was wrong, never the key."""
    try:
        body = reply.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:300] if message else ""


def _json(reply: requests.Response) -> dict[str, Any]:
    try:
        answer = reply.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise PhotoDNAUnavailable("PhotoDNA's answer was not the JSON object it documents.")
    return answer


def _status_code(answer: dict[str, Any]) -> int | None:
    status = answer.get("Status")
    code = status.get("Code") if isinstance(status, dict) else None
    return code if isinstance(code, int) else None


def _reason(error: requests.ConnectionError) -> str:
    # requests nests the socket error a few levels down; its last words are the useful ones.
    return str(error).rsplit(": ", 1)[-1].rstrip(")'\"")[:200] or type(error).__name__

"""Why a fetch failed, in words an admin can act on, with no secret in them.

The library's exceptions carry request URLs, and ThreatExchange puts its access token in the
query string; NCMEC parse errors carry whole responses. So the message is built from what we
know (HTTP status, host, the vendor's own short error text) and then scrubbed: query strings are
cut from every URL and every credential value is replaced, whatever the message says.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

import dacite
import requests

from app.services.fetch import FetchError

URL_QUERY = re.compile(r"(https?://[^\s?#'\"<>]+)[?#][^\s'\"<>]*")
MAX_DETAIL = 200
CREDENTIALS_HINT = "Check the credentials on this exchange's page."
UNREADABLE = (
    json.JSONDecodeError,
    requests.exceptions.JSONDecodeError,
    ET.ParseError,
    dacite.DaciteError,
    KeyError,
    TypeError,
    AttributeError,
)


def describe_error(error: BaseException, secrets: list[str]) -> str:
    """A one-paragraph account of ``error`` that never contains a value from ``secrets``."""
    return scrub(_describe(error), secrets)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` without URL query strings and without any of ``secrets``."""
    text = URL_QUERY.sub(r"\1?…", text)
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    return text[:2000]


def _describe(error: BaseException) -> str:
    # Here, not at the top: the library is loaded by the fetch that failed, not at start-up.
    from threatexchange.exchanges.auth import (
        SignalExchangeAPIInvalidAuthException,
        SignalExchangeAPIMissingAuthException,
    )

    if isinstance(error, requests.HTTPError) and error.response is not None:
        return _http_error(error.response)
    host = _host(getattr(getattr(error, "request", None), "url", None))
    if isinstance(error, requests.exceptions.RetryError):
        return (
            f"{host} kept answering with errors (HTTP 429 or 5xx) after retries; the next "
            "scheduled fetch tries again."
        )
    if isinstance(error, requests.Timeout):
        return f"{host} did not answer in time; the next scheduled fetch tries again."
    if isinstance(error, requests.ConnectionError):
        return f"Could not connect to {host}; check the server address and this server's network."
    if isinstance(error, FetchError):
        return f"The hash list could not be fetched: {error.message}"
    if isinstance(error, SignalExchangeAPIInvalidAuthException):
        return f"{error.message}. {CREDENTIALS_HINT}"
    if isinstance(error, SignalExchangeAPIMissingAuthException):
        return f"Credentials are missing. {CREDENTIALS_HINT}"
    if isinstance(error, UNREADABLE) or str(error).startswith("Failed to parse response"):
        return (
            "The exchange answered with something we could not read "
            f"({type(error).__name__}); the next scheduled fetch tries again."
        )
    if isinstance(error, ValueError | OSError):
        return str(error)
    return f"{type(error).__name__}: {str(error)[:MAX_DETAIL]}"


def _http_error(response: requests.Response) -> str:
    status, host = response.status_code, _host(response.url)
    detail = _vendor_message(response)
    said = f" ({detail})" if detail else ""
    if status in (401, 403) or (status < 500 and "OAuthException" in detail):
        return f"{host} refused the credentials: HTTP {status}{said}. {CREDENTIALS_HINT}"
    if status == 429:
        return f"{host} asked us to slow down (HTTP 429); the next scheduled fetch tries again."
    if status >= 500:
        return (
            f"{host} had a server error (HTTP {status}){said}; the next scheduled fetch "
            "tries again."
        )
    return f"{host} refused the request: HTTP {status}{said}."


def _vendor_message(response: requests.Response) -> str:
    """The short error text vendors put in their JSON bodies, if any."""
    try:
        body: Any = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):  # Graph API: {"error": {"message", "type", "code"}}
            parts = [str(inner.get(key)) for key in ("code", "type", "message") if inner.get(key)]
            return ": ".join(parts)[:MAX_DETAIL]
        for key in ("message", "detail", "error", "non_field_errors"):
            if body.get(key):
                value = body[key]
                return (" ".join(map(str, value)) if isinstance(value, list) else str(value))[
                    :MAX_DETAIL
                ]
    return ""


def _host(url: str | None) -> str:
    return (urlsplit(url).netloc or "The exchange") if url else "The exchange"

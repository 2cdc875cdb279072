"""A fake Arachnid Shield API (vendor-apis.md §3 and §9.3), as C3P's SDKs use it.

It checks HTTP Basic credentials, the trailing-slash paths, a media body with an image or video
``Content-Type``, ``{"url": …}`` with an authorised host, and ``{"hashes": [...]}`` of base64
32-byte PDQ hashes; errors are ``{"detail": …}``. Media get their real SHA-256 (hex, upper case)
and SHA-1 (base32); a known SHA-256 is an ``exact`` match, a known PDQ within 31 bits a ``near``
one with its distance.

Behaviours for ``upcoming``: ``timeout``, ``429`` (with ``Retry-After``), ``429-bare``, ``500``,
``503``, ``malformed``, ``pdq-null`` (the PDQ answer's value is ``null``, as the SDK allows).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response, malformed_json

USERNAME, PASSWORD = "shield-user", "shield-pass-0b7e"
NO_MATCH = "no-known-match"
PDQ_THRESHOLD = 31


def media_hashes(data: bytes) -> dict[str, Any]:
    """The hashes Shield reports of a scanned file."""
    return {
        "sha256_hex": hashlib.sha256(data).hexdigest().upper(),
        "sha1_base32": base64.b32encode(hashlib.sha1(data).digest()).decode(),
        "size_bytes": len(data),
    }


class FakeArachnid(FakeService):
    """Shield's three scan endpoints with registries of known media, URLs and PDQ hashes."""

    def __init__(self) -> None:
        super().__init__()
        self.known_media: dict[str, str] = {}  # SHA-256 (hex, lower) → classification
        self.near_media: dict[str, str] = {}  # SHA-256 of a visually similar copy → class
        self.known_pdq: dict[str, str] = {}  # PDQ (hex) → classification
        self.known_urls: dict[str, str] = {}
        self.authorised_hosts = {"127.0.0.1"}

    def answer(self, request: Request) -> Response:
        """Authentication first, then the endpoint."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return self.error(
                401, "Please supply your API username and password in the Authorization header"
            )
        if (auth.username, auth.password) != (USERNAME, PASSWORD):
            return self.error(401, "Invalid username/password.")
        if behaviour in ("429", "429-bare"):
            headers = {"Retry-After": "2"} if behaviour == "429" else {}
            return json_response({"detail": "Request was throttled."}, 429, headers)
        if behaviour in ("500", "503"):
            return self.error(int(behaviour), "Service temporarily unavailable.")
        if behaviour == "malformed":
            return malformed_json()
        endpoints = {"/v1/media/": self.media, "/v1/url/": self.url_scan, "/v1/pdq/": self.pdq}
        endpoint = endpoints.get(request.path)
        if endpoint is None or request.method != "POST":
            return self.error(404, "Not found.")
        return endpoint(request, behaviour)

    def media(self, request: Request, behaviour: str | None) -> Response:
        """``POST /v1/media/``: the raw file, typed by its ``Content-Type``."""
        if not request.mimetype.startswith(("image/", "video/")):
            return self.error(415, f'Unsupported media type "{request.mimetype}" in request.')
        data = request.get_data()
        if not data:
            return self.error(400, "The request body is empty.")
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.near_media:
            return self.near(data, self.near_media[digest])
        return self.scanned(data, self.known_media.get(digest))

    def url_scan(self, request: Request, behaviour: str | None) -> Response:
        """``POST /v1/url/``: ``{"url": …}``; the host must be authorised for the account."""
        body = request.get_json(silent=True) if request.mimetype == "application/json" else None
        url = body.get("url") if isinstance(body, dict) else None
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            return self.error(400, "Enter a valid URL.")
        if parts.hostname not in self.authorised_hosts:
            return self.error(403, "Hostname not authorized for this user")
        return self.scanned(url.encode(), self.known_urls.get(url))

    def pdq(self, request: Request, behaviour: str | None) -> Response:
        """``POST /v1/pdq/``: ``{"hashes": [<base64 of 32 bytes>, …]}``."""
        body = request.get_json(silent=True) if request.mimetype == "application/json" else None
        hashes = body.get("hashes") if isinstance(body, dict) else None
        if not isinstance(hashes, list) or not hashes:
            return self.error(400, "hashes: This field is required.")
        scanned: dict[str, Any] = {}
        for query in hashes:
            try:
                raw = base64.b64decode(str(query), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                return self.error(400, f"Invalid PDQ hash: {str(query)[:60]}")
            scanned[query] = None if behaviour == "pdq-null" else self.pdq_match(raw.hex())
        return json_response({"scanned_hashes": scanned})

    def pdq_match(self, query: str) -> dict[str, Any]:
        """The nearest known PDQ hash within the threshold, as a ``PDQMatch``."""
        found = [
            (bin(int(query, 16) ^ int(known, 16)).count("1"), known, classification)
            for known, classification in self.known_pdq.items()
        ]
        near = sorted(item for item in found if item[0] <= PDQ_THRESHOLD)
        if not near:
            return {"classification": NO_MATCH, "match_type": None, "near_match_details": None}
        distance, known, classification = near[0]
        detail = {"timestamp": 0.0, **media_hashes(bytes.fromhex(known))}
        detail.pop("size_bytes")
        detail.update(classification=classification, distance=distance)
        return {
            "classification": classification,
            "match_type": "near",
            "near_match_details": detail,
        }

    def scanned(self, data: bytes, classification: str | None) -> Response:
        """A ``ScannedMedia`` answer: an exact match when the file is known."""
        return json_response(
            {
                **media_hashes(data),
                "classification": classification or NO_MATCH,
                "match_type": "exact" if classification else None,
                "near_match_details": [],
            }
        )

    def near(self, data: bytes, classification: str) -> Response:
        """A ``ScannedMedia`` near match: the known file is another one (a re-encoded copy)."""
        known = media_hashes(data[::-1])  # stands in for the original in Shield's database
        detail = {"timestamp": 0.0, "sha1_base32": known["sha1_base32"]}
        detail.update(sha256_hex=known["sha256_hex"], classification=classification)
        return json_response(
            {
                **media_hashes(data),
                "classification": classification,
                "match_type": "near",
                "near_match_details": [detail],
            }
        )

    def error(self, status: int, detail: str) -> Response:
        """Shield's error shape."""
        return json_response({"detail": detail}, status)

"""A fake Microsoft PhotoDNA Cloud Service ``Match`` endpoint (vendor-apis.md §1 and §9.1).

It checks what the real service documents: the subscription key header, a JSON body with
``DataRepresentation`` ``inline`` (base64 ``Value``) or ``URL`` (an absolute URL), images that
decode and are at least 160×160 pixels and at most 4 MB. Like the real one it answers HTTP 200
for everything it processed and puts the outcome in ``Status.Code``; the gateway's 401, 403 and
429 come as ``{"statusCode", "message"}``. Matches are exact, by the SHA-256 of the image or by
URL: a fake needs no perceptual hash to be deterministic.

Behaviours for ``upcoming``: ``timeout``, ``429`` (with ``Retry-After``), ``429-bare``,
``quota`` (403), ``500``, ``malformed``, ``3004``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import uuid
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError
from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response, malformed_json

KEY = "pdna-test-key-5c1e9a"
MATCH_PATH = "/photodna/v1.0/Match"
SAMPLE_MATCHES = "https://pdnasampleimages.blob.core.windows.net/matchedimages/"
MIN_SIDE, MAX_BYTES = 160, 4 * 1024 * 1024
DESCRIPTIONS = {
    3000: "OK",
    3002: "Invalid or missing request parameter(s)",
    3004: "Unknown scenario or unhandled error occurred while processing request",
    3206: "The file could not be verified as an image",
    3208: "Image size in pixels is not within allowed range",
}


def match_flag(
    source: str = "Test", violations: tuple[str, ...] = ("A1",), distance: int = 179
) -> dict[str, Any]:
    """One ``MatchFlags`` entry, shaped as the documented example."""
    return {
        "AdvancedInfo": [{"Key": "MatchId", "Value": "7469692"}],
        "Source": source,
        "Violations": list(violations),
        "MatchDistance": distance,
    }


class FakePhotoDNA(FakeService):
    """PhotoDNA's Match operation with a registry of known images and URLs."""

    def __init__(self, key: str = KEY) -> None:
        super().__init__()
        self.key = key
        self.known_images: dict[str, list[dict[str, Any]]] = {}  # SHA-256 → match flags
        self.known_urls: dict[str, list[dict[str, Any]]] = {}

    @property
    def base_url(self) -> str:
        """What the plugin's ``base_url`` setting points at."""
        return self.url + "/photodna/v1.0/"

    def add_known_image(self, data: bytes, *flags: dict[str, Any]) -> None:
        """Make ``data`` match, with these flags (one ``Test`` A1 flag by default)."""
        self.known_images[hashlib.sha256(data).hexdigest()] = list(flags) or [match_flag()]

    def answer(self, request: Request) -> Response:
        """Gateway checks first (path, key, limits), then the Match operation itself."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        if request.path != MATCH_PATH or request.method != "POST":
            return json_response({"statusCode": 404, "message": "Resource not found"}, 404)
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.key:
            return json_response(
                {
                    "statusCode": 401,
                    "message": "Access denied due to invalid subscription key. Make sure to "
                    "provide a valid key for an active subscription.",
                },
                401,
            )
        if behaviour in ("429", "429-bare"):
            message = "Rate limit is exceeded. Try again in 1 seconds."
            headers = {"Retry-After": "1"} if behaviour == "429" else {}
            return json_response({"statusCode": 429, "message": message}, 429, headers)
        if behaviour == "quota":
            message = "Out of call volume quota. Quota will be replenished in 2.01:13:14."
            return json_response({"statusCode": 403, "message": message}, 403)
        if behaviour == "500":
            return Response("Internal Server Error", 500, content_type="text/plain")
        if behaviour == "malformed":
            return malformed_json()
        if behaviour == "3004":
            return self.reply(3004)
        return self.match(request)

    def match(self, request: Request) -> Response:
        """The Match operation on a JSON body."""
        if request.args.get("enhance", "true").lower() not in ("true", "false", ""):
            return self.reply(3002)
        if request.mimetype != "application/json":
            return self.reply(3002)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("Value"), str):
            return self.reply(3002)
        kind, value = body.get("DataRepresentation"), body["Value"]
        if kind == "URL":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return self.reply(3002)
            flags = self.known_urls.get(value)
            if flags is None and value.startswith(SAMPLE_MATCHES):
                flags = [match_flag()]
            return self.reply(3000, flags or [])
        if kind != "inline":
            return self.reply(3002)
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return self.reply(3002)
        problem = image_problem(data)
        if problem:
            return self.reply(problem)
        return self.reply(3000, self.known_images.get(hashlib.sha256(data).hexdigest(), []))

    def reply(self, code: int, flags: list[dict[str, Any]] | None = None) -> Response:
        """The documented Match response, HTTP 200 whatever the code."""
        flags = flags or []
        return json_response(
            {
                "Status": {"Code": code, "Description": DESCRIPTIONS[code], "Exception": None},
                "ContentId": None,
                "IsMatch": bool(flags),
                "MatchDetails": {"AdvancedInfo": [], "MatchFlags": flags},
                "XPartnerCustomerId": None,
                "TrackingId": f"WUS_{uuid.uuid4().hex}",
                "EvaluateResponse": None,
            }
        )


def image_problem(data: bytes) -> int | None:
    """3206 for what is not an image of an accepted type, 3208 for one out of range."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError):
        return 3206
    if kind not in ("GIF", "JPEG", "PNG", "BMP", "TIFF"):
        return 3206
    if width < MIN_SIDE or height < MIN_SIDE or len(data) > MAX_BYTES:
        return 3208
    return None

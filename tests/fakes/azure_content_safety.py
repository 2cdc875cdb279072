"""A fake Azure AI Content Safety ``image:analyze`` (vendor-apis.md §6c).

It checks what Microsoft documents: ``POST /contentsafety/image:analyze`` with a GA
``api-version`` (an unknown one is 404), the ``Ocp-Apim-Subscription-Key`` header (401 with the
gateway's message otherwise), a JSON body with ``image.content`` (base64) or ``image.blobUrl``,
``categories`` among Hate, SelfHarm, Sexual, Violence, and ``outputType`` FourSeverityLevels (the
only one images support). Images must decode, be 50 to 7200 pixels a side and at most 4 MB.
Errors are Azure.Core ``{"error": {"code", "message"}}`` with an ``x-ms-error-code`` header.

Tests script ``severities`` (``{"Violence": 4}``). Behaviours: ``timeout``, ``429``, ``500``.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image, UnidentifiedImageError
from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

KEY = "azure-content-safety-key-6f0b"
API_VERSIONS = ("2023-10-01", "2024-09-01")
CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


class FakeContentSafety(FakeService):
    """Analyze Image, answering the scripted severity per category (0 by default)."""

    def __init__(self) -> None:
        super().__init__()
        self.severities: dict[str, int] = {}

    def answer(self, request: Request) -> Response:
        """Path and version, key, scripted behaviour, body, then the analysis."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        if request.path != "/contentsafety/image:analyze" or request.method != "POST":
            return azure_error(404, "404", "Resource not found")
        if request.args.get("api-version") not in API_VERSIONS:
            return azure_error(404, "404", "Resource not found")
        if request.headers.get("Ocp-Apim-Subscription-Key") != KEY:
            return azure_error(401, "401", DENIED)
        if behaviour == "429":
            return azure_error(429, "TooManyRequests", "Rate limit is exceeded.")
        if behaviour == "500":
            return azure_error(500, "InternalServerError", "An internal error occurred.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("image"), dict):
            return azure_error(400, "InvalidRequestBody", "The image field is required.")
        categories = body.get("categories") or list(CATEGORIES)
        if any(category not in CATEGORIES for category in categories):
            return azure_error(400, "InvalidRequestBody", "Unknown category.")
        if body.get("outputType", "FourSeverityLevels") != "FourSeverityLevels":
            return azure_error(400, "InvalidRequestBody", "Images support FourSeverityLevels.")
        problem = check_image(body["image"])
        if problem:
            return problem
        analysis = [
            {"category": category, "severity": self.severities.get(category, 0)}
            for category in categories
        ]
        return json_response({"categoriesAnalysis": analysis})


def check_image(image: dict[str, Any]) -> Response | None:
    """The error for an image Content Safety will not analyse, or None."""
    if "blobUrl" in image:
        return None
    try:
        data = base64.b64decode(image.get("content") or "", validate=True)
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        return azure_error(400, "InvalidImageFormat", "The image format is not supported.")
    if len(data) > 4 * 1024 * 1024 or not (min(width, height) >= 50 and max(width, height) <= 7200):
        return azure_error(400, "InvalidImageSize", "Image size must be 50x50 to 7200x7200.")
    return None


def azure_error(status: int, code: str, message: str) -> Response:
    """An Azure.Core error response with its ``x-ms-error-code`` header."""
    body = {"error": {"code": code, "message": message, "details": [], "innererror": None}}
    return json_response(body, status, {"x-ms-error-code": code})

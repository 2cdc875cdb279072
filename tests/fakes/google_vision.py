"""A fake Google Cloud Vision ``images:annotate`` with SafeSearch (vendor-apis.md §6b).

It checks the API key (``X-Goog-Api-Key`` header or ``?key=``), the JSON body (``requests[]``
with ``image.content`` base64 or ``image.source.imageUri``, and a ``SAFE_SEARCH_DETECTION``
feature) and that content decodes as an image. Answers as Google does: a bad key is HTTP 400
``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``; an unreadable image is HTTP 200 with a
per-image ``error`` (google.rpc.Status). Tests script ``likelihoods`` (``{"adult": "LIKELY"}``).

Behaviours for ``upcoming``: ``timeout``, ``429`` (``RESOURCE_EXHAUSTED``), ``503``
(``UNAVAILABLE``), ``image-unavailable`` (a per-image error with code 14), ``bad-image``
(code 3, as for bytes that are no image).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image, UnidentifiedImageError
from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

KEY = "AIza-fake-google-key-19d2"
FIELDS = ("adult", "spoof", "medical", "violence", "racy")


class FakeGoogleVision(FakeService):
    """``POST /v1/images:annotate`` answering SafeSearch likelihoods."""

    def __init__(self) -> None:
        super().__init__()
        self.likelihoods: dict[str, str] = {}

    def answer(self, request: Request) -> Response:
        """Key first, then the scripted behaviour, then the annotation."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        if request.method != "POST" or request.path != "/v1/images:annotate":
            return status_error(404, "NOT_FOUND", "Method not found.")
        key = request.headers.get("X-Goog-Api-Key") or request.args.get("key")
        if not key:
            return status_error(403, "PERMISSION_DENIED", "The request is missing a valid API key.")
        if key != KEY:
            return status_error(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                reason="API_KEY_INVALID",
            )  # fmt: skip
        if behaviour == "429":
            return status_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric.")
        if behaviour == "503":
            return status_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        body = request.get_json(silent=True)
        entries = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not 1 <= len(entries) <= 16:
            return status_error(400, "INVALID_ARGUMENT", "requests must hold 1 to 16 entries.")
        return json_response({"responses": [self.annotate(entry, behaviour) for entry in entries]})

    def annotate(self, entry: Any, behaviour: str | None) -> dict[str, Any]:
        """One ``AnnotateImageResponse``: the annotation, or the image's error."""
        features = entry.get("features") if isinstance(entry, dict) else None
        if not any(f.get("type") == "SAFE_SEARCH_DETECTION" for f in features or []):
            return {"error": {"code": 3, "message": "No SAFE_SEARCH_DETECTION feature asked."}}
        if behaviour == "image-unavailable":
            return {"error": {"code": 14, "message": "Image processing is unavailable."}}
        if behaviour == "bad-image":
            return {"error": {"code": 3, "message": "Bad image data."}}
        image = entry.get("image") or {}
        if "content" in image:
            try:
                data = base64.b64decode(image["content"], validate=True)
                Image.open(io.BytesIO(data)).verify()
            except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
                return {"error": {"code": 3, "message": "Bad image data."}}
        elif not str((image.get("source") or {}).get("imageUri", "")).startswith("http"):
            return {"error": {"code": 3, "message": "image must have content or source."}}
        annotation = {field: self.likelihoods.get(field, "VERY_UNLIKELY") for field in FIELDS}
        return {"safeSearchAnnotation": annotation}


def status_error(status: int, code_name: str, message: str, reason: str = "") -> Response:
    """Google's JSON error body (google.rpc.Status with an ErrorInfo when there is a reason)."""
    error: dict[str, Any] = {"code": status, "message": message, "status": code_name}
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return json_response({"error": error}, status)

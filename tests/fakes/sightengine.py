"""A fake Sightengine ``check.json`` (vendor-apis.md §6d).

It checks what Sightengine documents: ``api_user`` and ``api_secret`` (form or query), a
``models`` list of models it knows, and exactly one of a ``media`` file (which must decode as an
image) or a ``url``. It answers the documented shapes for ``nudity-2.1``, ``weapon``,
``gore-2.0`` and ``offensive``, every probability 0.001 unless a test scripts it in ``scores``
by path (``{"nudity.sexual_display": 0.93}``). Failures are ``{"status": "failure", "error":
{"type", "code", "message"}}`` with the HTTP status. Behaviours: ``timeout``, ``usage_limit``
(429), ``500``, ``plan`` (a model the plan does not include), ``bad-image`` (``media_error``).
"""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image, UnidentifiedImageError
from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

API_USER, API_SECRET = "1234567890", "sightengine-secret-a8d1"
LOW = 0.001
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "nudity-2.1": ("nudity", {
        "sexual_activity": LOW, "sexual_display": LOW, "erotica": LOW, "very_suggestive": LOW,
        "suggestive": LOW, "mildly_suggestive": LOW,
        "suggestive_classes": {
            "bikini": LOW, "cleavage": LOW, "lingerie": LOW, "sextoy": LOW,
            "cleavage_categories": {"very_revealing": LOW, "revealing": LOW, "none": 0.99},
        },
        "none": 0.99, "context": {"sea_lake_pool": 0.6, "outdoor_other": 0.4},
    }),
    "weapon": ("weapon", {
        "classes": {"firearm": LOW, "firearm_gesture": LOW, "firearm_toy": LOW, "knife": LOW},
        "firearm_type": {"animated": LOW},
        "firearm_action": {"aiming_threat": LOW, "in_hand_not_aiming": 0.9},
    }),
    "gore-2.0": ("gore", {
        "prob": LOW,
        "classes": {"very_bloody": LOW, "corpse": LOW, "serious_injury": LOW},
        "type": {"animated": LOW, "fake": LOW, "real": 0.9},
    }),
    "offensive": ("offensive", {"prob": LOW, "boxes": []}),
}  # fmt: skip


class FakeSightengine(FakeService):
    """``check.json`` with the four documented models."""

    def __init__(self) -> None:
        super().__init__()
        self.scores: dict[str, float] = {}

    def answer(self, request: Request) -> Response:
        """Credentials, scripted behaviour, models and media, then each model's result."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        if request.path != "/1.0/check.json" or request.method not in ("GET", "POST"):
            return failure(404, "request_error", 0, "Not found")
        fields = request.values
        if (fields.get("api_user"), fields.get("api_secret")) != (API_USER, API_SECRET):
            return failure(401, "argument_error", 1, "Incorrect API user or API secret")
        if behaviour == "usage_limit":
            return failure(429, "usage_limit", 32, "Daily usage limit reached")
        if behaviour == "500":
            return failure(500, "api_error", 0, "Internal error, please retry")
        models = [m for m in (fields.get("models") or "").split(",") if m]
        unknown = [m for m in models if m not in MODELS]
        if not models or unknown:
            return failure(400, "argument_error", 2, f"Unknown models: {', '.join(unknown)}")
        if behaviour == "plan":
            return failure(403, "plan_error", 5, f"Your plan does not include {models[0]}")
        upload, url = request.files.get("media"), fields.get("url")
        if (upload is None) == (url is None):
            return failure(400, "argument_error", 3, "Provide exactly one of media or url")
        if behaviour == "bad-image":
            return failure(400, "media_error", 21, "Media could not be read: corrupt file")
        if upload is not None:
            try:
                Image.open(io.BytesIO(upload.read())).verify()
            except (UnidentifiedImageError, OSError):
                return failure(400, "media_error", 21, "Media could not be read: corrupt file")
        body: dict[str, Any] = {"status": "success", "request": request_info(len(models))}
        for model in models:
            key, result = MODELS[model]
            body[key] = self.scripted(key, result)
        body["media"] = {"id": "med_fake1", "uri": url or "upload"}
        return json_response(body)

    def scripted(self, path: str, value: Any) -> Any:
        """``value`` with the scripted scores put in at their paths."""
        if isinstance(value, dict):
            return {key: self.scripted(f"{path}.{key}", inner) for key, inner in value.items()}
        return self.scores.get(path, value)


def request_info(operations: int) -> dict[str, Any]:
    """The ``request`` object of every answer."""
    return {"id": "req_fake", "timestamp": time.time(), "operations": operations}


def failure(status: int, kind: str, code: int, message: str) -> Response:
    """Sightengine's failure body."""
    body = {
        "status": "failure",
        "request": request_info(0),
        "error": {"type": kind, "code": code, "message": message},
    }
    return json_response(body, status)

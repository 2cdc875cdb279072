"""A fake Hive visual moderation API, V2 task API and V3 (vendor-apis.md §2 and §9.2).

It checks what Hive documents: ``authorization: token <key>`` (scheme word in any case) with a
multipart or form body holding exactly one of ``media`` and ``url`` on V2; ``Authorization:
Bearer <secret key>`` with JSON ``{"input": [{"media_base64" | "media_url": …}]}`` on V3. Media
must decode as an image. Answers are the documented task object (V2, ``class``/``score``) and the
V3 ``output[].classes[].class_name/value``; each head's scores sum to 1, as the model's do.

Tests script positive scores in ``scores`` (``{"gun_in_hand": 0.95}``); the head's negative class
takes the rest. Behaviours for ``upcoming``: ``timeout``, ``429``, ``500``, ``balance`` (405),
``task-failed`` (V2 status code not ``"0"``), ``frames`` (two frames, the second one scoring),
``bad-image`` (as for media Hive cannot read).
"""

from __future__ import annotations

import base64
import binascii
import io
import uuid
from typing import Any

from PIL import Image, UnidentifiedImageError
from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

V2_KEY = "hive-v2-project-key-81c3"
V3_KEY = "hive-v3-secret-key-4be0"
# A few heads of the visual model: positive classes, then the head's negative class.
HEADS = (
    ("general_nsfw", "general_suggestive", "general_not_nsfw_not_suggestive"),
    ("gun_in_hand", "animated_gun", "gun_not_in_hand", "no_gun"),
    ("very_bloody", "a_little_bloody", "other_blood", "no_blood"),
    ("yes_nazi", "no_nazi"),
    ("yes_self_harm", "no_self_harm"),
    ("yes_child_present", "no_child_present"),
)


class FakeHive(FakeService):
    """Hive's sync task endpoint (V2) and visual-moderation endpoint (V3)."""

    def __init__(self) -> None:
        super().__init__()
        self.scores: dict[str, float] = {}
        self.uploads: list[tuple[str | None, bytes]] = []  # V2 ``media`` files: name, bytes

    def classes(self, scores: dict[str, float]) -> list[tuple[str, float]]:
        """Every class with its score: ``scores`` for positives, the negative class the rest."""
        found = []
        for *positives, negative in HEADS:
            scored = [(name, scores.get(name, 0.001)) for name in positives]
            found += [*scored, (negative, round(1 - sum(s for _, s in scored), 4))]
        return found

    def answer(self, request: Request) -> Response:
        """Route to V2 or V3, check the key, then play the scripted behaviour or classify."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        v3 = request.path == "/api/v3/hive/visual-moderation"
        if request.method != "POST" or not (v3 or request.path == "/api/v2/task/sync"):
            return error(404, "Not found")
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        expected = ("bearer", V3_KEY) if v3 else ("token", V2_KEY)
        if (scheme.lower(), key.strip()) != expected:
            return error(403, "Forbidden: the API key is not valid for this project")
        if behaviour in ("429", "500", "balance"):
            status = {"429": 429, "500": 500, "balance": 405}[behaviour]
            message = {
                429: "Project has been rate limited",
                500: "Internal server error",
                405: "Insufficient balance",
            }[status]
            return error(status, message)
        if behaviour == "bad-image":
            return error(400, "Unable to process media: unsupported or corrupt file")
        media = self.media_v3(request) if v3 else self.media_v2(request)
        if isinstance(media, Response):
            return media
        frames = [self.classes(self.scores)]
        if behaviour == "frames":  # an animation: only its second frame shows anything
            frames.insert(0, self.classes({}))
        return json_response(v3_answer(frames) if v3 else v2_answer(frames, behaviour))

    def media_v2(self, request: Request) -> Response | None:
        """Exactly one of ``media`` (a file) and ``url`` in a form body."""
        upload, url = request.files.get("media"), request.form.get("url")
        if (upload is None) == (url is None):
            return error(400, "Provide exactly one of media, url or text_data")
        if upload is None:
            return None
        data = upload.read()
        with self.lock:
            self.uploads.append((upload.filename, data))
        return check_image(data)

    def media_v3(self, request: Request) -> Response | None:
        """JSON ``input`` with one object holding ``media_base64`` or ``media_url``."""
        body = request.get_json(silent=True)
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            return error(400, "input must be a list with one media object")
        if "media_url" in items[0]:
            return None
        try:
            data = base64.b64decode(items[0].get("media_base64") or "", validate=True)
        except (binascii.Error, ValueError):
            return error(400, "media_base64 is not valid base64")
        return check_image(data)


def check_image(data: bytes) -> Response | None:
    """Hive's answer to media it cannot read, or None for an image."""
    try:
        Image.open(io.BytesIO(data)).verify()
    except (UnidentifiedImageError, OSError):
        return error(400, "Unable to process media: unsupported or corrupt file")
    return None


def error(status: int, message: str) -> Response:
    """Hive's error body ``{return_code, message}``."""
    return json_response({"return_code": status, "message": message}, status)


def v2_answer(frames: list[list[tuple[str, float]]], behaviour: str | None) -> dict[str, Any]:
    """The V2 task object, one ``output`` entry per frame."""
    code, message = ("500", "Model error") if behaviour == "task-failed" else ("0", "SUCCESS")
    output = [
        {"time": index, "classes": [{"class": n, "score": s} for n, s in frame]}
        for index, frame in enumerate(frames)
    ]
    return {
        "id": str(uuid.uuid4()),
        "project_id": 18416,
        "user_id": 6994,
        "metadata": None,
        "status": [
            {
                "status": {"code": code, "message": message},
                "response": {"input": {"charge": "0.00100", "model_type": "CLASSIFICATION"},
                             "output": output},
            }
        ],
        "from_cache": False,
    }  # fmt: skip


def v3_answer(frames: list[list[tuple[str, float]]]) -> dict[str, Any]:
    """The V3 answer: ``class_name``/``value``, one ``output`` entry per frame."""
    return {
        "task_id": str(uuid.uuid4()),
        "model": "hive/visual-moderation",
        "version": "1",
        "output": [
            {"extra": [], "classes": [{"class_name": n, "value": s} for n, s in frame]}
            for frame in frames
        ],
    }

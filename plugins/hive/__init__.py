"""Hive visual moderation: ~75 classes in heads (nudity, guns, blood, hate symbols …), scored 0–1.

Two API generations, chosen in the settings: the V2 task API (Enterprise project keys,
``Authorization: token <key>``, multipart ``media`` or ``url``) and the V3 API (self-serve secret
keys, ``Authorization: Bearer <key>``, JSON ``media_base64`` or ``media_url``). Both answer the
same class names; V3 renames ``class``/``score`` to ``class_name``/``value``. For an animation
each class keeps its highest score over the sampled frames.

Hive sets no verdict: the operator's thresholds decide. Negative classes (``no_gun``,
``general_not_nsfw_not_suggestive`` …) are left out of the labels; the raw answer keeps them.
See docs/classifiers.md for costs, what leaves the server, and thresholds.
"""

from __future__ import annotations

import base64
from typing import Any

import requests

from app.plugins import ScanContext, Scanner, Setting, hookimpl
from app.services import labels as vocabulary
from app.services.classifiers import (
    ClassifierScanner,
    Refusal,
    http_failure,
    reply_detail,
    send_url_setting,
    sends_url,
    thresholds_setting,
)

V2_PATH = "/api/v2/task/sync"
V3_PATH = "/api/v3/hive/visual-moderation"
NEGATIVE = ("no_", "general_not_nsfw_not_suggestive")
DEFAULT_THRESHOLDS = """\
general_nsfw=0.9
yes_sexual_activity=0.9
yes_female_nudity=0.9
yes_male_nudity=0.9
gun_in_hand=0.9
knife_in_hand=0.9
very_bloody=0.9
human_corpse=0.9
yes_self_harm=0.9
hanging=0.9
yes_nazi=0.9
yes_kkk=0.9
yes_terrorist=0.9
"""


class HiveScanner(ClassifierScanner):
    """Hive's visual moderation model through the V2 or V3 API."""

    name = "hive"
    service = "Hive"
    title = "Hive visual moderation"
    version = "1.0"
    description = (
        "Sends each image (or its URL) to Hive, which scores about 75 classes: nudity, "
        "suggestive clothing, guns, knives, blood, corpses, self-harm, drugs, hate symbols."
    )
    strict_names = False  # Hive adds classes with new model versions
    timeout = 15.0
    settings = (
        Setting(
            "api_version",
            "choice",
            default="v2",
            choices=[("v2", "V2 task API (project API key)"), ("v3", "V3 API (secret key)")],
            label="API version",
        ),
        Setting(
            "api_key",
            secret=True,
            required=True,
            label="API key",
            help="V2: the project's API key. V3: the Secret Key (not the Access Key ID).",
        ),
        Setting("endpoint", "url", default="https://api.thehive.ai"),
        send_url_setting("Hive"),
        thresholds_setting(
            DEFAULT_THRESHOLDS,
            "Hive class names such as general_nsfw, gun_in_hand, very_bloody, yes_nazi.",
        ),
    )

    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Send the image to the chosen API version; one label per positive class."""
        v3 = ctx.settings["api_version"] == "v3"
        reply = (self._v3 if v3 else self._v2)(ctx)
        if reply.status_code != 200:
            raise http_failure("Hive", reply.status_code, _detail(reply), "the API key")
        answer = reply.json()
        scores = _v3_scores(answer) if v3 else _v2_scores(answer)
        if not scores:  # a malformed answer: worth another try
            raise ValueError("Hive answered without any class scores.")
        labels = [
            vocabulary.make_label(self.name, name, score)
            for name, score in scores.items()
            if not name.startswith(NEGATIVE)
        ]
        return labels, answer

    def _v2(self, ctx: ScanContext) -> requests.Response:
        endpoint = ctx.settings["endpoint"].rstrip("/") + V2_PATH
        headers = {"Authorization": f"token {ctx.settings['api_key']}"}
        if sends_url(ctx):
            return requests.post(
                endpoint, headers=headers, data={"url": ctx.image_url}, timeout=ctx.timeout
            )
        upload = {"media": ("image", ctx.data(), ctx.mime or "application/octet-stream")}
        return requests.post(endpoint, headers=headers, files=upload, timeout=ctx.timeout)

    def _v3(self, ctx: ScanContext) -> requests.Response:
        endpoint = ctx.settings["endpoint"].rstrip("/") + V3_PATH
        if sends_url(ctx):
            media = {"media_url": ctx.image_url}
        else:
            media = {"media_base64": base64.b64encode(ctx.data()).decode()}
        return requests.post(
            endpoint,
            headers={"Authorization": f"Bearer {ctx.settings['api_key']}"},
            json={"input": [media]},
            timeout=ctx.timeout,
        )


def _detail(reply: requests.Response) -> str:
    if reply.status_code == 405:  # Hive's code for an account without credit
        return "the account's balance is insufficient. " + reply_detail(reply)
    return reply_detail(reply)


def _v2_scores(answer: dict[str, Any]) -> dict[str, float]:
    """Highest score per class over every frame of every task status (V2 task object)."""
    scores: dict[str, float] = {}
    for status in answer.get("status") or []:
        state = status.get("status") or {}
        if str(state.get("code", "0")) != "0":
            raise Refusal(
                f"Hive could not judge this image: {state.get('message') or state.get('code')}",
                answer=answer,
            )
        for frame in (status.get("response") or {}).get("output") or []:
            for entry in frame.get("classes") or []:
                _keep_max(scores, entry["class"], entry["score"])
    return scores


def _v3_scores(answer: dict[str, Any]) -> dict[str, float]:
    """Highest value per class over every frame (V3 answer)."""
    scores: dict[str, float] = {}
    for frame in answer.get("output") or []:
        for entry in frame.get("classes") or []:
            _keep_max(scores, entry["class_name"], entry["value"])
    return scores


def _keep_max(scores: dict[str, float], name: str, score: Any) -> None:
    scores[name] = max(scores.get(name, 0.0), float(score))


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The Hive scanner."""
    return [HiveScanner]

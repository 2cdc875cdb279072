"""Google Cloud Vision SafeSearch: how likely an image is adult, racy, violent, medical, a spoof.

``POST {endpoint}/v1/images:annotate`` with the ``SAFE_SEARCH_DETECTION`` feature, the image's
bytes (base64 ``content``) or its URL (``source.imageUri``). The API key travels in the
``X-Goog-Api-Key`` header rather than ``?key=``, so it never appears in a URL or a log.

SafeSearch answers likelihoods, not scores; they become comparable 0–1 scores as
``LIKELIHOOD_SCORES`` says (``UNKNOWN`` gives no label). docs/classifiers.md has the table.
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
    ServiceBusy,
    credentials_refusal,
    http_failure,
    reply_detail,
    send_url_setting,
    sends_url,
    thresholds_setting,
)

PATH = "/v1/images:annotate"
LIKELIHOOD_SCORES = {
    "VERY_UNLIKELY": 0.0,
    "UNLIKELY": 0.25,
    "POSSIBLE": 0.5,
    "LIKELY": 0.75,
    "VERY_LIKELY": 1.0,
}
ANNOTATIONS = ("adult", "racy", "violence", "medical", "spoof")
# google.rpc.Code values of a per-image error that a later try may not meet again: retried.
RETRYABLE_CODES = {
    4: "DEADLINE_EXCEEDED",
    8: "RESOURCE_EXHAUSTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
}
KEY_PROBLEMS = ("API_KEY_INVALID", "API key not valid", "API_KEY_SERVICE_BLOCKED")
CHECK_WHAT = "the API key (and that the Cloud Vision API is enabled for its project)"


class GoogleVisionScanner(ClassifierScanner):
    """SafeSearch likelihoods as labels; ``adult`` and ``violence`` at LIKELY flag by default."""

    name = "google_vision"
    service = "Google Cloud Vision"
    title = "Google Cloud Vision SafeSearch"
    version = "1.0"
    description = (
        "Sends each image (or its URL) to Google Cloud Vision, which says how likely it is to be "
        "adult, racy, violent, medical or a spoof."
    )
    timeout = 15.0
    rate_limit = 1800  # Vision's default quota: 1,800 requests a minute per project
    settings = (
        Setting(
            "api_key",
            secret=True,
            required=True,
            label="API key",
            help="A Google Cloud API key allowed to call the Cloud Vision API.",
        ),
        Setting("endpoint", "url", default="https://vision.googleapis.com"),
        send_url_setting("Google"),
        thresholds_setting(
            "adult=0.75\nviolence=0.75\n",
            "Names: adult, racy, violence, medical, spoof. Scores: very unlikely 0, unlikely "
            "0.25, possible 0.5, likely 0.75, very likely 1.",
        ),
    )

    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Ask SafeSearch about the image; one label per annotation with a known likelihood."""
        if sends_url(ctx):
            image: dict[str, Any] = {"source": {"imageUri": ctx.image_url}}
        else:
            image = {"content": base64.b64encode(ctx.data()).decode()}
        reply = requests.post(
            ctx.settings["endpoint"].rstrip("/") + PATH,
            headers={"X-Goog-Api-Key": ctx.settings["api_key"]},
            json={"requests": [{"image": image, "features": [{"type": "SAFE_SEARCH_DETECTION"}]}]},
            timeout=ctx.timeout,
        )
        if reply.status_code != 200:
            raise _failure(reply)
        answer = reply.json()
        result = (answer.get("responses") or [{}])[0]
        if result.get("error"):
            code, message = result["error"].get("code"), result["error"].get("message")
            if code in RETRYABLE_CODES:
                raise ServiceBusy(f"Google Cloud Vision: {RETRYABLE_CODES[code]}: {message}")
            raise Refusal(
                f"Google Cloud Vision could not judge this image: {message}", answer=answer
            )
        annotation = result.get("safeSearchAnnotation")
        if annotation is None:  # every successful SafeSearch answer has one
            raise ValueError("Google Cloud Vision answered without a SafeSearch annotation.")
        labels = [
            vocabulary.make_label(self.name, name, LIKELIHOOD_SCORES[annotation[name]])
            for name in ANNOTATIONS
            if annotation.get(name) in LIKELIHOOD_SCORES
        ]
        return labels, answer


def _failure(reply: requests.Response) -> Exception:
    """Google answers a bad key with 400 INVALID_ARGUMENT: that is a credentials problem too."""
    detail = reply_detail(reply)
    if reply.status_code == 400 and any(problem in reply.text for problem in KEY_PROBLEMS):
        return credentials_refusal("Google Cloud Vision", 400, detail, CHECK_WHAT)
    return http_failure("Google Cloud Vision", reply.status_code, detail, CHECK_WHAT)


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The Google Cloud Vision SafeSearch scanner."""
    return [GoogleVisionScanner]

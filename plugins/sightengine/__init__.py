"""Sightengine ``check.json``: the models the operator picks (nudity, weapons, gore, offensive …).

One multipart ``POST {endpoint}/1.0/check.json`` with the image as ``media`` (or its ``url``),
``models`` and the ``api_user``/``api_secret`` pair. The pair goes in the form body, never in a
query string, so it stays out of URLs and logs.

Each model answers a nest of probabilities; every number becomes a label named by its path
(``nudity.sexual_activity``, ``weapon.classes.firearm``, ``gore.prob``). Parts that only describe
a finding (``none``, ``context``, gore ``type``, firearm ``type``/``action``, the cleavage and
male-chest sub-levels) are left out of the labels; the raw answer keeps everything.
"""

from __future__ import annotations

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
    send_url_setting,
    sends_url,
    thresholds_setting,
)

PATH = "/1.0/check.json"
NOT_MODELS = {"status", "request", "media"}
DESCRIPTIVE = {
    "none", "context", "type", "firearm_type", "firearm_action", "cleavage_categories",
    "male_chest_categories",
}  # fmt: skip
CREDENTIALS = "the API user and API secret"
DEFAULT_THRESHOLDS = """\
sexual_activity=0.5
adult_nudity=0.5
violence_gore=0.6
weapons=0.6
hate=0.6
terrorism=0.6
"""


class SightengineScanner(ClassifierScanner):
    """Sightengine's chosen models, every probability a label."""

    name = "sightengine"
    service = "Sightengine"
    title = "Sightengine"
    version = "1.0"
    description = (
        "Sends each image (or its URL) to Sightengine and runs the models you choose: nudity, "
        "weapons, gore, offensive signs and more."
    )
    strict_names = False  # names depend on the models chosen and their versions
    timeout = 15.0
    settings = (
        Setting("api_user", required=True, label="API user"),
        Setting("api_secret", secret=True, required=True, label="API secret"),
        Setting(
            "models",
            default="nudity-2.1,weapon,gore-2.0,offensive",
            help="Comma-separated model names from Sightengine's documentation. Each model is "
            "billed as one operation per image.",
        ),
        Setting("endpoint", "url", default="https://api.sightengine.com"),
        send_url_setting("Sightengine"),
        thresholds_setting(
            DEFAULT_THRESHOLDS,
            "Label names are paths such as nudity.sexual_display, weapon.classes.firearm, "
            "gore.prob; categories cover every label in them.",
        ),
    )

    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Run the chosen models on the image; one label per probability in the answer."""
        form = {
            "models": ",".join(m.strip() for m in ctx.settings["models"].split(",") if m.strip()),
            "api_user": ctx.settings["api_user"].strip(),
            "api_secret": ctx.settings["api_secret"],
        }
        endpoint = ctx.settings["endpoint"].rstrip("/") + PATH
        if sends_url(ctx):
            reply = requests.post(
                endpoint, data={**form, "url": ctx.image_url}, timeout=ctx.timeout
            )
        else:
            upload = {"media": ("image", ctx.data(), ctx.mime or "application/octet-stream")}
            reply = requests.post(endpoint, data=form, files=upload, timeout=ctx.timeout)
        try:
            answer = reply.json()
        except ValueError:
            raise http_failure(
                "Sightengine", reply.status_code, reply.text[:300], CREDENTIALS
            ) from None
        if reply.status_code != 200 or answer.get("status") != "success":
            raise _failure(reply.status_code, answer)
        labels = [
            vocabulary.make_label(self.name, path, score)
            for model, result in answer.items()
            if model not in NOT_MODELS
            for path, score in _probabilities(model, result)
        ]
        return labels, answer


def _probabilities(path: str, value: Any) -> list[tuple[str, float]]:
    """Every number under ``value`` with its dotted path, descriptive parts left out."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [(path, float(value))]
    if isinstance(value, dict):
        return [
            found
            for key, inner in value.items()
            if key not in DESCRIPTIVE
            for found in _probabilities(f"{path}.{key}", inner)
        ]
    return []  # lists (boxes) and text


def _failure(status: int, answer: dict[str, Any]) -> Exception:
    """Sightengine's error ``type`` says what kind of failure it is."""
    error = answer.get("error") or {}
    kind, message = str(error.get("type", "")), str(error.get("message", "no message"))
    detail = f"{kind}: {message}" if kind else message
    if kind == "credentials_error" or "api user" in message.lower() or "secret" in message.lower():
        return credentials_refusal("Sightengine", status, detail, CREDENTIALS)
    if kind in ("usage_limit", "api_error", "unknown_error") or status == 429 or status >= 500:
        return ServiceBusy(f"Sightengine is busy or failing (HTTP {status}): {detail}")
    if kind == "plan_error":
        return Refusal(f"Sightengine: your plan does not allow this: {detail}", "account", status)
    if kind == "media_error":
        return Refusal(f"Sightengine could not judge this image: {detail}", status=status)
    return http_failure("Sightengine", status if status >= 400 else 400, detail, CREDENTIALS)


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The Sightengine scanner."""
    return [SightengineScanner]

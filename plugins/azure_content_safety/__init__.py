"""Azure AI Content Safety, Analyze Image: a severity for Hate, SelfHarm, Sexual and Violence.

``POST {endpoint}/contentsafety/image:analyze?api-version=…`` with the image's bytes (base64) and
the ``Ocp-Apim-Subscription-Key`` header. Images are answered in four severity levels, 0, 2, 4
and 6 (safe, low, medium, high), which become comparable scores as ``SEVERITY_SCORES`` says:
0, 0.33, 0.67 and 1. Two decimals, so a threshold of 0.67 means "medium or worse" exactly.
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
    thresholds_setting,
)

PATH = "/contentsafety/image:analyze"
CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
SEVERITY_SCORES = {0: 0.0, 2: 0.33, 4: 0.67, 6: 1.0}
CREDENTIALS = "the endpoint and the key (Keys and Endpoint, in the Azure portal)"
DEFAULT_THRESHOLDS = "Sexual=0.67\nViolence=0.67\nHate=0.67\nSelfHarm=0.67\n"


class AzureContentSafetyScanner(ClassifierScanner):
    """Content Safety's four harm categories as labels; "medium" or worse flags by default."""

    name = "azure_content_safety"
    service = "Azure AI Content Safety"
    title = "Azure AI Content Safety"
    version = "1.0"
    description = (
        "Sends each image's bytes to Azure AI Content Safety, which rates hate, self-harm, "
        "sexual content and violence as safe, low, medium or high."
    )
    timeout = 15.0
    rate_limit = 300  # the free tier's 5 requests a second; S0 allows more
    settings = (
        Setting(
            "endpoint",
            "url",
            required=True,
            help="Your resource's endpoint, such as https://myname.cognitiveservices.azure.com.",
        ),
        Setting("api_key", secret=True, required=True, label="Key"),
        Setting(
            "api_version",
            "choice",
            default="2024-09-01",
            choices=["2024-09-01", "2023-10-01"],
            label="API version",
        ),
        thresholds_setting(
            DEFAULT_THRESHOLDS,
            "Names: Hate, SelfHarm, Sexual, Violence. Scores: safe 0, low 0.33, medium 0.67, "
            "high 1.",
        ),
    )

    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Analyse the image in all four categories; one label per category."""
        reply = requests.post(
            ctx.settings["endpoint"].rstrip("/") + PATH,
            params={"api-version": ctx.settings["api_version"]},
            headers={"Ocp-Apim-Subscription-Key": ctx.settings["api_key"]},
            json={
                "image": {"content": base64.b64encode(ctx.data()).decode()},
                "categories": list(CATEGORIES),
                "outputType": "FourSeverityLevels",
            },
            timeout=ctx.timeout,
        )
        if reply.status_code == 404:  # a wrong endpoint path or API version: a settings problem
            raise Refusal(
                f"Azure AI Content Safety answered 404 ({reply_detail(reply)}): check "
                f"{CREDENTIALS} and the API version.",
                kind="settings",
                status=404,
            )
        if reply.status_code != 200:
            detail = reply.headers.get("x-ms-error-code", "")
            detail = f"{detail}: {reply_detail(reply)}" if detail else reply_detail(reply)
            raise http_failure("Azure AI Content Safety", reply.status_code, detail, CREDENTIALS)
        answer = reply.json()
        labels = [
            vocabulary.make_label(self.name, entry["category"], severity_score(entry["severity"]))
            for entry in answer.get("categoriesAnalysis") or []
            if entry.get("severity") is not None
        ]
        return labels, answer


def severity_score(severity: int) -> float:
    """A severity level as a 0–1 score: 0, 2, 4, 6 → 0, 0.33, 0.67, 1 (others in proportion)."""
    level = int(severity)
    return SEVERITY_SCORES.get(level, round(min(max(level, 0), 6) / 6, 2))


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The Azure AI Content Safety scanner."""
    return [AzureContentSafetyScanner]

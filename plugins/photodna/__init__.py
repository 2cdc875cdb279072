"""Microsoft PhotoDNA Cloud Service: matches images against known child sexual abuse imagery.

PhotoDNA is offered by Microsoft, free of charge, to qualified organisations only
(docs/integrations/photodna.md). The image leaves this server: either its bytes, inline in the
request (``mode`` ``bytes``), or the URL the platform sent, which PhotoDNA then fetches
(``url``; items sent without a URL go as bytes). A match is labelled ``csam``, plus the industry
classification of each match (``csam_a1`` … ``csam_b2``), so only leads can reveal the item.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image

from app.plugins import ConnectionResult, ScanContext, Scanner, ScanOutcome, Setting, hookimpl
from app.services.media import MediaError
from plugins.photodna import client
from plugins.photodna.client import PhotoDNARefused, PhotoDNAUnavailable
from plugins.photodna.images import sendable_image

LABEL = "csam"


class PhotoDNAScanner(Scanner):
    """A PhotoDNA match is a ``match`` labelled ``csam``; no match is ``clear``."""

    name = "photodna"
    title = "Microsoft PhotoDNA"
    version = "1.0"
    description = (
        "Matches images against known child sexual abuse imagery with Microsoft's PhotoDNA "
        "Cloud Service. For eligible organisations only; the image is sent to Microsoft."
    )
    timeout = 15.0
    rate_limit = 300  # documented: "a maximum rate limit of 5 requests per second"
    settings = (
        Setting(
            "subscription_key",
            "string",
            secret=True,
            required=True,
            help="The Ocp-Apim-Subscription-Key Microsoft issued for PhotoDNA Cloud Service.",
        ),
        Setting(
            "mode",
            "choice",
            default="bytes",
            choices=[("bytes", "Send the image"), ("url", "Send the image's URL")],
            help="What leaves this server. With URL, PhotoDNA fetches the image from the URL "
            "the platform sent; items sent without a URL are sent as images.",
        ),
        Setting(
            "enhance",
            "boolean",
            default=False,
            help="Broader matching: finds more altered copies, and answers more slowly.",
        ),
        Setting(
            "base_url",
            "url",
            default=client.DEFAULT_BASE_URL,
            required=True,
            label="Base URL",
            help="Change only if Microsoft gave you another endpoint.",
        ),
    )

    def scan(self, ctx: ScanContext) -> ScanOutcome:
        """Ask PhotoDNA whether the image matches; raise when it could not answer."""
        settings = ctx.settings
        if settings["mode"] == "url" and ctx.image_url:
            body, sent = client.url_request(ctx.image_url), {"sent": "url"}
        else:
            try:
                data, converted = sendable_image(ctx.data(), ctx.mime)
            except (LookupError, MediaError) as error:  # purged, or cannot be converted
                return PhotoDNARefused(str(error), "image").outcome({"sent": "nothing"})
            body, sent = client.inline_request(data), {"sent": "bytes", **converted}
        try:
            answer = client.match(
                settings["base_url"],
                settings["subscription_key"],
                body,
                enhance=bool(settings["enhance"]),
                timeout=ctx.timeout,
            )
        except PhotoDNARefused as refusal:  # the key, or this image: no retry can help
            return refusal.outcome(sent)
        return outcome_of(answer, sent)

    def test_connection(self, settings: Mapping[str, Any]) -> ConnectionResult:
        """Match a small synthetic picture: proves the key, the endpoint and the quota work."""
        try:
            answer = client.match(
                settings["base_url"],
                settings["subscription_key"],
                client.inline_request(_test_picture()),
                enhance=False,
                timeout=self.timeout,
            )
        except (PhotoDNARefused, PhotoDNAUnavailable) as error:
            return ConnectionResult(False, str(error))
        return ConnectionResult(
            True,
            "PhotoDNA accepted the subscription key and matched a test picture "
            f"(tracking id {answer.get('TrackingId') or 'none'}). Each test counts as one call.",
        )


def outcome_of(answer: dict[str, Any], sent: dict[str, Any]) -> ScanOutcome:
    """The scan outcome for an OK Match answer: its match flags become labels and matches."""
    raw = {**sent, "response": answer}
    if not answer.get("IsMatch"):
        return ScanOutcome("clear", raw=raw)
    details = answer.get("MatchDetails")
    flags = (details.get("MatchFlags") if isinstance(details, dict) else None) or []
    matches = [_match_record(flag) for flag in flags if isinstance(flag, dict)]
    names = {LABEL} | {label for match in matches for label in match["labels"]}
    labels = [{"name": name, "score": 1.0} for name in sorted(names)]
    return ScanOutcome("match", labels=labels, matches=matches, raw=raw)


def _match_record(flag: dict[str, Any]) -> dict[str, Any]:
    """One match flag as the review page shows it: the hash source, its classes, the distance."""
    violations = [str(v) for v in flag.get("Violations") or []]
    info = {
        str(entry.get("Key")): entry.get("Value")
        for entry in flag.get("AdvancedInfo") or []
        if isinstance(entry, dict)
    }
    distance = flag.get("MatchDistance")
    return {
        "bank_name": f"PhotoDNA {flag.get('Source') or 'match'}",
        "source": flag.get("Source"),
        "labels": [LABEL, *(f"{LABEL}_{v.lower()}" for v in violations if v.isalnum())],
        "violations": violations,
        "distance": int(distance) if isinstance(distance, int | float) else None,
        "match_id": info.get("MatchId"),
        "signal_type": "photodna",
    }


def _test_picture() -> bytes:
    """A 256×256 grey gradient: above PhotoDNA's 160-pixel minimum, and nobody's picture."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").save(buffer, "PNG")
    return buffer.getvalue()


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The PhotoDNA scanner."""
    return [PhotoDNAScanner]

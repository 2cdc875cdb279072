"""Turning Arachnid Shield's answers into scan outcomes: labels from the classification, and a
match per exact or near match, kept with its distance when Shield gives one.

The hashes of the known media in Shield's database go under ``signal``, which the API never
shows the platform (``pipeline.public_match``), as our own banks' hashes do.
"""

from __future__ import annotations

import re
from typing import Any

from app.plugins import ScanOutcome
from plugins.arachnid.client import NO_MATCH, ArachnidUnavailable

BANK = "Arachnid Shield"


def label_for(classification: str) -> str:
    """``csam`` → ``csam``; ``harmful-abusive-material`` → ``harmful_abusive_material``.

    Shield says more classifications may come; any is kept, in the same spelling.
    """
    return re.sub(r"[^a-z0-9_]+", "_", classification.strip().lower()).strip("_")[:40] or "match"


def media_outcome(answer: dict[str, Any], sent: str) -> ScanOutcome:
    """The outcome for a ``ScannedMedia`` answer (to ``/v1/media/`` and ``/v1/url/``)."""
    raw = {"sent": sent, "response": answer}
    classification = answer.get("classification")
    if not isinstance(classification, str) or classification == NO_MATCH:
        return ScanOutcome("clear", raw=raw)
    label = label_for(classification)
    if answer.get("match_type") == "exact":
        matches = [
            {
                "bank_name": BANK,
                "labels": [label],
                "classification": classification,
                "match_type": "exact",
                "distance": 0,
                "signal_type": "sha1",
            }
        ]
    else:
        details = [d for d in answer.get("near_match_details") or [] if isinstance(d, dict)]
        matches = [_near_match(detail, classification) for detail in details]
    return _matched(matches, label, raw)


def pdq_outcome(answer: dict[str, Any], query: str) -> ScanOutcome:
    """The outcome for a ``ScannedPDQHashes`` answer about our one hash, ``query``."""
    raw = {"sent": "pdq", "response": answer}
    scanned = answer.get("scanned_hashes")
    if not isinstance(scanned, dict):
        raise ArachnidUnavailable("Arachnid Shield's PDQ answer has no scanned_hashes.")
    found = scanned.get(query)  # null (or absent) when Shield knows nothing like it
    classification = found.get("classification") if isinstance(found, dict) else None
    if not isinstance(classification, str) or classification == NO_MATCH:
        return ScanOutcome("clear", raw=raw)
    detail = found.get("near_match_details") if isinstance(found, dict) else None
    matches = [_near_match(detail if isinstance(detail, dict) else {}, classification, "pdq")]
    return _matched(matches, label_for(classification), raw)


def _near_match(
    detail: dict[str, Any], classification: str, signal_type: str = "photodna"
) -> dict[str, Any]:
    """One near (visual) match: Shield matches media with PhotoDNA, PDQ hashes with PDQ."""
    own = detail.get("classification")
    kind = own if isinstance(own, str) and own != NO_MATCH else classification
    distance = detail.get("distance")
    record = {
        "bank_name": BANK,
        "labels": [label_for(kind)],
        "classification": kind,
        "match_type": "near",
        "distance": int(distance) if isinstance(distance, int | float) else None,
        "signal_type": signal_type,
        "signal": detail.get("sha256_hex"),
    }
    if isinstance(detail.get("timestamp"), int | float) and detail["timestamp"]:
        record["timestamp"] = detail["timestamp"]  # seconds into a video
    return record


def _matched(matches: list[dict[str, Any]], label: str, raw: dict[str, Any]) -> ScanOutcome:
    names = {label} | {name for match in matches for name in match["labels"]}
    labels = [{"name": name, "score": 1.0} for name in sorted(names)]
    return ScanOutcome("match", labels=labels, matches=matches, raw=raw)

"""Turning HMA's lookup answers into scan outcomes: matched banks become labels, and each matched
bank content becomes a match with its distance as a number (HMA sends it as a string).

A bank's label is its name in lower case (``NCMEC_CSAM`` → ``ncmec_csam``) unless the
``bank_labels`` setting names others (``NCMEC_CSAM: csam``), which is how an HMA bank of child
sexual abuse material makes an item one only leads may reveal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from app.plugins import ScanOutcome
from plugins.hma.client import HMAUnavailable

PDQ_BITS = 256
LABEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
BANK_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*[:=]\s*(.+?)\s*$")


def parse_bank_labels(text: str | None) -> dict[str, list[str]]:
    """``BANK: label, label`` lines as a mapping; ValueError naming the first bad line."""
    mapping: dict[str, list[str]] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = BANK_LINE.match(line)
        labels = [part.strip().lower() for part in found.group(2).split(",")] if found else []
        if not found or not all(LABEL.fullmatch(label) for label in labels):
            raise ValueError(
                f"Bank labels, line {number}: write “BANK_NAME: label, label” with labels of "
                "lowercase letters, digits, '_', '-' or '.', such as “NCMEC_CSAM: csam”."
            )
        mapping[found.group(1).upper()] = labels
    return mapping


def bank_names(text: str | None) -> list[str]:
    """The bank allow-list setting as HMA spells bank names (upper case)."""
    return [name.strip().upper() for name in (text or "").split(",") if name.strip()]


def outcome_of(
    banks: Any, sent: str, raw: dict[str, Any], labels: dict[str, list[str]], allowed: list[str]
) -> ScanOutcome:
    """The outcome for HMA's ``{bank: [matches]}``, limited to ``allowed`` banks if any."""
    matches = []
    for bank, found in _bank_matches(banks):
        if allowed and bank.upper() not in allowed:
            continue  # HMA versions that ignore ``banks=`` still do not widen our list
        names = labels.get(bank.upper()) or [_label(bank)]
        for entry in found or [{}]:
            distance = _distance(entry.get("distance"))
            matches.append(
                {
                    "bank_name": bank,
                    "labels": names,
                    "bank_content_id": entry.get("bank_content_id"),
                    "distance": distance,
                    "signal_type": "pdq",
                    "score": 1.0 if distance is None else round(1 - distance / PDQ_BITS, 4),
                }
            )
    if not matches:
        return ScanOutcome("clear", raw={"sent": sent, **raw})
    scores: dict[str, float] = {}
    for match in matches:
        for name in match["labels"]:
            scores[name] = max(scores.get(name, 0.0), match["score"])
    found_labels = [{"name": name, "score": score} for name, score in sorted(scores.items())]
    return ScanOutcome("match", labels=found_labels, matches=matches, raw={"sent": sent, **raw})


def _bank_matches(banks: Any) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    if isinstance(banks, list):  # HMA before 1.1 answered with bank names only
        return [(str(name), []) for name in banks]
    if not isinstance(banks, dict):
        raise HMAUnavailable("HMA's lookup answer is neither a list nor an object of banks.")
    return [
        (str(name), [m for m in found if isinstance(m, dict)] if isinstance(found, list) else [])
        for name, found in banks.items()
    ]


def _distance(value: Any) -> int | None:
    """HMA's distance (``"4"``) as a number; None when it sent none."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _label(bank: str) -> str:
    return re.sub(r"[^a-z0-9_.-]", "_", bank.lower()).lstrip("_.-")[:40] or "hma_match"

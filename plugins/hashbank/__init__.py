"""The hash bank scanner: matches an item's SHA-256, MD5 and PDQ against the local hash banks.

It runs in this process without the network (``local``), so the pipeline runs it inline and the
synchronous ``/api/v1/check`` can use it (``fast``). Banks are filled and matched by
``app.services.banks``; this plugin only turns its matches into a scan outcome.
"""

from __future__ import annotations

from typing import Any

from app.plugins import ScanContext, Scanner, ScanOutcome, Setting, hookimpl

EXACT_SIGNALS = ("sha256", "md5")
PDQ_BITS = 256


class HashBankScanner(Scanner):
    """A match against any bank entry is a ``match`` labelled with the bank's labels."""

    name = "hashbank"
    title = "Hash banks"
    version = "1.0"
    description = "Matches images against the hash banks kept on this server (SHA-256, MD5, PDQ)."
    local = True
    fast = True
    enabled_by_default = True
    timeout = 5.0
    settings = (
        Setting(
            "min_pdq_quality",
            "integer",
            default=50,
            min=0,
            max=100,
            help="PDQ hashes of lower quality (flat, blank images) match too much and are not "
            "compared. 50 is the threshold Meta's tools use.",
        ),
    )

    def scan(self, ctx: ScanContext) -> ScanOutcome:
        """Look the item's hashes up in every bank."""
        from app.services import banks  # the banks service is only needed when scanning

        found = banks.match_hashes(
            sha256=ctx.sha256,
            md5=ctx.md5,
            pdq=ctx.pdq,
            pdq_quality=ctx.pdq_quality,
            min_pdq_quality=int(ctx.settings["min_pdq_quality"]),
        )
        if not found:
            return ScanOutcome("clear")
        matches = [_match_record(match) for match in found]
        scores: dict[str, float] = {}
        for record in matches:
            for label in record["labels"]:
                scores[label] = max(scores.get(label, 0.0), record["score"])
        labels = [{"name": name, "score": score} for name, score in sorted(scores.items())]
        return ScanOutcome("match", labels=labels, matches=matches, raw={"matches": len(matches)})


def _match_record(match: Any) -> dict[str, Any]:
    """A bank match as stored on the scan result; score 1.0 exact, less as PDQ bits differ."""
    distance = int(match.distance or 0)
    exact = match.signal_type in EXACT_SIGNALS
    return {
        "bank_id": match.bank_id,
        "bank_name": match.bank_name,
        "labels": list(match.labels),
        "signal_type": match.signal_type,
        "signal": match.signal,
        "distance": distance,
        "entry_id": match.entry_id,
        "note": match.note,
        "score": 1.0 if exact else round(1 - distance / PDQ_BITS, 4),
    }


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The hash bank scanner."""
    return [HashBankScanner]

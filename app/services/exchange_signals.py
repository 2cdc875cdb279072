"""Which image hashes one upstream record gives, for each kind of exchange.

Banks match images, so only PDQ, MD5 and SHA-256 of images are kept. Everything else a record
can carry (video hashes, URLs, text, NCMEC's PhotoDNA and SHA-1) and records that members marked
as false positives count as skipped. A deleted record (``None``, or an NCMEC tombstone) gives
no hashes, which is what takes its hashes out of the bank.

The threatexchange types are imported where they are used: these run only during a fetch, after
the exchange's client has loaded the library (see ``exchange_kinds``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.services.banks import BankError, normalize_signal

Signals = tuple[list[tuple[str, str]], int]  # (image hashes as (type, hex), records skipped)
SignalsOf = Callable[[Any, Any, dict[str, Any]], Signals]
IMAGE_NAMES = {"pdq": "pdq", "md5": "md5", "sha256": "sha256"}


def image_signal(signal_type: str, value: str) -> tuple[str, str] | None:
    """``(type, lowercase hex)`` for a valid image hash, else None."""
    try:
        kind, signal = normalize_signal(signal_type, value)
    except BankError:
        return None
    return kind.value, signal


def _false_positive(value: Any) -> bool:
    from threatexchange.exchanges.fetch_state import (
        AggregateSignalOpinionCategory,
        FetchedSignalMetadata,
    )

    if not isinstance(value, FetchedSignalMetadata):
        return False
    category = value.get_as_aggregate_opinion().category
    return category == AggregateSignalOpinionCategory.NEGATIVE_CLASS


def simple_signals(names: Mapping[str, str]) -> SignalsOf:
    """For exchanges keyed by ``(type, hash)``: ``names`` maps their type names to ours."""

    def signals(key: Any, value: Any, settings: dict[str, Any]) -> Signals:
        if value is None:
            return [], 0  # deleted upstream: it gives no hashes any more
        kind, raw = key
        image_type = names.get(kind)
        found = image_signal(image_type, raw) if image_type else None
        if found is None or _false_positive(value):
            return [], 1
        return [found], 0

    return signals


def threatexchange_signals(key: Any, value: Any, settings: dict[str, Any]) -> Signals:
    """ThreatExchange's HASH_MD5 and HASH_SHA256 are file hashes unless tagged as video."""
    if value is not None:
        tags = {tag for opinion in value.opinions for tag in opinion.tags}
        if "media_type_video" in tags:
            return [], 1
    return simple_signals({"HASH_PDQ": "pdq", "HASH_MD5": "md5", "HASH_SHA256": "sha256"})(
        key, value, settings
    )


def ncmec_signals(key: Any, entry: Any, settings: dict[str, Any]) -> Signals:
    """An NCMEC entry: its PDQ and MD5 if it is an image from a member we take hashes from."""
    from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEntryType

    if entry is None or entry.deleted:
        return [], 0
    members = settings.get("only_esp_ids") or []
    if entry.entry_type != NCMECEntryType.image or (members and entry.member_id not in members):
        return [], 1
    found = [
        signal
        for name, value in entry.fingerprints.items()
        if name.lower() in ("pdq", "md5") and (signal := image_signal(name.lower(), value))
    ]
    return found, 0 if found else 1

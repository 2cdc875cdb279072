"""What a preview card in a queue says about its item: verdict, top labels, matches, holder.

Built for a whole page at once, with one query per kind of data (scan results, sources,
people), never one per card.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.review import Decision
from app.models.scan import ScanResult, Verdict
from app.models.source import Source
from app.models.types import utcnow
from app.models.user import User
from app.services.claims import holder_id

VERDICT_RANK = {Verdict.MATCH: 3, Verdict.FLAG: 2, Verdict.ERROR: 1, Verdict.CLEAR: 0}
TOP_LABELS = 3


@dataclass
class ScanSummary:
    """The latest scan round of an item in a few words."""

    verdict: str | None = None  # the most serious verdict of the round
    labels: list[tuple[str, float | None]] = field(default_factory=list)  # best score first
    matches: list[tuple[str, int | None]] = field(default_factory=list)  # bank name, distance
    lead_only: bool = False


@dataclass
class Card:
    """One item in a queue grid or list."""

    item: Item
    source: str
    scans: ScanSummary
    holder: str | None = None  # who holds a live claim on it
    decision: Decision | None = None
    decider: str | None = None


def scan_summaries(item_ids: Iterable[str]) -> dict[str, ScanSummary]:
    """The latest scan round of each item, summarised."""
    ids = list(item_ids)
    rows: dict[str, list[ScanResult]] = {}
    for result in db.session.scalars(select(ScanResult).where(ScanResult.item_id.in_(ids))):
        kept = rows.setdefault(result.item_id, [])
        if kept and kept[0].scan_round < result.scan_round:
            kept.clear()
        if not kept or kept[0].scan_round == result.scan_round:
            kept.append(result)
    return {item_id: summarise(results) for item_id, results in rows.items()}


def summarise(results: list[ScanResult]) -> ScanSummary:
    """One round's results in a few words."""
    from app.services.reveal import lead_only_labels

    summary = ScanSummary()
    best: dict[str, float | None] = {}
    wanted = lead_only_labels()
    for result in results:
        if result.verdict and (
            summary.verdict is None
            or VERDICT_RANK.get(result.verdict, 0) > VERDICT_RANK.get(summary.verdict, 0)
        ):
            summary.verdict = result.verdict
        for label in result.labels or []:
            name, score = str(label.get("name")), label.get("score")
            if name not in best or (score or 0) > (best[name] or 0):
                best[name] = score
        for match in result.matches or []:
            name, distance = str(match.get("bank_name") or "bank"), match.get("distance")
            closest = dict(summary.matches)
            if name not in closest or (distance is not None and distance < (closest[name] or 0)):
                closest[name] = distance
                summary.matches = list(closest.items())
            if {str(label).lower() for label in match.get("labels") or []} & wanted:
                summary.lead_only = True
    summary.labels = sorted(best.items(), key=lambda pair: -(pair[1] or 0))[:TOP_LABELS]
    return summary


def people(user_ids: Iterable[int | None]) -> dict[int, str]:
    """Display names (or emails) of users by id."""
    ids = {user_id for user_id in user_ids if user_id is not None}
    if not ids:
        return {}
    return {
        user.id: user.display_name or user.email
        for user in db.session.scalars(select(User).where(User.id.in_(ids)))
    }


def source_names() -> dict[int, str]:
    """Every source's name by id (sources are few)."""
    return {
        source_id: name for source_id, name in db.session.execute(select(Source.id, Source.name))
    }


def cards_for(
    items: list[Item], decisions: dict[str, Decision] | None = None, now: datetime | None = None
) -> list[Card]:
    """Cards for a page of items (with the Decided queue's decisions)."""
    now = now or utcnow()
    decisions = decisions or {}
    summaries = scan_summaries(item.id for item in items)
    holders = {item.id: holder_id(item, now) for item in items}
    names = people([*holders.values(), *(d.user_id for d in decisions.values())])
    sources = source_names()
    cards = []
    for item in items:
        decision = decisions.get(item.id)
        holder = holders[item.id]
        cards.append(
            Card(
                item=item,
                source=sources.get(item.source_id, "?"),
                scans=summaries.get(item.id, ScanSummary()),
                holder=names.get(holder) if holder is not None else None,
                decision=decision,
                decider=names.get(decision.user_id) if decision and decision.user_id else None,
            )
        )
    return cards

"""Where a scanned item goes, until admins' rules decide it: the pipeline's default routing.

Any ``match`` or ``flag`` puts the item in front of a moderator (matches first). A scanner that
failed is never taken for "nothing found": by default such an item is queued too
(``PIPELINE_ROUTE_ON_ERROR``). An item every scanner cleared goes to ``PIPELINE_ROUTE_ON_CLEAR``
(``cleared``, or ``queued`` for a team that wants to see everything).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app

from app.models.scan import Verdict
from app.services.states import Status

# Higher is reviewed first; a matching rule sets its own (app/services/rules.py).
PRIORITY = {Verdict.MATCH: 100, Verdict.FLAG: 50, Verdict.ERROR: 20, Verdict.CLEAR: 0}
ROUTES_ON_CLEAR = (Status.CLEARED, Status.QUEUED)
ROUTES_ON_ERROR = (Status.QUEUED, Status.ESCALATED, Status.CLEARED)


@dataclass(frozen=True)
class Route:
    """Where an item goes, with what priority, and a short reason in moderators' words."""

    status: str
    priority: int
    reason: str


def choose_route(results: Iterable[Any]) -> Route:
    """The route for a finished scan round, from its rows (scanner, verdict, labels)."""
    by_verdict: dict[str, list[str]] = {verdict: [] for verdict in Verdict.ALL}
    for result in results:
        verdict = result.verdict if result.verdict in by_verdict else Verdict.ERROR
        labels = sorted({label["name"] for label in result.labels or []})
        by_verdict[verdict].append(
            f"{result.scanner} ({', '.join(labels)})" if labels else result.scanner
        )
    config = current_app.config
    found = [
        f"{verdict} by {', '.join(names)}"
        for verdict, names in by_verdict.items()
        if names and verdict in (Verdict.MATCH, Verdict.FLAG)
    ]
    failed = by_verdict[Verdict.ERROR]
    failure_note = f"failed: {', '.join(failed)}" if failed else ""
    if found:
        top = Verdict.MATCH if by_verdict[Verdict.MATCH] else Verdict.FLAG
        return Route(Status.QUEUED.value, PRIORITY[top], _join(*found, failure_note))
    if failed:
        status = _configured("PIPELINE_ROUTE_ON_ERROR", Status.QUEUED, ROUTES_ON_ERROR, config)
        return Route(status, PRIORITY[Verdict.ERROR], _join(f"scanner {failure_note}"))
    status = _configured("PIPELINE_ROUTE_ON_CLEAR", Status.CLEARED, ROUTES_ON_CLEAR, config)
    cleared = by_verdict[Verdict.CLEAR]
    reason = "cleared by every scanner" if cleared else "no scanner is switched on"
    return Route(status, PRIORITY[Verdict.CLEAR], reason)


def _configured(key: str, default: Status, allowed: tuple[Status, ...], config: Any) -> str:
    value = str(config.get(key, default.value))
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)[:500]

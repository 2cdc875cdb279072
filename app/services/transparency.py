"""The transparency report: what a platform publishes about its moderation for a period.

Shaped after what the EU Digital Services Act asks of a transparency report (Articles 15 and
24): how much content came in, the actions taken, by category and by whether automated means or
a human took them, reports to authorities, reversals, and the median time to act. Figures only:
no item ids, no user names, nothing about any one person. CSV is one ``section,key,value`` row
per figure so a spreadsheet can pivot it; JSON keeps the same sections as objects.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models.item import Item
from app.models.report import AuthorityReport, ReportStatus
from app.models.review import Decision
from app.models.rule import Rule, RuleHit, RuleOutcome
from app.models.types import utcnow
from app.services.metrics import day_window, handling_seconds, percentiles

SENT = (ReportStatus.SUBMITTED, ReportStatus.RETRACTED)  # a retracted report was still made


def build_report(start: date, end: date) -> dict[str, Any]:
    """The report for the days ``start`` to ``end`` (both included), as nested dicts."""
    if end < start:
        raise ValueError("The period ends before it starts: swap the dates.")
    begin, finish = day_window(start, end)
    in_period = (Decision.created_at >= begin, Decision.created_at < finish)
    items = (
        db.session.scalar(
            select(func.count())
            .select_from(Item)
            .where(Item.created_at >= begin, Item.created_at < finish)
        )
        or 0
    )
    kept = Decision.undone_at.is_(None)
    human_actions = _counts(
        select(Decision.outcome, func.count()).where(*in_period, kept).group_by(Decision.outcome)
    )
    human_removals = _counts(
        select(func.coalesce(Decision.category, "unspecified"), func.count())
        .where(*in_period, kept, Decision.outcome == "remove")
        .group_by(Decision.category)
    )
    human_dsa = _counts(
        select(func.coalesce(Decision.dsa_category, "unspecified"), func.count())
        .where(*in_period, kept, Decision.outcome == "remove")
        .group_by(Decision.dsa_category)
    )
    automated = _counts(
        select(
            func.coalesce(Rule.category, "unspecified"), func.count(func.distinct(RuleHit.item_id))
        )
        .join(Rule, Rule.id == RuleHit.rule_id)
        .where(
            RuleHit.created_at >= begin,
            RuleHit.created_at < finish,
            RuleHit.outcome == RuleOutcome.REMOVE,
        )
        .group_by(Rule.category)
    )
    reversals = (
        db.session.scalar(
            select(func.count())
            .select_from(Decision)
            .where(Decision.undone_at >= begin, Decision.undone_at < finish)
        )
        or 0
    )
    reports = _counts(
        select(AuthorityReport.kind, func.count())
        .where(
            AuthorityReport.status.in_(SENT),
            AuthorityReport.submitted_at >= begin,
            AuthorityReport.submitted_at < finish,
        )
        .group_by(AuthorityReport.kind)
    )
    handling = percentiles(handling_seconds(begin, finish))
    return {
        "period": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "generated_at": utcnow().isoformat(timespec="seconds"),
        },
        "items": {"received": items},
        "human_decisions": human_actions,
        "removals_by_category": {
            "human": human_removals,
            "automated": automated,
        },
        "removals_by_detection_method": {
            "human": sum(human_removals.values()),
            "automated": sum(automated.values()),
        },
        "removals_by_dsa_category": human_dsa,
        "decisions_reversed": reversals,
        "reports_to_authorities": {
            "ncmec_cybertipline": reports.get("ncmec", 0),
            "dsa_statements_of_reasons": reports.get("dsa", 0),
        },
        "median_handling_time_seconds": handling["median"],
    }


def _counts(query: Any) -> dict[str, int]:
    return {str(key): int(value) for key, value in db.session.execute(query).all()}


def rows(report: dict[str, Any], prefix: str = "") -> list[tuple[str, str, Any]]:
    """The report flattened to ``(section, key, value)`` rows, nested keys joined by dots."""
    flat: list[tuple[str, str, Any]] = []
    for key, value in report.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            for section, inner, leaf in rows(value, name):
                flat.append((section, inner, leaf))
        else:
            section, _, leaf_key = name.rpartition(".")
            flat.append((section or name, leaf_key if section else "", value))
    return flat


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "key", "value"])
    for section, key, value in rows(report):
        writer.writerow([section, key, "" if value is None else value])
    return buffer.getvalue()

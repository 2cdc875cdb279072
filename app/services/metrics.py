"""Statistics for leads: what came in, what was decided, how fast.

Figures are computed from the records themselves (items, decisions, scan results, rule hits,
exposure days) for a period. Queue depth has no history of its own, so a periodic task samples
it every five minutes into ``queue_samples``; the same task logs a warning when the queue backs
up or a scanner is slow, so an operator's log alerting sees trouble before moderators do.
The ``/metrics`` scrape is rendered by ``app.services.prometheus`` from the same helpers.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime, time, timedelta
from statistics import median, quantiles
from typing import Any

from flask import current_app
from huey import crontab
from sqlalchemy import func, select

from app.extensions import db, huey
from app.models.item import Item
from app.models.job import Job, JobStatus
from app.models.ops import QueueSample
from app.models.review import Decision, ExposureDay
from app.models.rule import Rule, RuleHit
from app.models.scan import ScanResult, ScanStatus, Verdict
from app.models.types import utcnow
from app.models.user import User

log = logging.getLogger(__name__)

SAMPLE_MINUTES = 5


def day_window(start: date, end: date) -> tuple[datetime, datetime]:
    """``start`` 00:00 UTC to the end of ``end`` (the last day is included)."""
    begin = datetime.combine(start, time(), tzinfo=utcnow().tzinfo)
    return begin, datetime.combine(end + timedelta(days=1), time(), tzinfo=begin.tzinfo)


def handling_seconds(begin: datetime, finish: datetime) -> list[float]:
    """Seconds from ingest to the first human decision, for decisions taken in the window."""
    first = (
        select(Decision.item_id, func.min(Decision.created_at).label("decided"))
        .where(Decision.undone_at.is_(None))
        .group_by(Decision.item_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Item.created_at, first.c.decided)
        .join(first, first.c.item_id == Item.id)
        .where(first.c.decided >= begin, first.c.decided < finish)
    ).all()
    # SQLite hands back naive aggregates; every stored time is UTC.
    return [(_aware(decided) - _aware(created)).total_seconds() for created, decided in rows]


def _aware(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Median and 90th percentile, or None for an empty list."""
    if not values:
        return {"median": None, "p90": None}
    p90 = quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"median": median(values), "p90": p90}


def statistics(start: date, end: date) -> dict[str, Any]:
    """Every figure of the statistics page for the days ``start`` to ``end``."""
    begin, finish = day_window(start, end)
    days = Counter(
        _aware(created).date().isoformat()
        for created in db.session.scalars(
            select(Item.created_at).where(Item.created_at >= begin, Item.created_at < finish)
        )
    )
    items_per_day = [
        (
            (start + timedelta(days=n)).isoformat(),
            days.get((start + timedelta(days=n)).isoformat(), 0),
        )
        for n in range((end - start).days + 1)
    ]
    decided = (
        Decision.created_at >= begin,
        Decision.created_at < finish,
        Decision.undone_at.is_(None),
    )
    by_outcome = _pairs(
        select(Decision.outcome, func.count()).where(*decided).group_by(Decision.outcome)
    )
    by_category = _pairs(
        select(func.coalesce(Decision.category, "none"), func.count())
        .where(*decided)
        .group_by(Decision.category)
    )
    scanners = db.session.execute(
        select(ScanResult.scanner, ScanResult.verdict, func.count())
        .where(ScanResult.finished_at >= begin, ScanResult.finished_at < finish)
        .group_by(ScanResult.scanner, ScanResult.verdict)
    ).all()
    scanner_rates: dict[str, dict[str, float]] = {}
    for scanner, verdict, count in scanners:
        entry = scanner_rates.setdefault(scanner, {"total": 0, "hits": 0, "errors": 0})
        entry["total"] += count
        entry["hits"] += count if verdict in (Verdict.MATCH, Verdict.FLAG) else 0
        entry["errors"] += count if verdict == Verdict.ERROR else 0
    for entry in scanner_rates.values():
        entry["hit_rate"] = entry["hits"] / entry["total"] if entry["total"] else 0.0
        entry["error_rate"] = entry["errors"] / entry["total"] if entry["total"] else 0.0
    throughput = db.session.execute(
        select(User.display_name, func.count(Decision.id))
        .join(Decision, Decision.user_id == User.id)
        .where(*decided)
        .group_by(User.id, User.display_name)
        .order_by(func.count().desc())
    ).all()
    exposure = _pairs(
        select(User.display_name, func.sum(ExposureDay.reveals))
        .join(ExposureDay, ExposureDay.user_id == User.id)
        .where(ExposureDay.day >= start, ExposureDay.day <= end)
        .group_by(User.id, User.display_name)
    )
    rule_hits = db.session.execute(
        select(Rule.name, func.count(RuleHit.id))
        .join(RuleHit, RuleHit.rule_id == Rule.id)
        .where(RuleHit.created_at >= begin, RuleHit.created_at < finish)
        .group_by(Rule.id, Rule.name)
        .order_by(func.count(RuleHit.id).desc())
    ).all()
    samples = db.session.execute(
        select(QueueSample.sampled_at, QueueSample.queued + QueueSample.escalated)
        .where(QueueSample.sampled_at >= begin, QueueSample.sampled_at < finish)
        .order_by(QueueSample.sampled_at)
    ).all()
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "items_per_day": items_per_day,
        "decisions_by_outcome": by_outcome,
        "decisions_by_category": by_category,
        "time_to_decision": percentiles(handling_seconds(begin, finish)),
        "queue_depth": [(_aware(at).strftime("%m-%d %H:%M"), depth) for at, depth in samples],
        "scanners": scanner_rates,
        "moderators": [
            {"name": name, "decisions": count, "reveals": exposure.get(name, 0)}
            for name, count in throughput
        ],
        "rule_hits": [(name, count) for name, count in rule_hits],
    }


def _pairs(query: Any) -> dict[str, int]:
    return {str(key): int(value or 0) for key, value in db.session.execute(query).all()}


def queue_depth() -> dict[str, int]:
    """Items waiting for review or scanning now, and jobs waiting for a worker."""
    counts = _pairs(
        select(Item.status, func.count())
        .where(Item.status.in_(["queued", "escalated", "scanning"]))
        .group_by(Item.status)
    )
    waiting = db.session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED)
    )
    return {
        "queued": counts.get("queued", 0),
        "escalated": counts.get("escalated", 0),
        "scanning": counts.get("scanning", 0),
        "jobs_waiting": int(waiting or 0),
    }


def sample_queue(now: datetime | None = None) -> QueueSample | None:
    """Record the queue depth (once per interval however many consumers run); warn on trouble."""
    now = now or utcnow()
    recent = db.session.scalar(
        select(QueueSample.id)
        .where(QueueSample.sampled_at > now - timedelta(minutes=SAMPLE_MINUTES - 1))
        .limit(1)
    )
    if recent is not None:
        return None
    sample = QueueSample(sampled_at=now, **queue_depth())
    db.session.add(sample)
    db.session.commit()
    backlog = current_app.config.get("QUEUE_BACKLOG_WARN", 500)
    if sample.queued + sample.escalated > backlog or sample.jobs_waiting > backlog:
        log.warning(
            "queue backlog: %d items await review, %d jobs await a worker",
            sample.queued + sample.escalated,
            sample.jobs_waiting,
        )
    warn_slow_scanners(now - timedelta(minutes=SAMPLE_MINUTES), now)
    return sample


def warn_slow_scanners(begin: datetime, finish: datetime) -> list[str]:
    """Log a warning for each scanner whose median time in the window exceeds the limit."""
    limit_ms = current_app.config.get("SCANNER_SLOW_MS", 10_000)
    rows = db.session.execute(
        select(ScanResult.scanner, ScanResult.duration_ms).where(
            ScanResult.finished_at >= begin,
            ScanResult.finished_at < finish,
            ScanResult.status == ScanStatus.DONE,
            ScanResult.duration_ms.is_not(None),
        )
    ).all()
    durations: dict[str, list[float]] = {}
    for scanner, duration in rows:
        durations.setdefault(scanner, []).append(duration)
    slow = sorted(name for name, values in durations.items() if median(values) > limit_ms)
    for name in slow:
        log.warning(
            "scanner %s is slow: median %.0f ms over %d scans (limit %d ms)",
            name,
            median(durations[name]),
            len(durations[name]),
            limit_ms,
        )
    return slow


@huey.periodic_task(crontab(minute=f"*/{SAMPLE_MINUTES}"), name="metrics.sample_queue")
def sample_queue_task() -> None:
    """Periodic: a lost sample is only a gap in a chart, so this is not a durable job."""
    with huey.flask_app.app_context():  # type: ignore[attr-defined]
        sample_queue()

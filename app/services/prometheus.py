"""The ``GET /metrics`` scrape: current figures in the Prometheus text exposition format.

Gauges and counters are computed from the records at scrape time (items, jobs, decisions, scan
results, worker heartbeats); the figures for people live in ``app.services.metrics``, which this
module borrows the time-to-decision computation from.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models.item import Item
from app.models.job import Job
from app.models.review import Decision
from app.models.scan import ScanResult
from app.models.types import utcnow
from app.services.metrics import handling_seconds, percentiles


def prometheus_text() -> str:
    """The current figures in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: dict[tuple, float]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        for labels, value in sorted(samples.items()):
            rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels)
            lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")

    family(
        "modtools_items",
        "gauge",
        "Items by status.",
        {
            (("status", status),): count
            for status, count in _pairs(
                select(Item.status, func.count()).group_by(Item.status)
            ).items()
        },
    )
    family(
        "modtools_jobs",
        "gauge",
        "Background jobs by status.",
        {
            (("status", status),): count
            for status, count in _pairs(
                select(Job.status, func.count()).group_by(Job.status)
            ).items()
        },
    )
    family(
        "modtools_decisions_total",
        "counter",
        "Decisions by outcome (undone excluded).",
        {
            (("outcome", outcome),): count
            for outcome, count in _pairs(
                select(Decision.outcome, func.count())
                .where(Decision.undone_at.is_(None))
                .group_by(Decision.outcome)
            ).items()
        },
    )
    scans = db.session.execute(
        select(ScanResult.scanner, ScanResult.verdict, func.count())
        .where(ScanResult.verdict.is_not(None))
        .group_by(ScanResult.scanner, ScanResult.verdict)
    ).all()
    family(
        "modtools_scan_results_total",
        "counter",
        "Scanner results by verdict.",
        {(("scanner", s), ("verdict", v)): c for s, v, c in scans},
    )
    now = utcnow()
    times = percentiles(handling_seconds(now - timedelta(days=1), now))
    family(
        "modtools_time_to_decision_seconds",
        "gauge",
        "Ingest to first decision over the last 24 hours.",
        {
            (("quantile", q),): value
            for q, value in (("0.5", times["median"]), ("0.9", times["p90"]))
            if value is not None
        },
    )
    from app.services.jobs import live_workers

    family(
        "modtools_workers_alive",
        "gauge",
        "Consumers with a recent heartbeat.",
        {(): len(live_workers(current_app.config["WORKER_STALE_SECONDS"]))},
    )
    return "\n".join(lines) + "\n"


def _pairs(query: Any) -> dict[str, int]:
    return {str(key): int(value or 0) for key, value in db.session.execute(query).all()}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

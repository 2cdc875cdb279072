"""When exchanges are fetched: every minute the schedule queues those that are due, and an admin
can queue one at once ("Fetch now").

The Huey periodic task only looks and queues: each fetch is a durable ``exchange.fetch`` job
(``exchange_fetch.fetch_job``), so a fetch queued before a crash runs after the restart. An
exchange is due when it is enabled, not being fetched, and its last fetch started at least its
schedule's minutes ago, or stopped at its time budget with more to fetch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from huey import crontab
from sqlalchemy import or_, select

from app.extensions import db, huey
from app.models.exchange import Exchange
from app.models.types import utcnow
from app.services import jobs
from app.services.audit import Actor, record
from app.services.exchange_fetch import CLAIM_EXPIRES, FETCH_JOB, FetchBusy, claim


def request_fetch(exchange: Exchange, actor: Actor, trigger: str = "manual") -> None:
    """Queue a fetch now ("Fetch now"); FetchBusy if one is already queued or running."""
    if not claim(exchange):
        raise FetchBusy(f"A fetch of {exchange.name} is already queued or running.")
    record(
        "exchange.fetch_requested",
        actor,
        target_type="exchange",
        target_id=exchange.id,
        details={"trigger": trigger},
    )
    jobs.enqueue(FETCH_JOB, exchange.id, trigger, max_attempts=1)


def due_exchanges(now: datetime | None = None) -> list[Exchange]:
    """Enabled exchanges not being fetched whose schedule says fetch (or that have more)."""
    now = now or utcnow()
    candidates = db.session.scalars(
        select(Exchange).where(
            Exchange.enabled.is_(True),
            or_(
                Exchange.fetch_claimed_at.is_(None), Exchange.fetch_claimed_at < now - CLAIM_EXPIRES
            ),
        )
    )
    return [
        exchange
        for exchange in candidates
        if exchange.more_to_fetch
        or exchange.last_run_at is None
        or exchange.last_run_at + timedelta(minutes=exchange.schedule_minutes) <= now
    ]


def enqueue_due(now: datetime | None = None) -> list[int]:
    """Queue a fetch job for every due exchange; return their ids."""
    queued = []
    for exchange in due_exchanges(now):
        if claim(exchange, now):
            jobs.enqueue(FETCH_JOB, exchange.id, "schedule", max_attempts=1)
            queued.append(exchange.id)
    return queued


@huey.periodic_task(crontab(minute="*"), name="exchanges.schedule")
def schedule_exchanges() -> None:
    """Every minute: queue the exchanges that are due."""
    app = huey.flask_app  # type: ignore[attr-defined]
    with app.app_context():
        enqueue_due()

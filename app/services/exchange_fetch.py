"""Fetching exchanges into their banks: the run, the durable job and the schedule.

A run asks the exchange's threatexchange client for updates after the stored checkpoint. Each
page commits together with the checkpoint that follows it, so a run that fails or is killed half
way keeps what it fetched, and the next run goes on from there: nothing fetched twice is added
twice, nothing is skipped. A run that reaches its time budget stops (``partial``) and the
scheduler carries on at once. A full fetch (the first one, after settings change, after a
checkpoint goes stale, and every fetch of a hash list) ends by sweeping out what it did not see.

``fetch_claimed_at`` keeps one fetch per exchange at a time, whoever starts it: the schedule
(``exchange_schedule``), "Fetch now" or the command line.

The job handler is registered at start-up, so this module must stay cheap to import: the
threatexchange library (16 MiB with faiss) is loaded by the first run, when it builds a client.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dacite
from flask import current_app
from sqlalchemy import or_, update

from app.extensions import db
from app.models.exchange import Exchange, ExchangeRun, RunStatus
from app.models.types import utcnow
from app.services import exchange_store, jobs
from app.services.audit import Actor, record
from app.services.exchange_errors import describe_error
from app.services.exchange_kinds import KINDS
from app.services.exchanges import credentials_of

if TYPE_CHECKING:
    from app.services.exchange_hash_list import HashListAccess

log = logging.getLogger(__name__)

FETCH_JOB = "exchange.fetch"
CLAIM_EXPIRES = timedelta(hours=1)  # longer than any run's budget: a claim older than this is lost
DEFAULT_BUDGET_SECONDS = 300.0
SYSTEM = Actor.system("exchange fetcher")


class FetchBusy(Exception):
    """A fetch of this exchange is already queued or running."""


def claim(exchange: Exchange, now: datetime | None = None) -> bool:
    """Mark the exchange as being fetched, unless it already is; commits."""
    now = now or utcnow()
    claimed = db.session.execute(
        update(Exchange)
        .where(
            Exchange.id == exchange.id,
            or_(
                Exchange.fetch_claimed_at.is_(None), Exchange.fetch_claimed_at < now - CLAIM_EXPIRES
            ),
        )
        .values(fetch_claimed_at=now)
    ).rowcount
    db.session.commit()
    return bool(claimed)


def release(exchange_id: int) -> None:
    """The fetch is over: the exchange may be fetched again; commits."""
    db.session.execute(
        update(Exchange).where(Exchange.id == exchange_id).values(fetch_claimed_at=None)
    )
    db.session.commit()


def fetch_now(exchange: Exchange, actor: Actor, trigger: str = "cli") -> ExchangeRun:
    """Run a fetch in this process (the command line); FetchBusy if one is already running."""
    if not claim(exchange):
        raise FetchBusy(f"A fetch of {exchange.name} is already queued or running.")
    try:
        return run(exchange, actor, trigger)
    finally:
        release(exchange.id)


@jobs.handler(FETCH_JOB)
def fetch_job(exchange_id: int, trigger: str) -> None:
    """The durable job: fetch one exchange, then let it be fetched again."""
    exchange = db.session.get(Exchange, exchange_id)
    if exchange is None:
        return
    try:
        run(exchange, SYSTEM, trigger)
    finally:
        release(exchange_id)


def run(exchange: Exchange, actor: Actor, trigger: str) -> ExchangeRun:
    """Fetch until up to date, the time budget or an error; audited. The caller holds the claim."""
    kind = KINDS[exchange.kind]
    db.session.execute(
        update(ExchangeRun)
        .where(ExchangeRun.exchange_id == exchange.id, ExchangeRun.status == RunStatus.RUNNING)
        .values(status=RunStatus.INTERRUPTED.value, finished_at=utcnow())
    )
    current = ExchangeRun(exchange_id=exchange.id, trigger=trigger)
    exchange.last_run_at = current.started_at = utcnow()
    db.session.add(current)
    db.session.commit()
    secrets: list[str] = []
    try:
        credentials = credentials_of(exchange)
        secrets = list(credentials.values())
        missing = [s.title for s in kind.credentials if s.required and not credentials.get(s.name)]
        if missing:
            raise ValueError(f"Set the credentials first: {', '.join(missing)}.")
        client = kind.build(exchange.name, exchange.settings or {}, credentials, _list_access())
        finished = _fetch_pages(exchange, kind, client, current)
        if finished and exchange.sweep_pending:
            current.removed += exchange_store.sweep(exchange)
            exchange.sweep_pending = False
        current.skipped += getattr(client, "skipped", 0)  # lines of a hash list we could not use
        current.status = (RunStatus.SUCCEEDED if finished else RunStatus.PARTIAL).value
        exchange.more_to_fetch = not finished
        exchange.last_success_at, exchange.last_error = utcnow(), None
    except Exception as error:  # every failure is shown on the exchange's page
        db.session.rollback()
        current.status, current.error = RunStatus.FAILED.value, describe_error(error, secrets)
        # The message, not the traceback: the library's exceptions carry URLs with tokens.
        log.warning("fetching exchange %s failed: %s", exchange.id, current.error)
        exchange.last_error, exchange.more_to_fetch = current.error, False
    current.finished_at = utcnow()
    exchange.added_count, exchange.removed_count = current.added, current.removed
    exchange.skipped_count, exchange.total_count = current.skipped, exchange_store.total(exchange)
    failed = current.status == RunStatus.FAILED
    record(
        "exchange.fetch_failed" if failed else "exchange.fetched",
        actor,
        target_type="exchange",
        target_id=exchange.id,
        details=_summary(current, exchange),
    )
    db.session.commit()
    return current


def _fetch_pages(exchange: Exchange, kind: Any, client: Any, current: ExchangeRun) -> bool:
    """Apply pages until the client has no more (True) or the budget is spent (False)."""
    checkpoint = load_checkpoint(client, exchange.checkpoint)
    if checkpoint is None or checkpoint.is_stale():
        checkpoint = None
        exchange.generation += 1  # a full fetch: what it does not see again is gone upstream
        exchange.sweep_pending = True
    budget = float(current_app.config.get("EXCHANGE_FETCH_BUDGET_SECONDS", DEFAULT_BUDGET_SECONDS))
    deadline = time.monotonic() + budget
    for delta in client.fetch_iter(_signal_types(), checkpoint):
        changes = exchange_store.apply_updates(exchange, kind, delta.updates)
        current.pages += 1
        current.records += changes.records
        current.added += changes.added
        current.removed += changes.removed
        current.skipped += changes.skipped
        exchange.checkpoint = dump_checkpoint(delta.checkpoint)
        db.session.commit()  # the page and the checkpoint after it, together
        if time.monotonic() > deadline:
            return False
    return True


def _signal_types() -> tuple[type, ...]:
    """What we index, as the library's signal types; the clients we use fetch every type anyway."""
    from threatexchange.signal_type.pdq.signal import PdqSignal

    return (PdqSignal,)


def dump_checkpoint(checkpoint: Any) -> dict[str, Any] | None:
    """The library's checkpoint (a dataclass) as JSON."""
    return None if checkpoint is None else dataclasses.asdict(checkpoint)


def load_checkpoint(client: Any, stored: dict[str, Any] | None) -> Any:
    """The stored checkpoint as the client's checkpoint class; None to start from scratch."""
    if stored is None:
        return None
    try:
        return dacite.from_dict(client.get_checkpoint_cls(), stored)
    except (dacite.DaciteError, TypeError, ValueError):
        log.warning("stored checkpoint no longer readable: fetching from scratch")
        return None


def _list_access() -> HashListAccess:
    from app.services.exchange_hash_list import HASH_LIST_DIR, HashListAccess

    config = current_app.config
    return HashListAccess(
        directory=Path(current_app.instance_path) / HASH_LIST_DIR,
        allow_networks=tuple(config.get("FETCH_ALLOW_NETWORKS") or ()),
        connect_timeout=float(config.get("FETCH_CONNECT_TIMEOUT", 5.0)),
        total_timeout=float(config.get("EXCHANGE_LIST_TIMEOUT_SECONDS", 300.0)),
    )


def _summary(current: ExchangeRun, exchange: Exchange) -> dict[str, Any]:
    return {
        "run": current.id,
        "trigger": current.trigger,
        "status": current.status,
        "pages": current.pages,
        "added": current.added,
        "removed": current.removed,
        "skipped": current.skipped,
        "total": exchange.total_count,
        "error": current.error,
    }

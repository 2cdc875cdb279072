"""Action runs: start them, carry them out as durable jobs with backoff, retry or cancel them.

A run is a row (``ActionRun``) committed before its job is queued. The job marks the run
``running``, calls the action with a ``RunContext`` (the item, the decision, the run's
``idempotency_key`` and ``external_ref``) and records the outcome. A failure worth retrying is
queued again after an exponential backoff until ``ACTIONS_RETRY_HOURS`` (default 24) have passed
since the run's window opened; ``ActionOutcome(ok=False)`` or ``PermanentJobError`` fail at once.

Runs a decision starts wait ``UNDO_SECONDS`` first, so the undo grace period stays usable; the
first run to start sets ``Decision.actions_started_at``, after which undo is refused. After each
run finishes for good, the ``action_completed`` event fires. See docs/actions.md.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, func, select, update

from app.extensions import db
from app.models.action import ActionRun, RunStatus
from app.models.item import Item
from app.models.review import Decision
from app.models.types import utcnow
from app.plugins import ActionContext, ActionOutcome, current_plugins
from app.services import audit, jobs
from app.services.audit import Actor
from app.services.plugin_settings import effective_settings

log = logging.getLogger(__name__)
ACTION_JOB = "action_run"
RUNNER = Actor.system("actions")


@dataclass(frozen=True)
class RunContext(ActionContext):
    """An ``ActionContext`` with what a retried run needs to avoid doubling its effect."""

    run_id: int = 0
    idempotency_key: str = ""
    external_ref: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def retry_hours() -> float:
    """How long a failing run keeps being retried."""
    return float(current_app.config.get("ACTIONS_RETRY_HOURS", 24))


def max_attempts_for(hours: float) -> int:
    """Attempts that fit in ``hours`` with the jobs' backoff at its shortest (half a step)."""
    elapsed, attempts = 0.0, 1
    while attempts < 200:
        step = min(jobs.BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), jobs.BACKOFF_CAP_SECONDS)
        if elapsed + step / 2 > hours * 3600:
            break
        elapsed, attempts = elapsed + step / 2, attempts + 1
    return attempts


def webhook_id(key: str) -> str:
    """The Standard Webhooks message id of a run: the same for every attempt of the same key."""
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def create_run(
    item_id: str,
    action: str,
    key: str,
    *,
    params: dict[str, Any] | None = None,
    decision_id: int | None = None,
    rule_id: int | None = None,
    requested_by: str = "system",
) -> ActionRun | None:
    """Add a queued run unless one with ``key`` exists (then None); the caller commits."""
    if db.session.scalar(select(ActionRun.id).where(ActionRun.idempotency_key == key)):
        return None
    run = ActionRun(
        item_id=item_id,
        action=action,
        params=params or {},
        decision_id=decision_id,
        rule_id=rule_id,
        requested_by=requested_by,
        idempotency_key=key,
        max_attempts=max_attempts_for(retry_hours()),
    )
    db.session.add(run)
    db.session.flush()
    return run


def dispatch(run: ActionRun, delay: float = 0) -> None:
    """Queue the run's job (commits the caller's changes with it)."""
    run.dispatched_at = utcnow()
    run.next_attempt_at = utcnow() + timedelta(seconds=delay) if delay else None
    jobs.enqueue(ACTION_JOB, run.id, max_attempts=3, delay=delay or None)


_UNDISPATCHED = (
    select(ActionRun)
    .where(ActionRun.status == RunStatus.QUEUED, ActionRun.dispatched_at.is_(None))
    .order_by(ActionRun.id)
)
# Built once: every scanned item asks (the item_scanned hook).
_UNDISPATCHED_OF_ITEM = _UNDISPATCHED.where(ActionRun.item_id == bindparam("item_id"))


def dispatch_pending(item_id: str | None = None, delay: float = 0) -> int:
    """Queue a job for each queued run that has none yet (of one item, or all); returns how many."""
    if item_id is None:
        runs = list(db.session.scalars(_UNDISPATCHED))
    else:
        runs = list(db.session.scalars(_UNDISPATCHED_OF_ITEM, {"item_id": item_id}))
    for run in runs:
        dispatch(run, delay)
    return len(runs)


def runs_for_item(item_id: str) -> list[ActionRun]:
    """Every run of the item, oldest first."""
    return list(
        db.session.scalars(
            select(ActionRun).where(ActionRun.item_id == item_id).order_by(ActionRun.id)
        )
    )


@jobs.handler(ACTION_JOB)
def run_action(run_id: int) -> None:
    """One attempt of one action run. Safe to call again for a run a crash left ``running``."""
    run = db.session.get(ActionRun, run_id, populate_existing=True)
    if run is None or run.status in RunStatus.FINISHED:
        return  # cancelled, or a duplicate delivery of this job
    decision = db.session.get(Decision, run.decision_id) if run.decision_id else None
    if decision is not None and decision.undone_at is not None:
        _finish(run, RunStatus.CANCELLED, error="The decision was undone before the action ran.")
        return
    action = current_plugins().actions.get(run.action)
    if action is None:
        _finish(run, RunStatus.FAILED, error=f"The action {run.action} is not installed.")
        return
    now = utcnow()
    if decision is not None:
        # One conditional UPDATE against undo's own: either the actions start (and undo is then
        # refused) or the undo happened first and this run is cancelled. Never both.
        started = db.session.execute(
            update(Decision)
            .where(Decision.id == decision.id, Decision.undone_at.is_(None))
            .values(actions_started_at=func.coalesce(Decision.actions_started_at, now))
        ).rowcount
        if not started:
            db.session.rollback()
            _finish(
                run, RunStatus.CANCELLED, error="The decision was undone before the action ran."
            )
            return
    run.status, run.started_at, run.attempts = RunStatus.RUNNING, now, run.attempts + 1
    db.session.commit()  # the item page shows "running"; no transaction is held during the call
    item = db.session.get(Item, run.item_id)
    ctx = RunContext(
        item=item,
        decision=decision,
        settings=effective_settings(action, _config(action.name)),
        attempt=run.attempts,
        timeout=action.timeout,
        run_id=run.id,
        idempotency_key=run.idempotency_key,
        external_ref=run.external_ref,
        params=dict(run.params or {}),
    )
    try:
        outcome = action.run(ctx)
    except jobs.PermanentJobError as error:
        _finish(run, RunStatus.FAILED, error=str(error))
        return
    except Exception as error:
        _failed_attempt(run, f"{type(error).__name__}: {error}"[:2000])
        return
    _record(run, outcome)


def _record(run: ActionRun, outcome: ActionOutcome) -> None:
    run.external_ref = outcome.reference or run.external_ref
    run.response_summary = (outcome.message or "")[:2000] or None
    if outcome.ok:
        _finish(run, RunStatus.SUCCEEDED)
    else:
        _finish(run, RunStatus.FAILED, error=outcome.message or "The action refused.")


def _failed_attempt(run: ActionRun, message: str) -> None:
    delay = jobs.backoff_seconds(run.attempts)
    deadline = run.window_started_at + timedelta(hours=retry_hours())
    if run.attempts >= run.max_attempts or utcnow() + timedelta(seconds=delay) > deadline:
        _finish(run, RunStatus.FAILED, error=f"Gave up after {run.attempts} attempts: {message}")
        return
    log.info(
        "action run %s attempt %d failed, retry in %.0fs: %s", run.id, run.attempts, delay, message
    )
    run.status, run.error = RunStatus.QUEUED, message
    dispatch(run, delay)


def _finish(run: ActionRun, status: str, error: str | None = None) -> None:
    run.status, run.finished_at, run.next_attempt_at = status, utcnow(), None
    run.error = error[:2000] if error else None if status == RunStatus.SUCCEEDED else run.error
    audit.record(
        f"action.{status}",
        RUNNER,
        target_type="item",
        target_id=run.item_id,
        details={
            "run_id": run.id,
            "action": run.action,
            "attempts": run.attempts,
            "external_ref": run.external_ref,
            "error": run.error,
        },
    )
    db.session.commit()
    if status != RunStatus.CANCELLED:
        current_plugins().fire("action_completed", item=db.session.get(Item, run.item_id), run=run)


def _config(name: str) -> Any:
    from app.models.plugin import PluginConfig

    return db.session.get(PluginConfig, name)

"""What a lead does to action runs by hand: retry a failed run, cancel a queued one, redeliver a
webhook. Each is audited; the run keeps its idempotency key, so a receiver can still dedupe."""

from __future__ import annotations

from app.extensions import db
from app.models.action import ActionRun, RunStatus
from app.models.types import utcnow
from app.services import audit
from app.services.actions import dispatch
from app.services.audit import Actor


class RunRefused(Exception):
    """A retry, cancel or redeliver that cannot be done now; ``message`` says why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def get_run(run_id: int) -> ActionRun:
    """The run, or RunRefused (404)."""
    run = db.session.get(ActionRun, run_id)
    if run is None:
        raise RunRefused("There is no such action run.", 404)
    return run


def retry(run_id: int, actor: Actor) -> ActionRun:
    """Queue a failed (or cancelled) run again with a fresh retry window; commits."""
    run = get_run(run_id)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise RunRefused(
            f"Only a failed or cancelled run can be retried; this one is {run.status}."
        )
    _requeue(run, actor, "action.retried")
    return run


def redeliver(run_id: int, actor: Actor) -> ActionRun:
    """Send a webhook run's callback again, with the same ``webhook-id``; commits."""
    run = get_run(run_id)
    if run.action != "webhook":
        raise RunRefused("Only webhook runs can be redelivered; retry other actions instead.", 400)
    if run.active:
        raise RunRefused("This callback is being delivered already; wait for it to finish.")
    _requeue(run, actor, "action.redelivered")
    return run


def cancel(run_id: int, actor: Actor) -> ActionRun:
    """Cancel a queued run (a running one cannot be stopped halfway); commits."""
    run = get_run(run_id)
    if run.status != RunStatus.QUEUED:
        raise RunRefused(f"Only a queued run can be cancelled; this one is {run.status}.")
    run.status, run.finished_at, run.next_attempt_at = RunStatus.CANCELLED, utcnow(), None
    audit.record(
        "action.cancelled",
        actor,
        target_type="item",
        target_id=run.item_id,
        details={"run_id": run.id, "action": run.action},
    )
    db.session.commit()
    return run


def _requeue(run: ActionRun, actor: Actor, event: str) -> None:
    previous = run.status
    run.status, run.error, run.finished_at = RunStatus.QUEUED, None, None
    run.attempts, run.window_started_at = 0, utcnow()
    audit.record(
        event,
        actor,
        target_type="item",
        target_id=run.item_id,
        details={"run_id": run.id, "action": run.action, "was": previous},
    )
    dispatch(run)  # commits

"""The built-in plugin that starts actions: after a decision, after a scan, after an action.

Registered from ``BUILTIN_PLUGINS`` like any plugin. ``item_decided`` creates the runs the action
mapping names (``app.services.actions_config``), delayed by the undo grace period.
``item_scanned`` tells the platform ``item.scanned`` when there is a callback URL, and queues the
runs a rule created while routing. ``action_completed`` tells the platform ``item.actioned`` after
a non-webhook action finished, so the platform hears about a quarantine or a report.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from app.extensions import db
from app.models.action import RunStatus
from app.plugins import hookimpl
from app.services import actions


def callback_url(item: Any) -> str | None:
    """Where the platform wants callbacks for this item: the item's URL, else its source's."""
    return item.callback_url or (item.source.callback_url if item.source else None)


@hookimpl
def item_decided(item: Any, decision: Any) -> None:
    """Create and queue the runs the decision's outcome and category start."""
    from app.services.actions_config import actions_for

    delay = float(current_app.config.get("UNDO_SECONDS", 30))
    created = []
    for name in actions_for(decision.outcome, decision.category):
        if name == "webhook" and not callback_url(item):
            continue  # nobody to tell
        params = {"event": "item.decided"} if name == "webhook" else {}
        run = actions.create_run(
            item.id,
            name,
            f"decision:{decision.id}:{name}",
            params=params,
            decision_id=decision.id,
            requested_by=decision.user.email if decision.user else "system",
        )
        if run is not None:
            created.append(run)
    db.session.commit()
    for run in created:
        actions.dispatch(run, delay)


@hookimpl
def item_scanned(item: Any, results: list[Any]) -> None:
    """Send ``item.scanned``; queue the runs a rule created when it routed the item."""
    scan_round = max((row.scan_round for row in results), default=1)
    if callback_url(item):
        actions.create_run(
            item.id,
            "webhook",
            f"scanned:{item.id}:{scan_round}",
            params={"event": "item.scanned"},
            requested_by="pipeline",
        )
        db.session.commit()
    actions.dispatch_pending(item.id)


@hookimpl
def action_completed(item: Any, run: Any) -> None:
    """Tell the platform what an action did (never about webhook runs: that would loop)."""
    if run.action == "webhook" or item is None or not callback_url(item):
        return
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return
    created = actions.create_run(
        item.id,
        "webhook",
        f"actioned:{run.id}:{run.status}",
        params={"event": "item.actioned", "run_id": run.id},
        decision_id=run.decision_id,
        rule_id=run.rule_id,
        requested_by="actions",
    )
    if created is not None:
        actions.dispatch(created)

"""The ``actions`` blueprint (``/actions``): an item's action runs, live, and a lead's controls.

``GET /actions/items/<id>`` answers htmx with the runs fragment (which polls itself while a run
is queued or running) and other requests with a page. Retry, cancel and redeliver are POSTs for
leads (CSRF-checked, audited) that answer with the fragment again.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from app import htmx
from app.extensions import db
from app.models.action import WebhookDelivery
from app.models.item import Item
from app.models.user import Role
from app.security import role_required
from app.services import actions, actions_manual
from app.views import request_actor

bp = Blueprint("actions", __name__, url_prefix="/actions")


def runs_context(item: Item) -> dict[str, Any]:
    """What the runs fragment shows: the runs, their webhook deliveries, whether to poll."""
    runs = actions.runs_for_item(item.id)
    deliveries: dict[int, list[WebhookDelivery]] = {}
    ids = [run.id for run in runs if run.action == "webhook"]
    if ids:
        for row in db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.run_id.in_(ids))
            .order_by(WebhookDelivery.id)
        ):
            deliveries.setdefault(row.run_id or 0, []).append(row)
    return {
        "item": item,
        "runs": runs,
        "deliveries": deliveries,
        "polling": any(run.active for run in runs),
    }


def _item(item_id: str) -> Item:
    found = db.session.get(Item, item_id)
    if found is None:
        abort(404, description="There is no such item.")
    return found


@bp.get("/items/<item_id>")
@role_required(Role.MODERATOR)
def item_runs(item_id: str) -> Any:
    """Every action run of the item, polled while any is waiting or running."""
    return htmx.render_page_or_fragment(
        "actions/item.html", "actions/_runs.html", **runs_context(_item(item_id))
    )


def _manual(run_id: int, change: Any) -> Any:
    try:
        run = change(run_id, request_actor())
    except actions_manual.RunRefused as refusal:
        abort(refusal.status, description=refusal.message)
    return render_template("actions/_runs.html", **runs_context(_item(run.item_id)))


@bp.post("/runs/<int:run_id>/retry")
@role_required(Role.LEAD)
def retry(run_id: int) -> Any:
    """Queue a failed or cancelled run again (lead)."""
    return _manual(run_id, actions_manual.retry)


@bp.post("/runs/<int:run_id>/cancel")
@role_required(Role.LEAD)
def cancel(run_id: int) -> Any:
    """Cancel a queued run (lead)."""
    return _manual(run_id, actions_manual.cancel)


@bp.post("/runs/<int:run_id>/redeliver")
@role_required(Role.LEAD)
def redeliver(run_id: int) -> Any:
    """Send a webhook run's callback again with the same webhook-id (lead)."""
    return _manual(run_id, actions_manual.redeliver)

"""``/items/<id>/…``: an item's scan results (polled while scanning) and re-scanning it.

The review item page includes ``items/_scan_results.html`` and points its polling here; this
blueprint also gives every item a plain scan-status page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, url_for
from flask_login import current_user

from app import htmx
from app.extensions import db
from app.models.item import Item
from app.models.user import Role
from app.security import role_required
from app.services import pipeline
from app.services.states import IllegalTransition
from app.views import request_actor

bp = Blueprint("items", __name__, url_prefix="/items")


def _item_or_404(item_id: str) -> Item:
    item = db.session.get(Item, item_id)
    if item is None:
        abort(404)
    return item


@bp.get("/<item_id>/scans")
@role_required(Role.MODERATOR)
def scans(item_id: str) -> Any:
    """The item's status and latest scan results; htmx (polling) gets just the results."""
    item = _item_or_404(item_id)
    return htmx.render_page_or_fragment(
        "items/scans.html",
        "items/_scan_results.html",
        item=item,
        scan_results=pipeline.latest_results(item.id),
        can_rescan=current_user.has_role(Role.LEAD),
    )


@bp.post("/<item_id>/rescan")
@role_required(Role.LEAD)
def rescan(item_id: str) -> Any:
    """Send the item through every switched-on scanner again (a new scan round)."""
    item = _item_or_404(item_id)
    try:
        pipeline.rescan(item, request_actor())
    except IllegalTransition:
        flash(f"An item that is {item.status} cannot be scanned again.", "error")
    else:
        flash("Scanning again. Results appear below as scanners finish.", "success")
    return htmx.redirect(url_for("items.scans", item_id=item_id))

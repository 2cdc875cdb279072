"""The ``media`` blueprint (``/media``): item images, only to logged-in users, never cached.

- ``preview``: the blurred greyscale preview from the derived store; safe, so login suffices.
- ``thumbnail`` and ``original``: the real picture; only with a reveal token that was issued to
  this user for this item (``app.services.reveal``). The token's mode decides what is sent: the
  original's bytes for ``full``, a greyscale or partly blurred rendering made here otherwise.

Every image is sent with the type it was stored as, ``X-Content-Type-Options: nosniff`` and
``Cache-Control: no-store``, so no browser or proxy keeps a copy.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, request
from flask_login import current_user

from app.extensions import db
from app.models.item import Item
from app.models.review import RevealMode
from app.models.user import Role
from app.security import role_required
from app.services import reveal, storage
from app.services.storage import derived_store, original_store

bp = Blueprint("media", __name__, url_prefix="/media")


def image_response(data: bytes, mime: str) -> Response:
    """Image bytes with the headers every image here carries."""
    response = Response(data, mimetype=mime)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = "inline"
    return response


def _item(item_id: str) -> Item:
    item = db.session.get(Item, item_id)
    if item is None or item.sha256 is None:
        abort(404)
    return item


def _derived(item: Item, kind: str) -> bytes:
    try:
        return derived_store().get(item.sha256 or "", kind)
    except (storage.MissingMedia, ValueError):
        abort(404, description="This image has no preview yet, or its media were purged.")


def _granted_mode(item: Item) -> RevealMode:
    """The mode this request's reveal token grants, or 403."""
    user = current_user._get_current_object()
    mode = reveal.check_token(request.args.get("token"), user.id, item.id)
    if mode is None:
        abort(403, description="Reveal the item first: this link has expired or is not yours.")
    # The token was issued under the rules of its time; a role taken away since still counts.
    if not user.has_role(Role.LEAD) and reveal.sensitivity(item.id).lead_only:
        abort(403, description="Only a lead or an admin can view this item.")
    return mode


@bp.get("/items/<item_id>/preview")
@role_required(Role.MODERATOR)
def preview(item_id: str) -> Any:
    """The blurred, greyscale preview."""
    item = _item(item_id)
    return image_response(_derived(item, "preview"), storage.DERIVED_MIME)


@bp.get("/items/<item_id>/thumbnail")
@role_required(Role.MODERATOR)
def thumbnail(item_id: str) -> Any:
    """The small real picture, with a reveal token (rendered greyscale unless ``full``)."""
    item = _item(item_id)
    mode = _granted_mode(item)
    data = _derived(item, "thumb")
    if mode is not RevealMode.FULL:
        data = reveal.render(data, mode, reveal.preferences(current_user.id))
    return image_response(data, storage.DERIVED_MIME)


@bp.get("/items/<item_id>/original")
@role_required(Role.MODERATOR)
def original(item_id: str) -> Any:
    """The original as the reveal token allows: its bytes (full) or a rendering of them."""
    item = _item(item_id)
    mode = _granted_mode(item)
    data = _original_bytes(item)
    if mode is RevealMode.FULL:
        return image_response(data, item.mime or "application/octet-stream")
    return image_response(
        reveal.render(data, mode, reveal.preferences(current_user.id)), "image/webp"
    )


def _original_bytes(item: Item) -> bytes:
    """The original from the served store or, for leads only, from quarantine."""
    from plugins.quarantine import store as quarantine

    sha256 = item.sha256 or ""
    try:
        return original_store().get(sha256)
    except storage.MissingMedia:
        pass
    if quarantine.is_quarantined(sha256):
        if not current_user.has_role(Role.LEAD):
            abort(403, description="This original is quarantined: only a lead can reveal it.")
        try:
            return quarantine.open_quarantined(sha256)
        except storage.MissingMedia:
            pass
    abort(404, description="The original was purged by the retention policy; its hashes stay.")

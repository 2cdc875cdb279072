"""Revealing an item (audited, with a short-lived token), viewing preferences, the dashboard.

A reveal is a POST (CSRF-checked) that answers with the image fragment pointing at the media
route with a fresh token; "hide" fetches the blurred preview fragment again. The dashboard is
both a route (for polling) and a template global, so the home page can include
``main/_dashboard.html`` without its view knowing about review.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask, abort, flash, render_template, request, url_for

from app import htmx
from app.models.types import utcnow
from app.models.user import Role
from app.security import role_required
from app.services import claims, decisions, queues, reveal
from app.views import request_actor
from app.views.review import bp, me
from app.views.review_item import item_or_404


@bp.post("/items/<item_id>/reveal")
@role_required(Role.MODERATOR)
def reveal_item(item_id: str) -> Any:
    """Reveal the original in the chosen mode (v); recorded in the audit log."""
    found = item_or_404(item_id)
    user = me()
    mode = request.form.get("mode") or reveal.default_mode(reveal.preferences(user.id)).value
    try:
        grant = reveal.reveal(found, user, mode, request_actor(), request.form.get("reason"))
    except reveal.RevealRefused as refusal:
        abort(refusal.status, description=refusal.message)
    if found.claimed_by_id == user.id:
        claims.renew(found.id, user)  # looking closely is working on it
    return render_template(
        "review/_image.html",
        item=found,
        revealed=grant.mode.value,
        image_url=url_for("media.original", item_id=found.id, token=grant.token),
        exposure=grant.exposure_today,
        reminder_at=reveal.reminder_at(),
        oob_exposure=True,
    )


@bp.get("/items/<item_id>/image")
@role_required(Role.MODERATOR)
def hide_item(item_id: str) -> Any:
    """The blurred preview again (hide the revealed image)."""
    found = item_or_404(item_id)
    return render_template(
        "review/_image.html", item=found, revealed=None, sensitivity=reveal.sensitivity(found.id)
    )


@bp.route("/preferences", methods=["GET", "POST"])
@role_required(Role.MODERATOR)
def preferences() -> Any:
    """Blur strength, greyscale, auto-reveal of items no scanner flagged."""
    user = me()
    if request.method == "POST":
        try:
            strength = int(request.form.get("blur_strength", "6"))
        except ValueError:
            strength = 6
        reveal.save_preferences(
            user.id,
            strength,
            bool(request.form.get("greyscale")),
            bool(request.form.get("auto_reveal_unflagged")),
        )
        flash("Your viewing preferences are saved.", "success")
        return htmx.redirect(url_for("review.preferences"))
    return render_template(
        "review/preferences.html",
        prefs=reveal.preferences(user.id),
        exposure=reveal.exposure_today(user.id),
        reminder_at=reveal.reminder_at(),
    )


def dashboard_data() -> dict[str, Any]:
    """The moderator dashboard's numbers for the logged-in user."""
    user = me()
    return {
        "counts": queues.counts(user),
        "decided_today": queues.decided_today(user.id),
        "exposure": reveal.exposure_today(user.id),
        "reminder_at": reveal.reminder_at(),
        "oldest": queues.oldest_waiting(),
        "undo": decisions.latest_undoable(user.id),
    }


@bp.get("/dashboard")
@role_required(Role.MODERATOR)
def dashboard() -> Any:
    """The dashboard: the fragment for htmx (the home page polls it), else a page."""
    return htmx.render_page_or_fragment(
        "review/dashboard.html", "main/_dashboard.html", dashboard=dashboard_data()
    )


@bp.record_once
def _register_globals(state: Any) -> None:
    app: Flask = state.app
    app.add_template_global(dashboard_data, "review_dashboard")
    app.add_template_global(undo_seconds_left, "undo_seconds_left")
    app.add_template_filter(age_words, "age")
    app.add_template_filter(duration_words, "duration")


def undo_seconds_left(decision: Any) -> int:
    """Whole seconds until ``decision`` can no longer be undone (for review.js's countdown)."""
    left = decision.created_at + timedelta(seconds=decisions.undo_seconds()) - utcnow()
    return max(0, int(left.total_seconds()))


def duration_words(delta: Any) -> str:
    """A duration the way people say it: "under a minute", "4 min", "3 h", "2 days"."""
    if not isinstance(delta, timedelta):
        return ""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def age_words(moment: Any) -> str:
    """How long ago ``moment`` was: "just now", "4 min ago", "2 days ago"."""
    if not isinstance(moment, datetime):
        return ""
    words = duration_words(utcnow() - moment)
    return "just now" if words == "under a minute" else f"{words} ago"

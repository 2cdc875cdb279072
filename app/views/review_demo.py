"""The demo buttons on the queue page (admins only): load demo data, or remove it again.

Loading runs as a background job through the ingest service in this process; the command line
(``flask --app wsgi demo``) sends the same images through the HTTP API instead.
"""

from __future__ import annotations

from typing import Any

from flask import flash, url_for

from app import htmx
from app.models.user import Role
from app.security import role_required
from app.services import demo, jobs
from app.views import request_actor
from app.views.review import QUEUE_CHANGED, bp


@bp.post("/demo")
@role_required(Role.ADMIN)
def load_demo() -> Any:
    """Queue the demo-data job."""
    jobs.enqueue(demo.LOAD_JOB, demo.DEMO_COUNT, max_attempts=1)
    flash(
        f"Loading {demo.DEMO_COUNT} demo images. They appear in the queue as the scanners "
        "finish; the counts update by themselves.",
        "success",
    )
    return htmx.trigger(htmx.redirect(url_for("review.queue")), QUEUE_CHANGED)


@bp.post("/demo/remove")
@role_required(Role.ADMIN)
def remove_demo() -> Any:
    """Delete every demo item, its media, the demo source and bank."""
    removed = demo.remove_demo(request_actor())
    flash(f"Removed {removed.items} demo items, the demo source and the demo bank.", "success")
    return htmx.trigger(htmx.redirect(url_for("review.queue")), QUEUE_CHANGED)

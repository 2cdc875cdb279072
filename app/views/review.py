"""The ``review`` blueprint (``/review``): the queues, claiming "next", bulk decisions, counts.

The item screen (``review_item``), reveals (``review_reveal``) and the demo buttons
(``review_demo``) register their routes on the same blueprint. Every route needs at least the
moderator role; the escalated queue needs a lead. The queue, its filters and its sort travel in
the query string (``QueueContext``), so every view of a queue is a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from app import htmx
from app.extensions import db
from app.models.source import Source
from app.models.user import Role, User
from app.security import role_required
from app.services import claims, decisions, demo, policy, queues
from app.services.queue_filters import Filters
from app.views import request_actor
from app.views.review_cards import cards_for

bp = Blueprint("review", __name__, url_prefix="/review")
QUEUE_CHANGED = "queue-changed"  # the event that makes counts and lists refresh


@dataclass(frozen=True)
class QueueContext:
    """Which queue the moderator is working through, with its filters and order."""

    queue: queues.Queue
    filters: Filters
    sort: str

    @classmethod
    def from_args(cls, args: MultiDict[str, str]) -> QueueContext:
        """Read the context from a query string or form; unknown values fall back to defaults."""
        try:
            queue = queues.Queue(args.get("queue") or queues.Queue.REVIEW.value)
        except ValueError:
            queue = queues.Queue.REVIEW
        sort = args.get("sort") or ""
        return cls(queue, Filters.from_args(args), sort if sort in queues.SORTS else "")

    def query_args(self, **extra: str) -> dict[str, str]:
        """The context as query arguments (defaults left out, so links stay short)."""
        args = {"queue": self.queue.value} if self.queue is not queues.Queue.REVIEW else {}
        if self.sort:
            args["sort"] = self.sort
        return {**args, **self.filters.query_args(), **extra}

    def query_string(self, **extra: str) -> str:
        """``query_args`` encoded, with a leading ``?`` when not empty."""
        args = self.query_args(**extra)
        return "?" + urlencode(args) if args else ""


def me() -> User:
    """The logged-in user as a model instance."""
    return current_user._get_current_object()  # type: ignore[no-any-return]


def checked_context(args: MultiDict[str, str]) -> QueueContext:
    """The queue context of this request; 403 when the user may not open its queue."""
    context = QueueContext.from_args(args)
    if not queues.may_view(context.queue, me()):
        abort(403, description="The escalated queue is for leads and admins.")
    return context


def filter_options() -> dict[str, Any]:
    """Choices for the filter form: sources, scanners, banks, statuses."""
    from app.services import banks
    from app.services.queue_filters import scanner_names
    from app.services.states import Status

    return {
        "sources": db.session.execute(
            db.select(Source.id, Source.name).order_by(Source.name)
        ).all(),
        "scanners": scanner_names(),
        "banks": [(bank.id, bank.name) for bank in banks.list_banks()],
        "statuses": [status.value for status in Status],
    }


@bp.get("/")
@role_required(Role.MODERATOR)
def queue() -> Any:
    """A queue as a grid of blurred previews; htmx (filters, pages) gets just the grid."""
    context = checked_context(request.args)
    conditions, errors = context.filters.conditions()
    page = queues.list_page(
        context.queue,
        me(),
        conditions,
        context.sort or None,
        after=request.args.get("after"),
        before=request.args.get("before"),
    )
    return htmx.render_page_or_fragment(
        "review/queue.html",
        "review/_queue.html",
        context=context,
        queue_page=page,
        cards=cards_for(page.items, page.decisions),
        filter_errors=errors,
        counts=queues.counts(me()),
        options=filter_options(),
        categories=policy.policy_categories(),
        category_title=policy.category_title,
        sort_titles=queues.SORT_TITLES,
        undo=decisions.latest_undoable(me().id),
        has_demo=me().has_role(Role.ADMIN) and bool(demo.demo_sources()),
    )


@bp.get("/counts")
@role_required(Role.MODERATOR)
def counts() -> Any:
    """Fresh queue counts, swapped into the tabs out of band (polled, and after decisions)."""
    return render_template("review/_counts_oob.html", counts=queues.counts(me()))


@bp.post("/next")
@role_required(Role.MODERATOR)
def claim_next() -> Any:
    """Claim the highest-priority free item of the current queue and open it."""
    context = checked_context(request.form)
    conditions, _ = context.filters.conditions()
    item_id = claims.claim_next(me(), queues.statuses_for_next(context.queue), conditions)
    skipped = request.form.get("release")
    if skipped and skipped != item_id:
        # Skipping: the item the moderator leaves goes back for someone else. It is released
        # after the claim, so "next" cannot hand the same item straight back.
        claims.release(skipped, me())
    if item_id is None:
        flash("Nothing left to claim in this queue. Well done.", "info")
        return htmx.redirect(url_for("review.queue", **context.query_args()))
    return htmx.redirect(url_for("review.item", item_id=item_id, **context.query_args()))


@bp.post("/claim/<item_id>")
@role_required(Role.MODERATOR)
def claim_from_queue(item_id: str) -> Any:
    """Claim the item selected in the grid and open it (someone else's stays theirs)."""
    context = checked_context(request.form)
    if not claims.claim(item_id, me()):
        flash(
            "Someone else is working on that item, or it was decided; it opens read-only.",
            "warning",
        )
    return htmx.redirect(url_for("review.item", item_id=item_id, **context.query_args()))


@bp.post("/bulk")
@role_required(Role.MODERATOR)
def bulk() -> Any:
    """Decide the selected items the same way; the grid comes back without them."""
    context = checked_context(request.form)
    item_ids = request.form.getlist("item_id")[:500]
    if not item_ids:
        flash("Select items first (x, or the boxes on the previews).", "error")
        return htmx.redirect(url_for("review.queue", **context.query_args()))
    result = decide_many_as_posted(item_ids)
    flash(bulk_message(result), "success" if not result.skipped else "warning")
    response = htmx.redirect(url_for("review.queue", **context.query_args()))
    return htmx.trigger(response, QUEUE_CHANGED)


def decide_many_as_posted(item_ids: list[str]) -> decisions.BulkResult:
    """Decide ``item_ids`` with the outcome, category and note of the posted form, or abort."""
    try:
        return decisions.decide_many(
            item_ids,
            me(),
            request.form.get("outcome", ""),
            request_actor(),
            category=request.form.get("category"),
            note=request.form.get("note"),
        )
    except decisions.DecisionRefused as refusal:
        abort(refusal.status, description=refusal.message)


def bulk_message(result: decisions.BulkResult) -> str:
    """What a bulk decision did, in one sentence."""
    done = len(result.decisions)
    outcome = result.decisions[0].outcome if result.decisions else "decide"
    text = f"{outcome.capitalize()}d {done} {'item' if done == 1 else 'items'}."
    if result.skipped:
        text += f" {len(result.skipped)} left alone: {next(iter(result.skipped.values()))}"
    if done:
        text += " You can undo this for a few seconds from any item page or the queue."
    return text


from app.views import review_demo, review_item, review_reveal  # noqa: E402,F401  (routes on bp)

"""The item screen (``/review/items/<id>``): queue, item and decision side by side.

A decision is answered with the next item's screen (htmx swaps it in and pushes its URL), plus
an ``HX-Trigger`` that makes the queue counts and the "up next" list refresh: the moderator
keeps working without a page load, and nothing else on the page moves.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, make_response, render_template, request, url_for
from sqlalchemy import select

from app import htmx
from app.extensions import db
from app.models.audit import AuditEvent
from app.models.item import Item
from app.models.review import Outcome
from app.models.scan import ScanResult
from app.models.user import Role, User
from app.security import role_required
from app.services import claims, decisions, pipeline, policy, queues, reveal, similar
from app.services.states import AWAITING_REVIEW, IllegalTransition
from app.views import request_actor
from app.views.review import QUEUE_CHANGED, QueueContext, bp, checked_context, me
from app.views.review_cards import cards_for, people

UP_NEXT = 8
UPLOADER_ITEMS = 12
PAST_TENSE = {
    Outcome.APPROVE.value: "Approved",
    Outcome.REMOVE.value: "Removed",
    Outcome.ESCALATE.value: "Escalated",
}


def item_or_404(item_id: str) -> Item:
    """The item, or a 404 page."""
    item = db.session.get(Item, item_id)
    if item is None:
        abort(404, description="There is no such item. It may have been deleted.")
    return item


def screen_context(item: Item, context: QueueContext) -> dict[str, Any]:
    """Everything the item screen shows."""
    user = me()
    holder = claims.holder_id(item, None)
    lead = user.has_role(Role.LEAD)
    awaiting = item.status in {status.value for status in AWAITING_REVIEW}
    prefs = reveal.preferences(user.id)
    marked = reveal.sensitivity(item.id)
    results = pipeline.latest_results(item.id)
    unflagged = bool(results) and all(r.finished and r.verdict == "clear" for r in results)
    up_next = queues.list_page(
        context.queue, user, context.filters.conditions()[0], context.sort or None, limit=UP_NEXT
    )
    similar_items = similar.similar_items(item)
    uploader_items = _uploader_items(item)
    return {
        "item": item,
        "context": context,
        "lead": lead,
        "awaiting": awaiting,
        "holder": db.session.get(User, holder) if holder is not None else None,
        "i_hold": holder == user.id,
        "can_decide": awaiting
        and (holder == user.id or lead)
        and (item.status != "escalated" or lead),
        "can_claim": awaiting and holder is None and item.status in claims.claimable_statuses(user),
        "scan_results": results,
        "sensitivity": marked,
        "prefs": prefs,
        "default_mode": reveal.default_mode(prefs),
        "auto_reveal": prefs.auto_reveal_unflagged
        and unflagged
        and not marked.lead_only
        and item.sha256 is not None,
        "exposure": reveal.exposure_today(user.id),
        "reminder_at": reveal.reminder_at(),
        "counts": queues.counts(user),
        "up_next": cards_for(up_next.items, up_next.decisions),
        "similar": similar_items,
        "uploader_items": uploader_items,
        "history": _history(item),
        "undo": decisions.latest_undoable(user.id),
        "categories": policy.policy_categories(),
        "category_title": policy.category_title,
        "suggested_category": _suggested_category(results),
        "banks": _banks(),
        "bank_for_category": _bank_for_category(),
        "decisions_of_item": _decisions_of(item),
        "similar_distance": similar.distance_threshold(),
        "in_screen": True,
    }


def _uploader_items(item: Item) -> list[Item]:
    if not item.uploader_id:
        return []
    return list(
        db.session.scalars(
            select(Item)
            .where(
                Item.source_id == item.source_id,
                Item.uploader_id == item.uploader_id,
                Item.id != item.id,
            )
            .order_by(Item.created_at.desc())
            .limit(UPLOADER_ITEMS)
        )
    )


def _history(item: Item) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_type == "item", AuditEvent.target_id == item.id)
            .order_by(AuditEvent.seq)
        )
    )


def _decisions_of(item: Item) -> list[Any]:
    from app.models.review import Decision

    rows = list(
        db.session.scalars(
            select(Decision).where(Decision.item_id == item.id).order_by(Decision.id)
        )
    )
    names = people(row.user_id for row in rows)
    return [(row, names.get(row.user_id or 0, "a rule")) for row in rows]


def _suggested_category(results: list[ScanResult]) -> str:
    categories = policy.policy_categories()
    for result in results:
        for match in result.matches or []:
            for label in match.get("labels") or []:
                if str(label).lower() in categories:
                    return str(label).lower()
        for label in sorted(result.labels or [], key=lambda lab: -(lab.get("score") or 0)):
            if str(label.get("name", "")).lower() in categories:
                return str(label["name"]).lower()
    return ""


def _banks() -> list[tuple[int, str]]:
    from app.services import banks

    return [(bank.id, bank.name) for bank in banks.list_banks() if not bank.negative]


def _bank_for_category() -> dict[str, int]:
    found = {}
    for category in policy.policy_categories():
        bank_id = policy.bank_for_category(category)
        if bank_id is not None:
            found[category] = bank_id
    return found


def render_screen(
    item: Item, context: QueueContext, toast: str | None = None, toast_kind: str = "success"
) -> Response:
    """The item screen: the whole page, or for htmx the screen fragment."""
    response = htmx.render_page_or_fragment(
        "review/item.html",
        "review/_screen.html",
        toast=toast,
        toast_kind=toast_kind,
        **screen_context(item, context),
    )
    return response


@bp.get("/items/<item_id>")
@role_required(Role.MODERATOR)
def item(item_id: str) -> Any:
    """The item screen; looking at an item you hold renews your claim."""
    context = checked_context(request.args)
    found = item_or_404(item_id)
    if found.claimed_by_id == me().id:
        claims.renew(found.id, me())
    return render_screen(found, context)


@bp.post("/items/<item_id>/claim")
@role_required(Role.MODERATOR)
def claim(item_id: str) -> Any:
    """Claim this item (c)."""
    context = checked_context(request.form)
    found = item_or_404(item_id)
    if not claims.claim(found.id, me()):
        abort(
            409,
            description="You cannot claim this item: someone else holds it, or it is not "
            "waiting for review.",
        )
    db.session.refresh(found)
    return htmx.trigger(render_screen(found, context), QUEUE_CHANGED)


@bp.post("/items/<item_id>/renew")
@role_required(Role.MODERATOR)
def renew(item_id: str) -> Any:
    """Keep the claim alive while the page is open (pinged every two minutes)."""
    if claims.renew(item_id, me()):
        return Response(status=204)
    return render_template("review/_claim_lost.html")


@bp.post("/items/<item_id>/release")
@role_required(Role.MODERATOR)
def release(item_id: str) -> Any:
    """Give the item back to the queue."""
    context = checked_context(request.form)
    claims.release(item_id, me())
    flash("Released: the item is back in the queue for someone else.", "info")
    return htmx.trigger(
        htmx.redirect(url_for("review.queue", **context.query_args())), QUEUE_CHANGED
    )


@bp.post("/items/<item_id>/take-over")
@role_required(Role.LEAD)
def take_over(item_id: str) -> Any:
    """A lead takes the item from whoever holds it (audited)."""
    context = checked_context(request.form)
    try:
        claims.take_over(item_id, me(), request_actor())
    except claims.ClaimRefused as refusal:
        abort(409, description=refusal.message)
    return render_screen(item_or_404(item_id), context, "You hold this item now.", "info")


def _bank_choice() -> int | None:
    raw = request.form.get("bank_id", "")
    return int(raw) if request.form.get("add_to_bank") and raw.isdigit() else None


@bp.post("/items/<item_id>/decide")
@role_required(Role.MODERATOR)
def decide(item_id: str) -> Any:
    """Approve, remove or escalate the item (a, r, e), then open the next one."""
    context = checked_context(request.form)
    try:
        decision = decisions.decide(
            item_id,
            me(),
            request.form.get("outcome", ""),
            request_actor(),
            category=request.form.get("category"),
            note=request.form.get("note"),
            bank_id=_bank_choice(),
        )
    except decisions.DecisionRefused as refusal:
        abort(refusal.status, description=refusal.message)
    except IllegalTransition as error:
        abort(409, description=str(error))
    what = PAST_TENSE[decision.outcome]
    if decision.category:
        what += f" as {policy.category_title(decision.category).lower()}"
    return go_next(context, f"{what}. Press u to undo.")


def go_next(context: QueueContext, message: str) -> Response:
    """Claim the next item of the queue and answer with its screen (or the queue if empty)."""
    conditions, _ = context.filters.conditions()
    next_id = claims.claim_next(me(), queues.statuses_for_next(context.queue), conditions)
    if next_id is None:
        flash(f"{message} Nothing left to claim in this queue.", "success")
        response = htmx.redirect(url_for("review.queue", **context.query_args()))
    elif htmx.is_htmx():
        response = render_screen(item_or_404(next_id), context, message)
        response.headers["HX-Push-Url"] = url_for(
            "review.item", item_id=next_id, **context.query_args()
        )
    else:
        flash(message, "success")
        response = htmx.redirect(url_for("review.item", item_id=next_id, **context.query_args()))
    return htmx.trigger(response, QUEUE_CHANGED)


@bp.post("/items/<item_id>/cluster")
@role_required(Role.MODERATOR)
def decide_cluster(item_id: str) -> Any:
    """Decide this item and the similar ones ticked beside it, the same way, then go next."""
    context = checked_context(request.form)
    chosen = [item_id, *request.form.getlist("item_id")][:500]
    from app.views.review import bulk_message, decide_many_as_posted

    result = decide_many_as_posted(chosen)

    return go_next(context, bulk_message(result))


@bp.post("/decisions/<int:decision_id>/undo")
@role_required(Role.MODERATOR)
def undo(decision_id: int) -> Any:
    """Undo a decision made in the last few seconds (u); its item opens again."""
    context = checked_context(request.form)
    try:
        undone = decisions.undo(decision_id, me(), request_actor())
    except decisions.DecisionRefused as refusal:
        abort(refusal.status, description=refusal.message)
    message = (
        "Undone: the item is yours to decide again."
        if len(undone) == 1
        else f"Undone: {len(undone)} items are back in the queue."
    )
    target = item_or_404(undone[0].item_id)
    if htmx.is_htmx():
        response = render_screen(target, context, message, "info")
        response.headers["HX-Push-Url"] = url_for(
            "review.item", item_id=target.id, **context.query_args()
        )
    else:
        flash(message, "info")
        response = htmx.redirect(url_for("review.item", item_id=target.id, **context.query_args()))
    return htmx.trigger(response, QUEUE_CHANGED)


@bp.get("/items/<item_id>/raw")
@role_required(Role.MODERATOR)
def raw_results(item_id: str) -> Any:
    """Every scan result of the item with the scanner's raw answer, for the record."""
    found = item_or_404(item_id)
    results = list(
        db.session.scalars(
            select(ScanResult)
            .where(ScanResult.item_id == found.id)
            .order_by(ScanResult.scan_round.desc(), ScanResult.scanner)
        )
    )
    return make_response(render_template("review/_raw.html", item=found, results=results))

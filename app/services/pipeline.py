"""The scan pipeline: every switched-on scanner looks at an item, then the item is routed once.

``start_scan`` moves the item to ``scanning``, opens a new *scan round* with a ``pending``
``ScanResult`` per switched-on scanner and queues one durable job for the round (all in one
commit). When the worker starts a new item's scan and only fast local scanners (hash banks) are
on, it runs them first and records round, results and route in that one commit instead. The round
job queues one job per third-party scanner and runs the local ones (hash banks) inline.
Third-party jobs retry with exponential backoff and jitter (``app.services.jobs``), are cut off
at the scanner's timeout, and wait for its rate limit without spending an attempt.

Whoever records the round's last result routes the item: a conditional UPDATE that only succeeds
while the item is still ``scanning`` in this round, so two scanners finishing at the same moment
route it exactly once. A scanner that fails for good never blocks the others; it is recorded as
``failed`` with verdict ``error`` and the item is routed with that failure visible.
See docs/pipeline.md.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update

from app.extensions import core_write, db
from app.models.item import Item
from app.models.scan import ScanResult, ScanStatus
from app.models.types import utcnow
from app.plugins import current_plugins
from app.services import audit, jobs, rules, scanning
from app.services.audit import Actor
from app.services.plugin_settings import settings_for, switched_on_scanners
from app.services.routing import choose_route
from app.services.states import Status, can_transition, transition

__all__ = ["rescan", "route_when_complete", "scan_results_for", "start_scan"]

log = logging.getLogger(__name__)
PIPELINE = Actor.system("pipeline")
ROUND_JOB = "scan_round"
SCANNER_JOB = "scan_with"
SUPERSEDED = "Superseded by a newer scan of this item."


class ScanRetry(Exception):
    """A scan attempt failed and will be tried again after a backoff."""


def start_scan(
    item: Item, actor: Actor, reason: str | None = None, *, inline: bool = False
) -> None:
    """Send ``item`` through every switched-on scanner in a new scan round; commits.

    With ``inline`` (the worker, which holds the item's picture and bytes anyway) and only fast
    local scanners switched on (the hash banks, by default), they run here first and the round
    is recorded and routed in the same commit: no round job, no extra transactions. A scanner
    that fails sends the item down the usual path, where the round job retries it.

    Raises ``IllegalTransition`` when the item's state does not allow scanning (``removed``).
    """
    if item.status == Status.RECEIVED:
        current_plugins().fire("item_received", item=item)
    answers = _scan_fast_and_local(item) if inline else None
    transition(item, Status.SCANNING, actor, reason)
    scan_round = (db.session.scalar(_LAST_ROUND, {"item_id": item.id}) or 0) + 1
    if scan_round > 1:
        db.session.execute(
            update(ScanResult)
            .where(ScanResult.item_id == item.id, ScanResult.status.in_(ScanStatus.UNFINISHED))
            .values(
                status=ScanStatus.FAILED, verdict="error", error=SUPERSEDED, finished_at=utcnow()
            )
            .execution_options(synchronize_session=False)
        )
    scanners = switched_on_scanners()
    answered = answers is not None and set(answers) == {scanner.name for scanner in scanners}
    db.session.add_all(
        ScanResult(
            item_id=item.id,
            scan_round=scan_round,
            scanner=scanner.name,
            # Answered inline: each row is written once, finished, instead of written and updated.
            **(scanning.outcome_values(*answers[scanner.name], attempts=1) if answered else {}),
        )
        for scanner in scanners
    )
    if not scanners or answered:
        _route_and_announce(item.id, scan_round)
        return
    local_attempts = max((scanning.max_attempts_for(s) for s in scanners if s.local), default=1)
    jobs.enqueue(ROUND_JOB, item.id, scan_round, max_attempts=local_attempts)  # commits it all


def _scan_fast_and_local(item: Item) -> dict[str, tuple[Any, int]] | None:
    """Every switched-on scanner's outcome and duration, if all are fast and local and succeed.

    None when any is not (a third-party service, NudeNet) or fails: the round job handles those.
    Runs before the item's transaction writes anything, so no database lock is held meanwhile.
    """
    scanners = switched_on_scanners()
    if not scanners or not all(s.local and s.fast and s.needs != "url" for s in scanners):
        return None
    loader = scanning.media_loader(item.sha256)
    answers = {}
    for scanner in scanners:
        settings = settings_for(scanner)
        ctx = scanning.scan_context(
            item, settings, attempt=1, timeout=scanner.timeout, loader=loader
        )
        started = perf_counter()
        try:
            outcome = scanning.call_scanner(scanner, ctx)
        except Exception:  # recorded, retried and explained by the round job instead
            log.info("scanner %s failed inline on item %s; queued", scanner.name, item.id)
            return None
        answers[scanner.name] = (outcome, round((perf_counter() - started) * 1000))
    return answers


def rescan(item: Item, actor: Actor) -> None:
    """Scan ``item`` again from the start (a new round; an unfinished one is superseded)."""
    start_scan(item, actor, "re-scan requested")


@jobs.handler(ROUND_JOB)
def run_scan_round(item_id: str, scan_round: int) -> None:
    """Queue the round's third-party scanners, run its local ones, and route if that was all."""
    rows = _unfinished_rows(item_id, scan_round)
    installed = current_plugins().scanners

    def is_local(row: ScanResult) -> bool:
        return row.scanner not in installed or installed[row.scanner].local

    remote = [row for row in rows if not is_local(row)]
    for row in remote:
        if row.dispatched_at is None:
            row.dispatched_at = utcnow()
            attempts = scanning.max_attempts_for(installed[row.scanner])
            jobs.enqueue(SCANNER_JOB, row.id, attempts, max_attempts=attempts)  # commits the mark
    local = (
        [row for row in _unfinished_rows(item_id, scan_round) if is_local(row)] if remote else rows
    )
    item = db.session.get(Item, item_id)
    retry = []
    loader = scanning.media_loader(item.sha256) if item is not None else None
    for row in local:
        scanner = installed.get(row.scanner)
        final = row.attempts + 1 >= scanning.max_attempts_for(scanner)
        row.attempts += 1
        if not _scan_and_record(row, scanner, item, loader, final):
            retry.append(row.scanner)
    if remote:
        # Third-party jobs may finish at this moment: they must see these results committed
        # before they look for a complete round (see route_when_complete). Without them, nobody
        # else writes this round, so results and route share one transaction.
        db.session.commit()
    _route_and_announce(item_id, scan_round)
    if retry:
        raise ScanRetry(f"local scanners failed and will be tried again: {', '.join(retry)}")


@jobs.handler(SCANNER_JOB)
def run_scanner(result_id: int, max_attempts: int) -> None:
    """One attempt of one third-party scanner on one item; retried by the job's backoff."""
    row = db.session.get(ScanResult, result_id)
    if row is None or row.finished:
        return  # superseded by a re-scan, or a duplicate delivery of this job
    scanner = current_plugins().scanners.get(row.scanner)
    if scanner is not None and scanner.rate_limit:
        wait = scanning.take_token(scanner.name, scanner.rate_limit)
        if wait > 0:  # not an attempt: come back when the bucket has a token
            row.error = scanning.wait_description(wait)
            # At least two seconds: the jobs module runs a job due within a second at once.
            jobs.enqueue(
                SCANNER_JOB,
                result_id,
                max_attempts,
                max_attempts=max_attempts,
                delay=max(wait, 2.0),
            )
            return
    row.status, row.started_at, row.attempts = ScanStatus.RUNNING, utcnow(), row.attempts + 1
    item = db.session.get(Item, row.item_id)
    final = row.attempts >= max_attempts
    db.session.commit()  # the page shows "running"; no transaction is held during the call
    succeeded = _scan_and_record(row, scanner, item, None, final)
    db.session.commit()
    _route_and_announce(row.item_id, row.scan_round)
    if not succeeded:
        raise ScanRetry(f"{row.scanner} failed on item {row.item_id}; retrying with backoff")


# Built once: every item runs these, and building a statement costs more than running it.
_LAST_ROUND = select(func.max(ScanResult.scan_round)).where(
    ScanResult.item_id == bindparam("item_id")
)
_ROUND_OUTCOMES = select(
    ScanResult.scanner,
    ScanResult.status,
    ScanResult.verdict,
    ScanResult.labels,
    ScanResult.matches,
).where(ScanResult.item_id == bindparam("item_id"), ScanResult.scan_round == bindparam("round"))
# Routed only if still scanning, no newer round started, and no scanner of this round running.
_ROUTE = (
    update(Item)
    .where(
        Item.id == bindparam("item_id"),
        Item.status == Status.SCANNING,
        ~exists().where(
            ScanResult.item_id == bindparam("item_id"),
            ScanResult.scan_round > bindparam("round"),
        ),
        ~exists().where(
            ScanResult.item_id == bindparam("item_id"),
            ScanResult.scan_round == bindparam("round"),
            ScanResult.status.in_(ScanStatus.UNFINISHED),
        ),
    )
    .values(
        status=bindparam("to"),
        status_reason=bindparam("reason"),
        priority=bindparam("rank"),
        scanned_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)


def route_when_complete(item_id: str, scan_round: int) -> str | None:
    """Route the item if every scanner of ``scan_round`` has finished; the caller commits.

    Returns the new status, or None when scanners are still running or someone else routed it.
    """
    rows = db.session.execute(_ROUND_OUTCOMES, {"item_id": item_id, "round": scan_round}).all()
    if any(row.status in ScanStatus.UNFINISHED for row in rows):
        return None
    ruled = rules.route_for(item_id, rows)  # admins' rules first, then the default routing
    route = ruled.route if ruled is not None else choose_route(rows)
    assert can_transition(Status.SCANNING, route.status)
    now = utcnow()
    routed = core_write(  # the results were flushed by the query above
        _ROUTE,
        {
            "item_id": item_id,
            "round": scan_round,
            "to": route.status,
            "reason": route.reason,
            "rank": route.priority,
            "now": now,
        },
    ).rowcount
    if not routed:
        return None
    audit.record(
        "item.status",
        PIPELINE,
        target_type="item",
        target_id=item_id,
        details={
            "from": Status.SCANNING.value,
            "to": route.status,
            "reason": route.reason,
            "scan_round": scan_round,
        },
    )
    if ruled is not None:
        rules.record_hit(item_id, scan_round, ruled)
    return route.status


def scan_results_for(item: Item) -> list[dict[str, Any]]:
    """The latest scan round's results as the API shows them (no raw vendor answers)."""
    return [result_json(row) for row in latest_results(item.id)]


_LATEST_RESULTS = (
    select(ScanResult)
    .where(
        ScanResult.item_id == bindparam("item_id"),
        ScanResult.scan_round == _LAST_ROUND.scalar_subquery(),
    )
    .order_by(ScanResult.scanner)
)


def latest_results(item_id: str) -> list[ScanResult]:
    """The rows of the item's latest scan round, by scanner name."""
    return list(db.session.scalars(_LATEST_RESULTS, {"item_id": item_id}))


def result_json(row: ScanResult) -> dict[str, Any]:
    """One result for the API: bank-internal fields (entry notes, the bank's hash) left out."""
    return {
        "scanner": row.scanner,
        "status": row.status,
        "verdict": row.verdict,
        "labels": [public_label(label) for label in row.labels],
        "matches": [public_match(match) for match in row.matches],
        "duration_ms": row.duration_ms,
        "attempts": row.attempts,
        "error": row.error,
        "scan_round": row.scan_round,
        "finished_at": row.finished_at.isoformat().replace("+00:00", "Z")
        if row.finished_at
        else None,
    }


def public_label(label: dict[str, Any]) -> dict[str, Any]:
    """A label's name and score, with our policy category when the vocabulary knows one."""
    shown = {"name": label["name"], "score": label.get("score")}
    if label.get("category"):
        shown["category"] = label["category"]
    return shown


def public_match(match: dict[str, Any]) -> dict[str, Any]:
    """A match as a platform may see it: without the bank entry's note and stored hash."""
    return {key: value for key, value in match.items() if key not in ("note", "signal")}


def _scan_and_record(
    row: ScanResult, scanner: Any, item: Item | None, loader: Any, final: bool
) -> bool:
    """Run one scanner for ``row`` and record the outcome or failure; False when it will retry."""
    if scanner is None or item is None:
        missing = "is no longer installed" if scanner is None else "has no item"
        scanning.record_failure(row.id, f"The scanner {row.scanner} {missing}.", None, final=True)
        return True
    if scanner.needs == "url" and not item.image_url:
        scanning.record_failure(
            row.id,
            f"The scanner {row.scanner} needs the image's URL, and this item was sent without one.",
            None,
            final=True,
        )
        return True
    settings = settings_for(scanner)
    ctx = scanning.scan_context(
        item, settings, attempt=row.attempts, timeout=scanner.timeout, loader=loader
    )
    started = perf_counter()
    try:
        outcome = scanning.call_scanner(scanner, ctx)
    except Exception as error:  # any failure of a plugin is recorded, not raised
        duration = round((perf_counter() - started) * 1000)
        message = scanning.describe_error(error, scanning.secrets_of(scanner, settings))
        log.info(
            "scanner %s failed on item %s (attempt %d%s): %s",
            row.scanner,
            row.item_id,
            row.attempts,
            ", final" if final else "",
            message,
        )
        scanning.record_failure(row.id, message, duration, final=final)
        return final
    scanning.record_outcome(row.id, outcome, round((perf_counter() - started) * 1000))
    return True


def _unfinished_rows(item_id: str, scan_round: int) -> list[ScanResult]:
    return list(
        db.session.scalars(
            select(ScanResult)
            .where(
                ScanResult.item_id == item_id,
                ScanResult.scan_round == scan_round,
                ScanResult.status.in_(ScanStatus.UNFINISHED),
            )
            .execution_options(populate_existing=True)
        )
    )


def _route_and_announce(item_id: str, scan_round: int) -> None:
    """Route if the round is complete, commit, then tell the plugins (``item_scanned``)."""
    routed = route_when_complete(item_id, scan_round)
    db.session.commit()
    plugins = current_plugins()
    if routed is None or not plugins.manager.hook.item_scanned.get_hookimpls():
        return
    item = db.session.get(Item, item_id, populate_existing=True)
    rows = [r for r in latest_results(item_id) if r.scan_round == scan_round]
    plugins.fire("item_scanned", item=item, results=rows)

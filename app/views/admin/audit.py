"""The audit log page: filter and page through events, export them as CSV, verify the hash chain
(in the background: the page shows the check's progress, then its result)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, abort, flash, request, stream_with_context, url_for
from flask_login import current_user
from sqlalchemy import Select, or_, select

from app.extensions import db
from app.htmx import is_htmx, redirect, render_page_or_fragment
from app.models.audit import AuditEvent
from app.models.types import utcnow
from app.security import role_required
from app.services import audit_verification
from app.services.audit import Actor, record
from app.views.admin import bp

PAGE_SIZE = 50
EXPORT_BATCH = 1000
# A broken log can have thousands of breaks; the page names the first few, the CLI lists them all.
MAX_BREAKS_SHOWN = 10
ALREADY_RUNNING = "A check of the chain is already running; its progress is shown below."
# Spreadsheets run cells that start with these as formulas; actor labels and targets can come
# from outside (an uploader's name, a platform's id), so exported cells are defused.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilters:
    """The filters in the page's query string. Empty strings mean "any"; all given ones combine."""

    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    date_from: str = ""
    date_to: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> AuditFilters:
        """Read the filters from ``request.args``, trimmed and capped in length."""
        return cls(**{f.name: (args.get(f.name) or "").strip()[:200] for f in fields(cls)})

    def query_args(self) -> dict[str, str]:
        """The filters that are set, for building links that keep them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def dates(self) -> tuple[date | None, date | None, list[str]]:
        """The parsed date range and a message for each date that could not be read."""
        parsed: list[date | None] = []
        errors = []
        for label, value in (("From", self.date_from), ("To", self.date_to)):
            try:
                parsed.append(date.fromisoformat(value) if value else None)
            except ValueError:
                parsed.append(None)
                errors.append(f"{label} date “{value}” was ignored: use a date like 2025-01-31.")
        start, end = parsed
        if start and end and end < start:
            errors.append("The “to” date is before the “from” date, so nothing can match.")
        return start, end, errors

    def apply(self, statement: Select[Any]) -> tuple[Select[Any], list[str]]:
        """Narrow ``statement`` by every filter that is set; return it with any filter errors."""
        if self.actor:
            statement = statement.where(
                or_(
                    AuditEvent.actor_label.icontains(self.actor, autoescape=True),
                    AuditEvent.actor_id == self.actor,
                    AuditEvent.actor_type == self.actor,
                )
            )
        if self.action:
            statement = statement.where(AuditEvent.action.startswith(self.action, autoescape=True))
        if self.target_type:
            statement = statement.where(AuditEvent.target_type == self.target_type)
        if self.target_id:
            statement = statement.where(AuditEvent.target_id == self.target_id)
        start, end, errors = self.dates()
        if start:
            statement = statement.where(
                AuditEvent.created_at >= datetime.combine(start, time.min, UTC)
            )
        if end:
            # "To" includes the whole day it names.
            next_day = datetime.combine(end + timedelta(days=1), time.min, UTC)
            statement = statement.where(AuditEvent.created_at < next_day)
        return statement, errors


def details_text(details: dict[str, Any] | None) -> str:
    """Details as compact ``key=value`` pairs; values with spaces or structure are shown as JSON."""
    parts = []
    for key, value in sorted((details or {}).items()):
        if isinstance(value, str) and value and not any(c.isspace() for c in value):
            shown = value
        else:
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def _newer_cursor(filtered: Select[Any], newest_shown: int) -> int | None:
    """The ``before`` of the page just newer than one starting at ``newest_shown``.

    None when that page is the newest one, which has the clean URL.
    """
    newer = db.session.scalars(
        filtered.with_only_columns(AuditEvent.seq)
        .where(AuditEvent.seq > newest_shown)
        .order_by(AuditEvent.seq.asc())
        .limit(PAGE_SIZE + 1)
    ).all()
    if len(newer) <= PAGE_SIZE:
        return None
    return newer[PAGE_SIZE - 1] + 1


def _actor() -> Actor:
    return Actor.for_user(current_user, request.remote_addr)


@bp.get("/audit", endpoint="audit")
@role_required("admin")
def audit_log() -> Response:
    """Events newest first, 50 a page, filtered by the query string; htmx gets just the rows."""
    filters = AuditFilters.from_args(request.args)
    before = request.args.get("before", type=int)
    filtered, filter_errors = filters.apply(select(AuditEvent))
    page = filtered.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE + 1)
    if before is not None:
        page = page.where(AuditEvent.seq < before)
    events = list(db.session.scalars(page))
    older_url = newer_url = None
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        older_url = url_for("admin.audit", **filters.query_args(), before=events[-1].seq)
    if before is not None:
        newest_shown = events[0].seq if events else before - 1
        newer_before = _newer_cursor(filtered, newest_shown)
        newer_url = url_for("admin.audit", **filters.query_args(), before=newer_before)
    return render_page_or_fragment(
        "admin/audit.html",
        "admin/_audit_rows.html",
        events=events,
        filters=filters,
        filter_errors=filter_errors,
        before=before,
        older_url=older_url,
        newer_url=newer_url,
        export_url=url_for("admin.audit_csv", **filters.query_args()),
        details_text=details_text,
        verification=audit_verification.latest(),
        max_breaks_shown=MAX_BREAKS_SHOWN,
    )


@bp.post("/audit/verify")
@role_required("admin")
def audit_verify() -> Response:
    """Start a check of the whole chain in the background (or show the one already running)."""
    verification, started = audit_verification.start(_actor())
    if is_htmx():
        return render_page_or_fragment(
            "admin/audit_verification.html",
            "admin/_audit_verification.html",
            verification=audit_verification.state(verification),
            max_breaks_shown=MAX_BREAKS_SHOWN,
            notice=None if started else ALREADY_RUNNING,
        )
    if not started:
        flash(ALREADY_RUNNING, "info")
    return redirect(url_for("admin.audit"))


@bp.get("/audit/verifications/<int:verification_id>")
@role_required("admin")
def audit_verification_status(verification_id: int) -> Response:
    """One check of the chain: its progress while it runs (htmx polls this), then its result."""
    verification = audit_verification.find(verification_id)
    if verification is None:
        abort(404)
    return render_page_or_fragment(
        "admin/audit_verification.html",
        "admin/_audit_verification.html",
        verification=verification,
        max_breaks_shown=MAX_BREAKS_SHOWN,
    )


@bp.get("/audit.csv")
@role_required("admin")
def audit_csv() -> Response:
    """Every event matching the current filters as CSV, newest first. Exporting is audited."""
    filters = AuditFilters.from_args(request.args)
    record("audit.exported", _actor(), details={"filters": filters.query_args()})
    db.session.commit()
    filtered, _ = filters.apply(select(AuditEvent))
    # Plain rows, not ORM objects: a large export must not pile up in the session.
    columns = filtered.with_only_columns(*AuditEvent.__table__.c)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "seq",
                "time_utc",
                "actor_type",
                "actor_id",
                "actor_label",
                "action",
                "target_type",
                "target_id",
                "ip",
                "details",
                "hash",
            ]
        )
        cursor: int | None = None
        while True:
            # Batches by seq keep memory flat however large the log is.
            batch = columns.order_by(AuditEvent.seq.desc()).limit(EXPORT_BATCH)
            if cursor is not None:
                batch = batch.where(AuditEvent.seq < cursor)
            events = db.session.execute(batch).all()
            for event in events:
                writer.writerow(
                    _defuse(value)
                    for value in (
                        event.seq,
                        event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        event.actor_type,
                        event.actor_id,
                        event.actor_label,
                        event.action,
                        event.target_type,
                        event.target_id,
                        event.ip,
                        json.dumps(event.details, sort_keys=True, default=str),
                        event.hash,
                    )
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(events) < EXPORT_BATCH:
                return
            cursor = events[-1].seq

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


def _defuse(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value

"""Recognising a webhook delivered twice, and the receipt log of every webhook request.

A delivery id is remembered only once its images are accepted, in the same commit as its
receipt: a delivery that failed half-way is taken again when the platform retries, and the
items it had already made are found again by their external ids. Two copies racing each other
both pass :func:`seen`; the unique constraint lets one remember it and the other is answered as
a duplicate. Old ids are forgotten a day after ``HOOK_REPLAY_RETENTION_DAYS`` (default 30), long
after any platform stops retrying; receipts after ``HOOK_RECEIPT_RETENTION_DAYS`` (default 30).
The daily housekeeping job (``app.services.housekeeping``) calls :func:`forget_old`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.source import Source
from app.models.types import utcnow
from app.models.webhook import ReceivedWebhook, WebhookReceipt

log = logging.getLogger("app.hooks")
DEFAULT_RETENTION_DAYS = 30
REPLAY_MARGIN = timedelta(days=1)  # ids outlive the window, however the daily job falls
PRUNE_BATCH = 5000


def seen(source: Source, delivery_id: str | None) -> bool:
    """Whether this source's delivery with this id was handled before."""
    if not delivery_id:
        return False
    return (
        db.session.scalar(
            select(ReceivedWebhook.id).where(
                ReceivedWebhook.source_id == source.id,
                ReceivedWebhook.delivery_id == delivery_id[:255],
            )
        )
        is not None
    )


def remember(source: Source, delivery_id: str | None) -> bool:
    """Keep the delivery id (committed); False when another request kept it first."""
    if not delivery_id:
        return True
    db.session.add(ReceivedWebhook(source_id=source.id, delivery_id=delivery_id[:255]))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def record_receipt(
    source: Source,
    *,
    event: str,
    status: str,
    http_status: int,
    delivery_id: str | None = None,
    error: str | None = None,
    items_created: int = 0,
) -> None:
    """Write one receipt row (committed) and the same line to the app log; never a secret."""
    source_id, slug = source.id, source.slug
    db.session.add(
        WebhookReceipt(
            source_id=source_id,
            event=event[:64],
            status=status,
            http_status=http_status,
            delivery_id=(delivery_id or None) and delivery_id[:255],
            error=(error or None) and error[:500],
            items_created=items_created,
        )
    )
    db.session.commit()
    level = logging.WARNING if status in ("refused", "failed") else logging.INFO
    log.log(
        level,
        "webhook %s source=%s event=%s status=%s http=%s items=%s%s",
        "refused" if status == "refused" else "received",
        slug,
        event,
        status,
        http_status,
        items_created,
        f" reason={error}" if error else "",
    )


def recent_receipts(source: Source, limit: int = 20) -> list[WebhookReceipt]:
    """The source's latest receipts, newest first, for its admin page."""
    return list(
        db.session.scalars(
            select(WebhookReceipt)
            .where(WebhookReceipt.source_id == source.id)
            .order_by(WebhookReceipt.created_at.desc(), WebhookReceipt.id.desc())
            .limit(limit)
        )
    )


def forget_old(now: datetime | None = None) -> tuple[int, int]:
    """Delete delivery ids older than the replay window plus a day, and receipts older than
    their retention, in committed batches; returns how many ids and receipts went."""
    now = now or utcnow()
    config = current_app.config
    window = timedelta(days=int(config.get("HOOK_REPLAY_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)))
    keep_receipts = timedelta(
        days=int(config.get("HOOK_RECEIPT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
    )
    ids = _delete_in_batches(
        ReceivedWebhook, ReceivedWebhook.received_at < now - window - REPLAY_MARGIN
    )
    receipts = 0
    for source_id in db.session.scalars(select(Source.id)).all():
        # One source at a time, so each delete walks ix_webhook_receipts_source_created.
        receipts += _delete_in_batches(
            WebhookReceipt,
            WebhookReceipt.source_id == source_id,
            WebhookReceipt.created_at < now - keep_receipts,
        )
    return ids, receipts


def _delete_in_batches(model: Any, *conditions: Any) -> int:
    # Short transactions: a year of receipts must not hold SQLite's write lock for long.
    removed = 0
    while True:
        batch = select(model.id).where(*conditions).limit(PRUNE_BATCH)
        count = db.session.execute(delete(model).where(model.id.in_(batch))).rowcount or 0
        db.session.commit()
        removed += count
        if count < PRUNE_BATCH:
            return removed

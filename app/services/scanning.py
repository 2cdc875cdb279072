"""Running one scanner on one image: its context, deadline, rate limit, and the record it leaves.

The pipeline (``app.services.pipeline``) decides *when* a scanner runs; this module is *how*:
shared by the pipeline's jobs and the synchronous ``/api/v1/check``.

Rate limits are token buckets in the database (``ScannerBucket``): every thread and process of
the installation draws from the same bucket, without Redis. A bucket holds ten seconds' worth of
calls (at least one) and refills continuously at ``rate_limit`` calls a minute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.item import Item
from app.models.scan import ScannerBucket, ScanResult, ScanStatus, Verdict
from app.models.types import utcnow
from app.plugins import ScanContext, Scanner, ScanOutcome
from app.services.deadline import DeadlineExceeded, call_with_deadline

RAW_LIMIT = 256 * 1024  # a vendor's answer is kept for the record, not a whole dump
BUCKET_SECONDS = 10.0
SECRET_MASK = "[secret]"


def media_loader(sha256: str | None) -> Callable[[], bytes] | None:
    """A function that reads the original image from the media store, or None without one."""
    if not sha256:
        return None
    from app.services.storage import original_store  # only needed when bytes are read

    store = original_store()
    return lambda: store.get(sha256)


def scan_context(
    item: Item,
    settings: Mapping[str, Any],
    *,
    attempt: int = 1,
    timeout: float = 30.0,
    loader: Callable[[], bytes] | None = None,
) -> ScanContext:
    """What a scanner sees of ``item``; ``loader`` defaults to reading its original."""
    return ScanContext(
        sha256=item.sha256,
        md5=item.md5,
        pdq=item.pdq,
        pdq_quality=item.pdq_quality,
        mime=item.mime,
        size=item.bytes,
        image_url=item.image_url,
        settings=settings,
        item_id=item.id,
        attempt=attempt,
        timeout=timeout,
        loader=loader or media_loader(item.sha256),
    )


def call_scanner(scanner: Scanner, ctx: ScanContext) -> ScanOutcome:
    """Run ``scanner`` (inline when local, else under its deadline) and check what it returned."""
    if scanner.local:
        outcome = scanner.scan(ctx)
    else:
        outcome = call_with_deadline(scanner.scan, ctx.timeout, ctx)
    return checked_outcome(outcome, secrets_of(scanner, ctx.settings))


def checked_outcome(outcome: Any, secrets: Sequence[str] = ()) -> ScanOutcome:
    """The outcome with labels and matches as plain JSON; raises ValueError for a malformed one."""
    if not isinstance(outcome, ScanOutcome):
        raise ValueError(f"the scanner returned {type(outcome).__name__}, not a ScanOutcome")
    if outcome.verdict not in Verdict.ALL:
        raise ValueError(f"the scanner's verdict {outcome.verdict!r} is not one of {Verdict.ALL}")
    labels = []
    for label in outcome.labels:
        entry: dict[str, Any] = {"name": str(label["name"])}
        score = label.get("score")
        entry["score"] = None if score is None else round(float(score), 4)
        if label.get("category"):
            entry["category"] = str(label["category"])
        labels.append(entry)
    matches = [_scrubbed(dict(match), secrets) for match in outcome.matches]
    return ScanOutcome(outcome.verdict, labels, matches, _scrubbed(outcome.raw, secrets))


def secrets_of(scanner: Any, settings: Mapping[str, Any]) -> list[str]:
    """The secret setting values of ``scanner``, to keep them out of errors and records."""
    return [
        str(settings[s.name])
        for s in scanner.settings
        if s.secret and settings.get(s.name) not in (None, "")
    ]


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret value replaced by ``[secret]``."""
    for secret in secrets:
        text = text.replace(secret, SECRET_MASK)
    return text


def describe_error(error: BaseException, secrets: Sequence[str] = ()) -> str:
    """A one-line reason for a failed scan, with any secret value masked."""
    if isinstance(error, DeadlineExceeded):
        message = f"Timed out: {error}."
    else:
        message = f"{type(error).__name__}: {error}"
    return mask_secrets(message, secrets)[:1000]


def record_outcome(result_id: int, outcome: ScanOutcome, duration_ms: int) -> bool:
    """Store a scanner's answer on its row (if the row still waits for one); the caller commits."""
    return _finish(result_id, **outcome_values(outcome, duration_ms))


def outcome_values(outcome: ScanOutcome, duration_ms: int, **more: Any) -> dict[str, Any]:
    """The columns of a scan result row that holds ``outcome`` (``more`` added)."""
    return {
        "status": ScanStatus.DONE,
        "verdict": outcome.verdict,
        "labels": list(outcome.labels),
        "matches": list(outcome.matches),
        "raw": outcome.raw,
        "duration_ms": duration_ms,
        "error": None,
        "finished_at": utcnow(),
        **more,
    }


def record_failure(result_id: int, message: str, duration_ms: int | None, *, final: bool) -> bool:
    """Note a failed attempt; ``final`` marks the row ``failed`` with verdict ``error``."""
    if not final:
        return bool(
            db.session.execute(
                update(ScanResult)
                .where(ScanResult.id == result_id, ScanResult.status.in_(ScanStatus.UNFINISHED))
                .values(status=ScanStatus.PENDING, error=message, duration_ms=duration_ms)
                .execution_options(synchronize_session=False)
            ).rowcount
        )
    return _finish(
        result_id,
        status=ScanStatus.FAILED,
        verdict=Verdict.ERROR,
        error=message,
        duration_ms=duration_ms,
    )


def max_attempts_for(scanner: Scanner | None) -> int:
    """How often a scanner is tried before it counts as failed."""
    configured = int(current_app.config.get("JOB_MAX_ATTEMPTS", 5))
    return max(1, scanner.max_attempts or configured) if scanner else 1


def take_token(scanner: str, per_minute: float) -> float:
    """Spend one call of ``scanner``'s rate limit: 0.0 when allowed, else seconds to wait.

    Commits. Safe across threads and processes: a conditional UPDATE on the bucket's version.
    """
    rate = per_minute / 60.0
    capacity = max(1.0, rate * BUCKET_SECONDS)
    for _ in range(10):
        now = utcnow()
        row = db.session.execute(
            select(ScannerBucket.tokens, ScannerBucket.refreshed_at, ScannerBucket.version).where(
                ScannerBucket.scanner == scanner
            )
        ).one_or_none()
        if row is None:
            try:
                db.session.add(
                    ScannerBucket(scanner=scanner, tokens=capacity - 1, refreshed_at=now, version=0)
                )
                db.session.commit()
                return 0.0
            except IntegrityError:  # another worker made the bucket first; use theirs
                db.session.rollback()
                continue
        elapsed = max(0.0, (now - row.refreshed_at).total_seconds())
        tokens = min(capacity, row.tokens + elapsed * rate)
        if tokens < 1.0:
            db.session.commit()  # end the read transaction
            return (1.0 - tokens) / rate
        taken = db.session.execute(
            update(ScannerBucket)
            .where(ScannerBucket.scanner == scanner, ScannerBucket.version == row.version)
            .values(tokens=tokens - 1.0, refreshed_at=now, version=row.version + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if taken:
            return 0.0
    return 1.0 / rate if rate < 1 else 1.0  # heavy contention: come back shortly


def wait_description(seconds: float) -> str:
    """ "Waiting 12 s for …" for a rate-limited scanner, as the item page shows it."""
    return f"Waiting {math.ceil(seconds)} s for this scanner's rate limit."


def _finish(result_id: int, **values: Any) -> bool:
    return bool(
        db.session.execute(
            update(ScanResult)
            .where(ScanResult.id == result_id, ScanResult.status.in_(ScanStatus.UNFINISHED))
            .values(**{"finished_at": utcnow(), **values})
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _scrubbed(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` as plain JSON (capped in size), with secret strings masked."""
    if value is None:
        return None
    text = json.dumps(value, default=str, ensure_ascii=False)
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], SECRET_MASK)
    if len(text) > RAW_LIMIT:
        return {"truncated": True, "bytes": len(text), "start": text[:4096]}
    return json.loads(text)

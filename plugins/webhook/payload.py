"""What a callback says: the Standard Webhooks body for ``item.scanned``, ``item.decided`` and
``item.actioned``, and its signature. Never image bytes, never secrets, never bank notes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.action import ActionRun
from app.models.review import Decision
from app.services.pipeline import latest_results

EVENTS = ("item.scanned", "item.decided", "item.actioned")


def iso(moment: Any) -> str | None:
    """A UTC timestamp as ``2025-01-31T12:00:00Z``."""
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def body(event: str, item: Any, run: ActionRun) -> bytes:
    """The minified JSON body for ``event`` about ``item``: these exact bytes are signed."""
    decision = _decision(item.id, run.decision_id)
    data: dict[str, Any] = {
        "item_id": item.id,
        "external_id": item.external_id,
        "source": item.source.slug if item.source else None,
        "status": item.status,
        "decision": None,
        "category": None,
        "labels": labels_summary(item.id),
    }
    if decision is not None:
        data["decision"] = {
            "id": decision.id,
            "outcome": decision.outcome,
            "category": decision.category,
            "automated": decision.user_id is None,
            "decided_at": iso(decision.created_at),
        }
        data["category"] = decision.category
    if event == "item.actioned":
        acted = db.session.get(ActionRun, (run.params or {}).get("run_id"))
        if acted is not None:
            data["action"] = {
                "name": acted.action,
                "status": acted.status,
                "reference": acted.external_ref,
                "finished_at": iso(acted.finished_at),
            }
    message = {"type": event, "timestamp": iso(run.created_at), "data": data}
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()


def labels_summary(item_id: str) -> list[dict[str, Any]]:
    """Each label of the latest scan round with its highest score and category, by name."""
    best: dict[str, dict[str, Any]] = {}
    for row in latest_results(item_id):
        for label in row.labels or []:
            name = str(label.get("name"))
            score = label.get("score")
            seen = best.get(name)
            if seen is None or (score or 0) > (seen["score"] or 0):
                best[name] = {"name": name, "score": score, "category": label.get("category")}
    return [best[name] for name in sorted(best)]


def sign(secret: str, message_id: str, timestamp: int, payload: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>`` over id.ts.body.

    The key is the base64-decoded part of the ``whsec_`` secret, as the spec says.
    """
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + payload
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _decision(item_id: str, decision_id: int | None) -> Decision | None:
    if decision_id is not None:
        return db.session.get(Decision, decision_id)
    return db.session.scalar(
        select(Decision)
        .where(Decision.item_id == item_id, Decision.undone_at.is_(None))
        .order_by(Decision.id.desc())
        .limit(1)
    )

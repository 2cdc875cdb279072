"""Webhooks from community software: ``POST /hooks/<slug>`` and pict-rs's ``/hooks/<slug>/<token>``.

The blueprint is exempt from the login gate and from CSRF (``app.security``): every request is
authenticated here, by the platform's own scheme, in ``app.services.webhooks``. The views only
hand over the raw body stream and headers and shape the answer.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from app.extensions import db
from app.services.webhooks import HookRefused, pictrs
from app.services.webhooks.receive import receive_webhook
from app.services.webhooks.replay import record_receipt

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
log = logging.getLogger("app.hooks")


@bp.post("/<slug>")
def receive(slug: str) -> tuple[Response, int]:
    """A platform's webhook: 200 when taken (or a duplicate), 4xx when refused."""
    return _answer(
        slug,
        lambda: receive_webhook(
            slug, request.headers, request.stream, request.content_length, request.remote_addr
        ),
    )


@bp.post("/<slug>/<token>")
def pictrs_validation(slug: str, token: str) -> tuple[Response, int]:
    """pict-rs external validation: 2xx keeps the upload, anything else rejects it."""
    return _answer(
        slug,
        lambda: pictrs.validate_upload(
            slug,
            token,
            request.stream,
            request.content_length,
            request.mimetype or None,
            request.remote_addr,
        ),
    )


def _answer(slug: str, handle) -> tuple[Response, int]:  # type: ignore[no-untyped-def]
    try:
        answer = handle()
    except HookRefused as refusal:
        return jsonify(
            {"error": {"code": refusal.code, "message": refusal.message}}
        ), refusal.status
    except Exception:
        # Never a 2xx on a fault of ours: pict-rs would keep an unchecked upload, and other
        # platforms retry a 5xx later.
        log.exception("webhook for source %s failed", slug)
        db.session.rollback()
        _record_failure(slug)
        message = "The webhook could not be handled because of an error on this server."
        return jsonify({"error": {"code": "internal_error", "message": message}}), 500
    return jsonify(answer.body), answer.status


def _record_failure(slug: str) -> None:
    from sqlalchemy import select

    from app.models.source import Source

    try:
        source = db.session.scalar(select(Source).where(Source.slug == slug[:64]))
        if source is not None:
            record_receipt(
                source,
                event="unknown",
                status="failed",
                http_status=500,
                error="internal error (see the server log)",
            )
    except Exception:  # the database itself may be what failed
        db.session.rollback()

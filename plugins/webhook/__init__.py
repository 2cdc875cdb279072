"""The ``webhook`` action: a signed callback to the platform, following Standard Webhooks.

The callback goes to the item's ``callback_url`` or else its source's, signed with the source's
``whsec_`` secret: headers ``webhook-id`` (the same for every attempt of a run, derived from its
idempotency key, so receivers dedupe), ``webhook-timestamp`` (this attempt, unix seconds) and
``webhook-signature: v1,<base64>``. Every attempt is logged as a ``WebhookDelivery``. A 2xx answer
is success; 410 Gone stops at once; anything else is retried (app.services.actions).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import current_app

from app.extensions import db
from app.models.action import ActionRun, WebhookDelivery
from app.plugins import Action, ActionContext, ActionOutcome, hookimpl
from app.services import sources
from app.services.actions import webhook_id
from app.services.actions_hooks import callback_url
from app.services.fetch import FetchError
from app.services.jobs import PermanentJobError
from plugins.webhook import delivery, payload


class WebhookAction(Action):
    """Tell the platform about the item (scanned, decided, actioned) with a signed POST."""

    name = "webhook"
    title = "Signed callback (Standard Webhooks)"
    version = "1.0"
    description = "POSTs a signed JSON event to the platform's callback URL."
    enabled_by_default = True
    timeout = 10.0

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Deliver the run's event once; raise to be retried, PermanentJobError to stop."""
        item = ctx.item
        run = db.session.get(ActionRun, getattr(ctx, "run_id", 0))
        if item is None or run is None:
            raise PermanentJobError("The item or its run is gone.")
        params: dict[str, Any] = getattr(ctx, "params", {}) or {}
        event = str(params.get("event") or "item.decided")
        if event not in payload.EVENTS:
            raise PermanentJobError(f"Unknown webhook event {event!r}.")
        url = callback_url(item)
        if not url:
            raise PermanentJobError("Neither the item nor its source has a callback URL.")
        secret = sources.webhook_secret(item.source)
        if not secret:
            raise PermanentJobError(
                "The source has no webhook secret: rotate one on the source's page."
            )
        message_id = webhook_id(getattr(ctx, "idempotency_key", "") or f"run:{run.id}")
        timestamp = int(time.time())
        body = payload.body(event, item, run)
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": payload.sign(secret, message_id, timestamp, body),
        }
        config = current_app.config
        try:
            answer = delivery.post(
                url,
                body,
                headers,
                timeout=float(config.get("CALLBACK_TIMEOUT", self.timeout)),
                allow_networks=config.get("CALLBACK_ALLOW_NETWORKS", []),
            )
        except FetchError as refused:
            self._log(run, url, event, message_id, ctx.attempt, None, 0, refused.message)
            raise PermanentJobError(refused.message) from None
        self._log(
            run,
            url,
            event,
            message_id,
            ctx.attempt,
            answer.status,
            answer.duration_ms,
            answer.error,
        )
        if answer.ok:
            return ActionOutcome(True, message_id, f"HTTP {answer.status} {answer.summary[:200]}")
        if answer.status == 410:
            raise PermanentJobError("The platform answered 410 Gone: the callback URL is retired.")
        raise RuntimeError(answer.error or "delivery failed")

    @staticmethod
    def _log(
        run: ActionRun,
        url: str,
        event: str,
        message_id: str,
        attempt: int,
        status: int | None,
        duration: int,
        error: str | None,
    ) -> None:
        parts = urlsplit(url)  # the query may carry a token: keep it out of the log
        db.session.add(
            WebhookDelivery(
                run_id=run.id,
                url=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                event=event,
                webhook_id=message_id,
                status_code=status,
                duration_ms=duration,
                error=error,
                attempt=attempt,
            )
        )
        db.session.flush()


@hookimpl
def register_actions() -> list[type[Action]]:
    """The webhook action."""
    return [WebhookAction]

"""Mastodon: an admin account action (mark sensitive, limit, freeze, suspend) tied to a report.

Mastodon has no admin endpoint that deletes another user's status, so the takedown is an action on
the account: ``POST /api/v1/admin/accounts/:id/action`` with ``type`` one of ``sensitive``
(mark the account's media sensitive: the closest to "hide the images"), ``silence`` (limit),
``disable`` (freeze the login) or ``suspend``. The action cites a report, which it resolves: the
one the item came in with (``report_id`` in its metadata, kept by the Mastodon receiver), else one
we file first with ``POST /api/v1/reports`` naming the status.

Auth: ``Authorization: Bearer`` with the source's ``mastodon_access_token`` (scopes
``admin:write:accounts`` and ``write:reports``). Both POSTs send ``Idempotency-Key`` derived from
the run's key, which Mastodon honours for an hour, so a retried run files one report, not two.
"""

from __future__ import annotations

from typing import Any

from app.plugins import ActionContext, ActionOutcome, Setting
from app.services.jobs import PermanentJobError
from plugins.platform_actions.client import PlatformAction, call, item_id, reason_for

ACTION_TYPES = (
    ("sensitive", "mark the account's media sensitive"),
    ("silence", "limit the account"),
    ("disable", "freeze the login"),
    ("suspend", "suspend the account"),
)
DEFAULT_TEXT = "Image removed by the moderation team"


class AccountAction(PlatformAction):
    """Act on the account that posted the image, citing a report."""

    name = "mastodon_account_action"
    title = "Mastodon: act on the account"
    description = "POST /api/v1/admin/accounts/:id/action (sensitive, silence, disable, suspend)."
    version = "1.0"
    platform = "Mastodon"
    source_kinds = ("mastodon",)
    timeout = 20.0
    settings = (
        Setting(
            "type",
            "choice",
            default="sensitive",
            choices=ACTION_TYPES,
            help="What happens to the account.",
        ),
        Setting("reason", "string", default=DEFAULT_TEXT, help="The text kept with the action."),
        Setting(
            "send_email_notification",
            "boolean",
            default=False,
            help="Email the user about the action.",
        ),
    )

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """File a report if the item has none, then take the account action once."""
        account_id = item_id(ctx.item, "account_id", what="Mastodon account", uploader=True)
        base = self.base_url(source)
        headers = {"Authorization": f"Bearer {self.secret(source, 'mastodon_access_token')}"}
        key = getattr(ctx, "idempotency_key", "") or f"item:{ctx.item.id}"
        text = reason_for(ctx, DEFAULT_TEXT)
        report_id = (ctx.item.item_metadata or {}).get("report_id")
        if not report_id:
            report_id = self._file_report(ctx, base, headers, key, account_id, text)
            if report_id is None:
                return ActionOutcome(True, None, "The account or status is gone from Mastodon.")
        kind = str(ctx.settings.get("type") or "sensitive")
        if kind not in dict(ACTION_TYPES):
            raise PermanentJobError(f"“{kind}” is not a Mastodon account action.")
        outcome = call(
            self.platform,
            "POST",
            f"{base}/api/v1/admin/accounts/{account_id}/action",
            headers={**headers, "Idempotency-Key": key},
            timeout=ctx.timeout,
            done=f"Account {account_id}: {kind} (report {report_id}).",
            data={
                "type": kind,
                "report_id": str(report_id),
                "text": text,
                "send_email_notification": str(
                    bool(ctx.settings.get("send_email_notification"))
                ).lower(),
            },
        )
        return ActionOutcome(outcome.ok, str(report_id), outcome.message, outcome.raw)

    def _file_report(
        self,
        ctx: ActionContext,
        base: str,
        headers: dict[str, str],
        key: str,
        account: str,
        text: str,
    ) -> str | None:
        """File a report on the status as our bot; its id, or None when the status is gone."""
        status_id = item_id(ctx.item, "status_id", what="Mastodon status")
        outcome = call(
            self.platform,
            "POST",
            f"{base}/api/v1/reports",
            headers={**headers, "Idempotency-Key": f"{key}:report"},
            timeout=ctx.timeout,
            done="Report filed.",
            data={
                "account_id": account,
                "status_ids[]": status_id,
                "comment": text[:1000],
                "category": "other",  # "violation" would need the server's rule ids
                "forward": "false",  # a remote account's server hears from its own moderators
            },
        )
        report = outcome.raw if isinstance(outcome.raw, dict) else {}
        if report.get("id"):
            return str(report["id"])
        if outcome.message.startswith("Already gone"):
            return None
        raise PermanentJobError(f"Mastodon filed no report: {outcome.message}")


ACTIONS = [AccountAction]

"""The ``email`` action: a plain-text message about an item, sent over SMTP. Never the image.

Settings: ``host``, ``port``, ``tls`` (``none``, ``starttls`` or ``tls``), ``username``,
``password`` (secret), ``from_address`` and ``to`` (comma-separated). The message names the item,
links to its page under ``PUBLIC_URL``, and says the decision, category and labels. Its
``Message-ID`` is derived from the run's idempotency key, so a run repeated after a crash sends a
message that mail systems recognise as the same one.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from flask import current_app

from app.plugins import Action, ActionContext, ActionOutcome, Setting, hookimpl
from app.services.jobs import PermanentJobError
from plugins.webhook.payload import labels_summary

TLS_MODES = ("none", "starttls", "tls")


def compose(ctx: ActionContext, sender: str, recipients: list[str]) -> EmailMessage:
    """The message for this run: text only, no attachment, no image, no secret."""
    item, decision = ctx.item, ctx.decision
    public = (current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    link = f"{public}/review/items/{item.id}" if public else f"/review/items/{item.id}"
    outcome = decision.outcome if decision is not None else "(no decision)"
    category = (decision.category if decision is not None else None) or "(none)"
    labels = (
        ", ".join(
            f"{label['name']} {label['score']:.2f}"
            if label.get("score") is not None
            else label["name"]
            for label in labels_summary(item.id)
        )
        or "(none)"
    )
    message = EmailMessage()
    message["Subject"] = f"[Modtools] Item {item.id}: {outcome} ({category})"
    message["From"], message["To"] = sender, ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    key = getattr(ctx, "idempotency_key", "") or item.id
    message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@modtools-image>"
    message.set_content(
        f"Item: {item.id}\nExternal id: {item.external_id}\nStatus: {item.status}\n"
        f"Decision: {outcome}\nCategory: {category}\nLabels: {labels}\n\n"
        f"Open the item (login required): {link}\n\n"
        "The image is not attached and never will be; look at it only in the review screen.\n"
    )
    return message


class EmailAction(Action):
    """Email someone that an item was decided."""

    name = "email"
    title = "Email"
    version = "1.0"
    description = "Sends a plain-text notice (never the image) over SMTP."
    timeout = 30.0
    settings = (
        Setting("host", "string", required=True, help="SMTP server name."),
        Setting("port", "integer", default=587, min=1, max=65535),
        Setting(
            "tls",
            "choice",
            default="starttls",
            choices=TLS_MODES,
            help="none (plain, local relays only), starttls (port 587) or tls (port 465).",
        ),
        Setting("username", "string", default=""),
        Setting("password", "string", secret=True, default=""),
        Setting("from_address", "string", required=True, label="From"),
        Setting("to", "string", required=True, help="Recipients, separated by commas."),
    )

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Send the message once; connection problems are retried, refusals are not."""
        settings: dict[str, Any] = dict(ctx.settings)
        recipients = [
            part.strip() for part in str(settings.get("to") or "").split(",") if part.strip()
        ]
        if not settings.get("host") or not settings.get("from_address") or not recipients:
            raise PermanentJobError("Set the email action's host, From and To first.")
        message = compose(ctx, str(settings["from_address"]), recipients)
        mode = settings.get("tls") or "starttls"
        port, host = int(settings.get("port") or 587), str(settings["host"])
        context = ssl.create_default_context()
        try:
            if mode == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, timeout=ctx.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(host, port, timeout=ctx.timeout)
            with smtp:
                if mode == "starttls":
                    smtp.starttls(context=context)
                if settings.get("username"):
                    smtp.login(str(settings["username"]), str(settings.get("password") or ""))
                refused = smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPAuthenticationError) as error:
            raise PermanentJobError(f"The mail server refused: {type(error).__name__}") from None
        if refused:
            return ActionOutcome(
                False, message["Message-ID"], f"Refused recipients: {', '.join(refused)}"
            )
        return ActionOutcome(
            True, message["Message-ID"], f"Sent to {len(recipients)} recipient(s)."
        )


@hookimpl
def register_actions() -> list[type[Action]]:
    """The email action."""
    return [EmailAction]

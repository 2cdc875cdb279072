"""EU DSA statements of reasons (Art. 17, Art. 24(5)): settings, and the ``dsa_statement`` action.

For items from sources marked as in the EU (source setting ``dsa_enabled``, optional
``territorial_scope`` such as ``"DE, FR"``), a removal gets a statement of reasons filed with
the Transparency Database. With ``automatic`` on, the action files it at once; off, it prepares
it for a lead to file from the reports page. See docs/integrations/dsa.md.
"""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models.report import ReportStatus
from app.plugins import Action, ActionContext, ActionOutcome, Setting, hookimpl
from app.services.audit import Actor

NAME = "dsa_statement"


class DsaStatementAction(Action):
    """File (or prepare) a statement of reasons for a removal on an EU source."""

    name = NAME
    title = "DSA statement of reasons"
    version = "1.0"
    description = "Files a statement of reasons with the EU DSA Transparency Database."
    settings = (
        Setting(
            "base_url",
            "url",
            default="https://transparency.dsa.ec.europa.eu",
            help="The database's address (the sandbox your coordinator gave you, or production).",
        ),
        Setting("token", default="", secret=True, help="The platform's API token (Bearer)."),
        Setting(
            "automatic",
            "boolean",
            default=True,
            help="File at once after a removal; off: prepare it for a lead to file.",
        ),
        Setting(
            "illegal_categories",
            default="csam, terrorism",
            help="Policy categories filed as illegal content; the others as against the terms.",
        ),
        Setting(
            "illegal_legal_ground",
            default="Illegal content under applicable law",
            help="The law a removal of illegal content relies on (max 500 characters).",
        ),
        Setting(
            "terms_ground",
            default="Our terms of service",
            help="The terms clause a removal against the terms relies on.",
        ),
        Setting("terms_url", "url", default="", help="Where those terms are published."),
        Setting(
            "territorial_scope", default="", help="EU/EEA country codes when a source sets none."
        ),
    )

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Prepare the statement for the item's removal, and file it when ``automatic``."""
        from plugins.dsa import filing
        from plugins.dsa.statement import is_eu_source

        if ctx.decision is not None and ctx.decision.outcome != "remove":
            return ActionOutcome(True, None, "Not a removal: no statement of reasons.")
        if not is_eu_source(ctx.item):
            return ActionOutcome(True, None, "The source is not in the EU: no statement needed.")
        actor = Actor.system("actions")
        report = filing.prepare(ctx.item, actor, ctx.decision)
        db.session.commit()
        if not ctx.settings.get("automatic", True):
            return ActionOutcome(True, report.puid, "Statement prepared for a lead to file.")
        filing.file([report], actor)
        if report.status == ReportStatus.SUBMITTED:
            return ActionOutcome(True, report.report_id or report.puid, "Statement filed.")
        return ActionOutcome(False, report.puid, report.error or "The statement was not stored.")


def dsa_settings() -> dict[str, Any]:
    """The plugin's settings in force (the token decrypted)."""
    from app.models.plugin import PluginConfig
    from app.plugins import current_plugins
    from app.services.plugin_settings import effective_settings

    action = current_plugins().actions[NAME]
    return effective_settings(action, db.session.get(PluginConfig, NAME))


def client_from_settings(settings: Any) -> Any:
    """A Transparency Database client; ReportError when the token is missing."""
    from app.services.reports import ReportError
    from plugins.dsa.client import TransparencyDatabase

    if not settings.get("token"):
        raise ReportError(
            "The DSA database is not set up: an admin must enter the API token "
            "(Admin → Plugins → DSA statement of reasons)."
        )
    return TransparencyDatabase(settings.get("base_url") or "", settings["token"])


@hookimpl
def register_actions() -> list[type[Action]]:
    """The ``dsa_statement`` action."""
    return [DsaStatementAction]

"""NCMEC CyberTipline reports (US 18 U.S.C. § 2258A): settings, and the ``ncmec_report`` action.

The action never sends anything: it prepares a *draft* report for the item, which a lead
completes and submits from the report page (``app.views.reports``). The plugin's settings hold
the environment (test or production), the credentials NCMEC issued for it, and the reporter
contact details every report is prefilled with. See docs/integrations/ncmec.md.
"""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.plugins import Action, ActionContext, ActionOutcome, ConnectionResult, Setting, hookimpl
from app.services.audit import Actor

NAME = "ncmec_report"


class NcmecReportAction(Action):
    """Prepare a CyberTipline draft for a lead to complete and submit (never submits by itself)."""

    name = NAME
    title = "NCMEC CyberTipline report (draft)"
    version = "1.0"
    description = "Prepares a CyberTipline report draft; a lead completes and submits it."
    timeout = 120.0
    settings = (
        Setting(
            "environment",
            "choice",
            default="test",
            choices=("test", "production"),
            help="NCMEC's test endpoint (exttest.cybertip.org) until your reports pass, "
            "then production (report.cybertip.org). Each has its own credentials.",
        ),
        Setting("base_url", "url", default="", help="Only to override the endpoint (tests)."),
        Setting("username", default="", help="The ESP username NCMEC issued for this environment."),
        Setting("password", default="", secret=True, help="Its password."),
        Setting("platform", default="", help="Your service's name as NCMEC should see it."),
        Setting("reporter_first_name", default="", help="Who NCMEC contacts about reports."),
        Setting("reporter_last_name", default=""),
        Setting("reporter_email", default="", help="Required in every report."),
        Setting("reporter_phone", default=""),
        Setting("legal_url", "url", default="", help="Where law enforcement sends legal process."),
    )

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Prepare (or find) the item's draft; idempotent through ``open_draft``."""
        from app.services import reports

        decision_id = getattr(ctx.decision, "id", None)
        report = reports.prepare_ncmec(
            ctx.item.id, Actor.system("actions"), decision_id=decision_id
        )
        db.session.commit()
        return ActionOutcome(
            True,
            f"draft-{report.id}",
            "CyberTipline draft prepared; a lead must complete and submit it.",
        )

    def test_connection(self, settings: Any) -> ConnectionResult:
        """``GET /status`` with the credentials."""
        from plugins.ncmec.client import NcmecError

        try:
            answer = client_from_settings(settings).status()
        except NcmecError as error:
            return ConnectionResult(False, str(error))
        return ConnectionResult(True, f"NCMEC answered: {answer.description}")


def ncmec_settings() -> dict[str, Any]:
    """The plugin's settings in force (secrets decrypted), for the services."""
    from app.models.plugin import PluginConfig
    from app.plugins import current_plugins
    from app.services.plugin_settings import effective_settings

    action = current_plugins().actions[NAME]
    return effective_settings(action, db.session.get(PluginConfig, NAME))


def client_from_settings(settings: Any) -> Any:
    """A CyberTipline client for the configured environment; ReportError if not set up."""
    from app.services.reports import ReportError
    from plugins.ncmec.client import BASE_URLS, CyberTipline

    if not settings.get("username") or not settings.get("password"):
        raise ReportError(
            "NCMEC is not set up: an admin must enter the username and password "
            "(Admin → Plugins → NCMEC CyberTipline report)."
        )
    base = settings.get("base_url") or BASE_URLS[settings.get("environment") or "test"]
    return CyberTipline(base, settings["username"], settings["password"])


@hookimpl
def register_actions() -> list[type[Action]]:
    """The ``ncmec_report`` action."""
    return [NcmecReportAction]

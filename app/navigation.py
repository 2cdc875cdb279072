"""The navigation bar: what the current user's role may use, and only pages that exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, request, url_for
from flask_login import current_user

from app.models.user import Role


@dataclass(frozen=True)
class NavEntry:
    label: str
    endpoint: str
    role: Role
    shortcut: str | None = None


# Entries whose endpoint is not registered (a blueprint switched off) are hidden.
NAVIGATION = [
    NavEntry("Home", "main.home", Role.MODERATOR),
    NavEntry("Queue", "review.queue", Role.MODERATOR),
    NavEntry("Ingest", "ingest.upload", Role.MODERATOR),
    NavEntry("Reports", "reports.index", Role.LEAD),
    NavEntry("Statistics", "stats.index", Role.LEAD),
    NavEntry("Sources", "admin.sources", Role.ADMIN),
    NavEntry("Scanners", "admin.plugins", Role.ADMIN),
    NavEntry("Users", "admin.users", Role.ADMIN),
    NavEntry("Banks", "admin.banks", Role.ADMIN),
    NavEntry("Exchanges", "admin.exchanges", Role.ADMIN),
    NavEntry("Rules", "admin.rules", Role.ADMIN),
    NavEntry("Audit log", "admin.audit", Role.ADMIN),
]


def init_navigation(app: Flask) -> None:
    """Provide ``navigation`` (the entries this user may see) to every template."""

    @app.template_test("endpoint")
    def is_endpoint(name: str) -> bool:
        """``{% if "auth.profile" is endpoint %}``: links to pages not built yet stay hidden."""
        return name in app.view_functions

    @app.context_processor
    def navigation() -> dict[str, Any]:
        if not current_user.is_authenticated:
            return {"navigation": []}
        entries = []
        for entry in NAVIGATION:
            if entry.endpoint in app.view_functions and current_user.has_role(entry.role):
                active = request.endpoint == entry.endpoint or (
                    request.blueprint is not None
                    and entry.endpoint.split(".")[0] == request.blueprint
                    and entry.endpoint.split(".")[1] == (request.endpoint or "").split(".")[-1]
                )
                entries.append(
                    {"label": entry.label, "url": url_for(entry.endpoint), "active": active}
                )
        return {"navigation": entries}

"""The retention page (admins): how long media is kept, the next purge and the last one."""

from __future__ import annotations

from flask import render_template

from app.models.user import Role
from app.security import role_required
from app.services import retention
from app.views.admin import bp


@bp.get("/retention")
@role_required(Role.ADMIN)
def retention_page():
    """Settings (read-only: they live in the configuration), the schedule and the last run."""
    plan = retention.plan_purge()
    return render_template(
        "admin/retention.html",
        days=retention.retention_days(),
        next_run=retention.next_run(),
        last_run=retention.last_run(),
        plan=plan,
    )

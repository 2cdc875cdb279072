"""The ``stats`` blueprint: the statistics page (leads), the transparency export, ``/metrics``.

``/metrics`` is for a Prometheus scraper, not a person: it answers a ``METRICS_TOKEN`` bearer
token, or (with no token configured) only clients on the loopback interface, so a reverse proxy
that forwards the public internet to the app does not expose it. The blueprint also carries the
operator commands (``cli_group=None`` merges them into ``flask``'s top level).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from datetime import date, timedelta

from flask import Blueprint, Response, abort, current_app, render_template, request

from app.cli import ops
from app.models.types import utcnow
from app.models.user import Role
from app.security import public, role_required
from app.services import metrics, transparency
from app.services.prometheus import prometheus_text

bp = Blueprint("stats", __name__, cli_group=None)
ops.register(bp.cli)

PERIODS = {"7": 7, "30": 30, "90": 90}


def _period(args: dict) -> tuple[date, date, list[str]]:
    """The period asked for: ``from``/``to`` dates, else the last ``days`` (30) days."""
    today = utcnow().date()
    errors = []
    try:
        start = date.fromisoformat(args.get("from", ""))
        end = date.fromisoformat(args.get("to", ""))
    except ValueError:
        days = PERIODS.get(args.get("days", "30"), 30)
        start, end = today - timedelta(days=days - 1), today
        if args.get("from") or args.get("to"):
            errors.append("Dates are written YYYY-MM-DD; showing the last 30 days instead.")
    if end < start:
        start, end = end, start
    return start, end, errors


@bp.get("/stats/")
@role_required(Role.LEAD)
def index():
    """The statistics page."""
    start, end, errors = _period(request.args)
    figures = metrics.statistics(start, end)
    return render_template(
        "stats/index.html", figures=figures, start=start, end=end, errors=errors, periods=PERIODS
    )


@bp.get("/stats/transparency.<form>")
@role_required(Role.LEAD)
def transparency_export(form: str):
    """The transparency report for the period as a CSV or JSON download."""
    if form not in ("csv", "json"):
        abort(404)
    start, end, _ = _period(request.args)
    report = transparency.build_report(start, end)
    body = json.dumps(report, indent=2) if form == "json" else transparency.to_csv(report)
    name = f"transparency-{start}-{end}.{form}"
    return Response(
        body,
        mimetype="application/json" if form == "json" else "text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/metrics")
@public
def prometheus():
    """Prometheus text format, for a token holder or a loopback client."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(offered.encode(), str(token).encode()):
            return Response(
                "metrics need the METRICS_TOKEN bearer token\n",
                401,
                {"WWW-Authenticate": "Bearer"},
                mimetype="text/plain",
            )
    elif not _loopback(request.remote_addr):
        abort(404)  # nothing here for the outside world
    return Response(prometheus_text(), mimetype="text/plain; version=0.0.4")


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False

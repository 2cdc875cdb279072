"""The ``admin`` blueprint (``/admin``): pages only admins may use. Each module adds its routes."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from app.views.admin import (  # noqa: E402,F401  (routes register on bp)
    actions,
    audit,
    banks,
    exchanges,
    plugins,
    retention,
    rules,
    sources,
    users,
)

"""The ``auth`` blueprint: logging in and out, the profile page, invitation and reset links.

The routes live in three modules that register on ``bp``: ``login`` (password, second step,
logout), ``links`` (the public pages behind invitation and reset links) and ``profile``.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.views.auth import links, login, profile  # noqa: E402,F401  (their routes register on bp)
from app.views.auth.login import init_login  # noqa: E402

__all__ = ["bp", "init_login"]

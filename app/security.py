"""Who may reach which route, and the headers every response carries.

Every endpoint requires a logged-in user unless its view is marked ``@public`` or it belongs to a
blueprint that authenticates by other means (API tokens, webhook signatures). Roles are checked by
one decorator, ``@role_required``, never by hiding buttons alone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, redirect, request, url_for
from flask_login import current_user

from app.models.user import Role

F = TypeVar("F", bound=Callable[..., Any])

# Blueprints that authenticate every request themselves (bearer tokens, signatures).
SELF_AUTHENTICATING_BLUEPRINTS = {"api", "hooks"}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def public(view: F) -> F:
    """Mark a view as reachable without logging in (login page, setup link, health check)."""
    view._public = True  # type: ignore[attr-defined]
    return view


def role_required(role: Role | str) -> Callable[[F], F]:
    """Refuse with 403 unless the logged-in user holds ``role`` or a higher one."""
    needed = Role(role)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not current_user.has_role(needed):
                abort(403)
            return view(*args, **kwargs)

        wrapped._role = needed  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def init_security(app: Flask) -> None:
    """Install the login gate and the security headers."""

    @app.before_request
    def require_login() -> Any:
        if request.endpoint is None or request.endpoint == "static":
            return None
        if request.blueprint in SELF_AUTHENTICATING_BLUEPRINTS:
            return None
        view = app.view_functions.get(request.endpoint)
        if getattr(view, "_public", False):
            return None
        if not current_user.is_authenticated:
            if request.headers.get("HX-Request"):
                response = Response("", 401)
                response.headers["HX-Redirect"] = url_for("auth.login", next=request.full_path)
                return response
            return redirect(url_for("auth.login", next=request.full_path))
        return None

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.endpoint != "static":
            # Pages show moderation data and images: never keep them in a shared or local cache.
            headers.setdefault("Cache-Control", "no-store")
        if app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

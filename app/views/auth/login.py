"""Logging in (password, then the app code when two-step login is on) and logging out."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from app.extensions import login_manager
from app.models.user import Role, User
from app.security import public, role_required
from app.services import accounts, totp
from app.services import login as login_service
from app.services.login import LoginFailed, RateLimited
from app.views.auth import bp

PENDING_LOGIN = "pending_login"


def init_login(app: Flask) -> None:
    """Wire flask-login: where to send strangers, and how a cookie becomes a user."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see that page."
    login_manager.login_message_category = "info"
    # "strong" would log people out whenever a proxy changes their address; the session token
    # in the cookie id (see User.get_id) is what ends sessions when it matters.
    login_manager.session_protection = "basic"
    login_manager.user_loader(accounts.load_user_for_session)


def client_ip() -> str:
    """The visitor's address (ProxyFix makes it the real one behind a reverse proxy)."""
    return request.remote_addr or "unknown"


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(c in target for c in "\\\r\n\t") or len(target) > 2000:
        return None  # browsers read "/\evil.example" as "//evil.example"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target.rstrip("?") or None


def start_session(user: User, second_step: str | None, next_url: str | None) -> Response:
    """Record the login, then give the user a brand-new session (nothing from before survives)."""
    login_service.complete_login(user, client_ip(), second_step)
    session.clear()
    login_user(user)
    return redirect(next_url or url_for("main.home"), 303)


def _rate_limited(template: str, limited: RateLimited, **context: Any) -> Response:
    response = Response(render_template(template, error=limited.message, **context), 429)
    response.headers["Retry-After"] = str(limited.retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    """Email and password; on to the second step when the user has two-step login on."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("main.home"))
    if request.method == "GET":
        return render_template("auth/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")
    try:
        user = login_service.check_password(email, request.form.get("password", ""), client_ip())
    except RateLimited as limited:
        return _rate_limited("auth/login.html", limited, next_url=next_url, email=email)
    except LoginFailed as failed:
        page = render_template(
            "auth/login.html", error=failed.message, next_url=next_url, email=email
        )
        return page, 401
    if not user.totp_enabled:
        return start_session(user, None, next_url)
    session.clear()
    session[PENDING_LOGIN] = {
        "user_id": user.id,
        "session_token": user.session_token,
        "started": time.time(),
        "next": next_url,
    }
    return redirect(url_for("auth.second_step"), 303)


def _pending_login() -> tuple[User, str | None] | None:
    # Half logged in: the password was right, the app code is still to come.
    pending = session.get(PENDING_LOGIN)
    if not isinstance(pending, dict):
        return None
    limit = float(current_app.config.get("LOGIN_SECOND_STEP_SECONDS", 300))
    if time.time() - float(pending.get("started", 0)) > limit:
        session.pop(PENDING_LOGIN, None)
        return None
    user = accounts.load_user_for_session(
        f"{pending.get('user_id')}:{pending.get('session_token')}"
    )
    if user is None or not user.totp_enabled:
        session.pop(PENDING_LOGIN, None)
        return None
    return user, safe_next(pending.get("next"))


@bp.route("/login/code", methods=["GET", "POST"])
@public
def second_step() -> Any:
    """The second step: a code from the authenticator app, or a recovery code."""
    pending = _pending_login()
    if pending is None:
        flash(
            "Your login timed out or was not started. Enter your email and password again.", "info"
        )
        return redirect(url_for("auth.login"), 303)
    user, next_url = pending
    if request.method == "GET":
        return render_template("auth/second_step.html")
    try:
        used = login_service.check_second_step(user, request.form.get("code", ""), client_ip())
    except RateLimited as limited:
        return _rate_limited("auth/second_step.html", limited)
    except LoginFailed as failed:
        return render_template("auth/second_step.html", error=failed.message), 401
    response = start_session(user, used, next_url)
    if used == "recovery":
        left = totp.recovery_codes_left(user)
        flash(
            f"You used a recovery code; {left} left. Each works once: make new ones on your "
            "profile if you are running low.",
            "warning",
        )
    return response


@bp.route("/logout", methods=["GET", "POST"])
@role_required(Role.MODERATOR)
def logout() -> Any:
    """End this session (GET asks first: logging out changes state, so it needs a POST)."""
    if request.method == "GET":
        return render_template("auth/logout.html")
    login_service.record_logout(current_user._get_current_object(), client_ip())
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"), 303)

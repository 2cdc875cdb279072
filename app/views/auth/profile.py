"""The profile page: your name, your password, and two-step login with its recovery codes.

Typing the password again (to change it, to turn two-step login off, for new recovery codes)
counts toward the login rate limit; past it the form answers 429 and says how long to wait.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user

from app.models.user import Role, User
from app.security import role_required
from app.services import accounts, totp
from app.services.accounts import AccountError
from app.services.login_limits import RateLimited
from app.views import request_actor
from app.views.auth import bp


def _me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _profile_page(status: int = 200, **context: Any) -> Any:
    user = _me()
    page = render_template(
        "auth/profile.html",
        user=user,
        recovery_codes_left=totp.recovery_codes_left(user),
        **context,
    )
    return page, status


def _rate_limited(limited: RateLimited, form_error: str, field: str = "password") -> Any:
    """The profile again with the wait shown on the form whose password was refused."""
    page, _ = _profile_page(**{form_error: AccountError(limited.message, field)})
    return page, 429, {"Retry-After": str(limited.retry_after)}


@bp.get("/profile")
@role_required(Role.MODERATOR)
def profile() -> Any:
    """Who you are, and the forms that change your name, password and two-step login."""
    return _profile_page()


@bp.post("/profile/name")
@role_required(Role.MODERATOR)
def rename() -> Any:
    """Change the name other people see."""
    try:
        accounts.rename(_me(), request.form.get("display_name", ""), request_actor())
    except AccountError as error:
        return _profile_page(400, name_error=error)
    flash("Your name is changed.", "success")
    return redirect(url_for("auth.profile"), 303)


@bp.post("/profile/password")
@role_required(Role.MODERATOR)
def change_password() -> Any:
    """A new password; every other session of yours ends, this one stays."""
    user = _me()
    form = request.form
    try:
        accounts.change_password(
            user,
            form.get("current_password", ""),
            form.get("new_password", ""),
            form.get("new_password_again", ""),
            request_actor(),
        )
    except RateLimited as limited:
        return _rate_limited(limited, "password_error", "current_password")
    except AccountError as error:
        return _profile_page(400, password_error=error)
    login_user(user)  # the cookie must carry the new session token to keep this session
    flash(
        "Your password is changed. Other browsers where you were logged in are logged out.",
        "success",
    )
    return redirect(url_for("auth.profile"), 303)


@bp.post("/profile/two-step/start")
@role_required(Role.MODERATOR)
def start_two_step() -> Any:
    """Make a new secret for an authenticator app to scan."""
    try:
        totp.start_enrolment(_me())
    except AccountError as error:
        flash(error.message, "error")
        return redirect(url_for("auth.profile"), 303)
    return redirect(url_for("auth.two_step"), 303)


def _enrolment_page(status: int = 200, error: AccountError | None = None) -> Any:
    user = _me()
    secret = totp.enrolment_secret(user)
    if secret is None:
        return redirect(url_for("auth.profile"), 303)
    uri = totp.provisioning_uri(user, secret)
    page = render_template(
        "auth/two_step.html", secret=secret, qr_code=totp.qr_code_data_uri(uri), error=error
    )
    return page, status


@bp.get("/profile/two-step")
@role_required(Role.MODERATOR)
def two_step() -> Any:
    """The QR code and secret to scan, and the box for the first code."""
    return _enrolment_page()


@bp.post("/profile/two-step/confirm")
@role_required(Role.MODERATOR)
def confirm_two_step() -> Any:
    """Turn two-step login on with a first code, then show the recovery codes once."""
    try:
        codes = totp.confirm_enrolment(_me(), request.form.get("code", ""), request_actor())
    except AccountError as error:
        return _enrolment_page(400, error)
    return render_template("auth/recovery_codes.html", codes=codes, first_time=True)


@bp.post("/profile/two-step/recovery-codes")
@role_required(Role.MODERATOR)
def new_recovery_codes() -> Any:
    """Replace the recovery codes (after the password), and show the new ones once."""
    try:
        codes = totp.new_recovery_codes(_me(), request.form.get("password", ""), request_actor())
    except RateLimited as limited:
        return _rate_limited(limited, "codes_error")
    except AccountError as error:
        return _profile_page(400, codes_error=error)
    return render_template("auth/recovery_codes.html", codes=codes, first_time=False)


@bp.post("/profile/two-step/off")
@role_required(Role.MODERATOR)
def disable_two_step() -> Any:
    """Turn two-step login off; the password proves it is really you."""
    try:
        totp.disable(_me(), request.form.get("password", ""), request_actor())
    except RateLimited as limited:
        return _rate_limited(limited, "disable_error")
    except AccountError as error:
        return _profile_page(400, disable_error=error)
    flash("Two-step login is off. Your password alone now logs you in.", "info")
    return redirect(url_for("auth.profile"), 303)

"""The public pages behind invitation and password-reset links."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user

from app.models.user import LinkPurpose
from app.security import public
from app.services import invitations
from app.services import login as login_service
from app.services.accounts import AccountError
from app.services.invitations import LinkUnusable
from app.services.links import LinkState
from app.views.auth import bp
from app.views.auth.login import client_ip


def link_unusable(kind: str, state: LinkState) -> tuple[str, int]:
    """The page that explains why a link does not work and who can make a new one."""
    status = 404 if state == LinkState.UNKNOWN else 410
    return render_template("auth/link_unusable.html", kind=kind, state=state.value), status


def _password_form(form: Any) -> tuple[str, str]:
    return form.get("password", ""), form.get("password_again", "")


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token: str) -> Any:
    """The invited person chooses their email, name and password, and is logged in."""
    try:
        invitation = invitations.open_link(token, LinkPurpose.INVITATION)
    except LinkUnusable as unusable:
        return link_unusable("invitation", unusable.state)
    if request.method == "GET":
        return render_template(
            "auth/invitation.html",
            invitation=invitation,
            email=invitation.email or "",
            display_name="",
        )
    form = request.form
    password, password_again = _password_form(form)
    try:
        user = invitations.accept_invitation(
            token,
            form.get("email", ""),
            form.get("display_name", ""),
            password,
            password_again,
            client_ip(),
        )
    except LinkUnusable as unusable:
        return link_unusable("invitation", unusable.state)
    except AccountError as error:
        page = render_template(
            "auth/invitation.html",
            invitation=invitation,
            error=error,
            email=form.get("email", ""),
            display_name=form.get("display_name", ""),
        )
        return page, 400
    login_service.complete_login(user, client_ip())
    session.clear()  # whoever was logged in in this browser before is not any more
    login_user(user)
    flash("Welcome! Your account is ready. Consider turning on two-step login below.", "success")
    return redirect(url_for("auth.profile"), 303)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str) -> Any:
    """Choose a new password through a reset link; then log in with it."""
    try:
        link = invitations.open_link(token, LinkPurpose.PASSWORD_RESET)
    except LinkUnusable as unusable:
        return link_unusable("reset", unusable.state)
    email = link.user.email if link.user else ""
    if request.method == "GET":
        return render_template("auth/reset.html", email=email)
    password, password_again = _password_form(request.form)
    try:
        invitations.reset_password(token, password, password_again, client_ip())
    except LinkUnusable as unusable:
        return link_unusable("reset", unusable.state)
    except AccountError as error:
        return render_template("auth/reset.html", email=email, error=error), 400
    # Not logged in here: someone with two-step login on must still give their code.
    logout_user()
    session.clear()
    flash(
        "Your new password is set and your other sessions have ended. Log in with it now.",
        "success",
    )
    return redirect(url_for("auth.login"), 303)

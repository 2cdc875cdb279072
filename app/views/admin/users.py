"""``/admin/users``: the team, pending invitations, and what admins do to accounts.

Every action answers an htmx request with the refreshed panel (and a toast), and a plain form
post with a redirect and a flash message. Links (invitations, password resets) are shown once, in
the answer to the post that made them, and never stored: the page cannot show them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, flash, render_template, request, url_for
from flask_login import current_user

from app import htmx
from app.models.types import utcnow
from app.models.user import Role, User
from app.security import role_required
from app.services import accounts, invitations, totp
from app.services.accounts import AccountError
from app.services.audit import Actor
from app.views import request_actor
from app.views.admin import bp

ROLES = [
    (Role.MODERATOR.value, "Moderator"),
    (Role.LEAD.value, "Lead"),
    (Role.ADMIN.value, "Admin"),
]


def public_url(endpoint: str, **values: Any) -> str:
    """An absolute link for people outside this browser: ``PUBLIC_URL`` when it is set."""
    base = current_app.config.get("PUBLIC_URL")
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def _context(**extra: Any) -> dict[str, Any]:
    return {
        "users": accounts.list_users(),
        "invitations": invitations.pending_invitations(),
        "roles": ROLES,
        "now": utcnow(),
        **extra,
    }


def _answer(message: str, kind: str = "success", secret: dict[str, Any] | None = None) -> Any:
    """The refreshed panel for htmx; for a plain post, the page (with a secret) or a redirect."""
    if not current_user.has_role(Role.ADMIN):  # the admin just demoted themselves
        flash(message, kind)
        return htmx.redirect(url_for("main.home"))
    if htmx.is_htmx():
        return render_template(
            "admin/_users_panel.html", **_context(notice=message, notice_kind=kind, secret=secret)
        )
    flash(message, kind)
    if secret:
        return render_template("admin/users.html", **_context(secret=secret))
    return htmx.redirect(url_for("admin.users"))


@bp.get("/users")
@role_required(Role.ADMIN)
def users() -> Any:
    """Everyone's role and state, open invitations, and the invitation form."""
    return htmx.render_page_or_fragment("admin/users.html", "admin/_users_panel.html", **_context())


@bp.post("/users/invite")
@role_required(Role.ADMIN)
def invite() -> Any:
    """Make an invitation link and show it once."""
    try:
        invitation, token = invitations.invite(
            request.form.get("role", ""),
            request.form.get("email", ""),
            request_actor(),
            created_by=current_user._get_current_object(),
        )
    except AccountError as error:
        return _answer(error.message, "error")
    role = invitation.role or Role.MODERATOR.value
    secret = {
        "title": f"Invitation link for a {role}",
        "url": public_url("auth.accept_invitation", token=token),
        "expires_at": invitation.expires_at,
        "email": invitation.email,
    }
    return _answer("Invitation made. Copy the link now: it is shown only once.", secret=secret)


@bp.post("/invitations/<int:invitation_id>/revoke")
@role_required(Role.ADMIN)
def revoke_invitation(invitation_id: int) -> Any:
    """Withdraw an invitation nobody has used yet."""
    try:
        invitations.revoke_invitation(invitation_id, request_actor())
    except AccountError as error:
        return _answer(error.message, "error")
    return _answer("Invitation revoked: its link no longer works.")


def _change_user(user_id: int, change: Callable[[User, Actor], None], done: str) -> Any:
    # ``done`` may name {email} and {role}: they are filled in after the change.
    try:
        user = accounts.get_user(user_id)
        change(user, request_actor())
    except AccountError as error:
        return _answer(error.message, "error")
    return _answer(done.format(email=user.email, role=user.role))


@bp.post("/users/<int:user_id>/role")
@role_required(Role.ADMIN)
def change_role(user_id: int) -> Any:
    """Give a user another role."""
    role = request.form.get("role", "")

    def set_role(user: User, actor: Actor) -> None:
        accounts.set_role(user, role, actor)

    return _change_user(user_id, set_role, "{email} is now {role}.")


@bp.post("/users/<int:user_id>/deactivate")
@role_required(Role.ADMIN)
def deactivate(user_id: int) -> Any:
    """Lock a user out; their sessions end at their next click."""
    return _change_user(
        user_id, accounts.deactivate, "{email} is deactivated and logged out everywhere."
    )


@bp.post("/users/<int:user_id>/reactivate")
@role_required(Role.ADMIN)
def reactivate(user_id: int) -> Any:
    """Let a deactivated user log in again."""
    return _change_user(user_id, accounts.reactivate, "{email} can log in again.")


@bp.post("/users/<int:user_id>/two-step/off")
@role_required(Role.ADMIN)
def disable_two_step(user_id: int) -> Any:
    """Turn two-step login off for someone who lost their app and their recovery codes."""
    return _change_user(
        user_id,
        totp.admin_disable,
        "Two-step login is off for {email}. Ask them to turn it on again.",
    )


@bp.post("/users/<int:user_id>/reset-link")
@role_required(Role.ADMIN)
def reset_link(user_id: int) -> Any:
    """Make a password-reset link for a user and show it once."""
    try:
        user = accounts.get_user(user_id)
        link, token = invitations.issue_reset_link(
            user, request_actor(), created_by=current_user._get_current_object()
        )
    except AccountError as error:
        return _answer(error.message, "error")
    secret = {
        "title": f"Password-reset link for {user.email}",
        "url": public_url("auth.reset_password", token=token),
        "expires_at": link.expires_at,
        "email": user.email,
    }
    return _answer("Reset link made. Copy it now: it is shown only once.", secret=secret)

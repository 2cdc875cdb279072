"""Invitations (how people join) and password-reset links (how they get back in).

Both are single-use links made by an admin and shown to them once to pass on by hand; nothing is
emailed. Invitations last ``INVITATION_DAYS`` (7), reset links ``PASSWORD_RESET_HOURS`` (24).
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.types import utcnow
from app.models.user import Invitation, LinkPurpose, User
from app.services import accounts, audit, links, passwords
from app.services.accounts import AccountError
from app.services.audit import Actor
from app.services.links import LinkState


class LinkUnusable(Exception):
    """The link cannot be used; ``state`` says whether it is unknown, used, revoked or expired."""

    def __init__(self, state: LinkState) -> None:
        super().__init__(f"link is {state.value}")
        self.state = state


def invite(
    role: str, email: str, actor: Actor, created_by: User | None = None
) -> tuple[Invitation, str]:
    """Make an invitation for ``role`` (and ``email`` if given); return it and its token."""
    role_value = accounts.check_role(role).value
    email = accounts.check_email(email) if email.strip() else ""
    if email and accounts.find_user_by_email(email) is not None:
        raise AccountError(f"{email} already has an account. Invite another address.", "email")
    days = int(current_app.config.get("INVITATION_DAYS", 7))
    invitation, token = links.issue_link(
        LinkPurpose.INVITATION,
        lifetime=timedelta(days=days),
        role=role_value,
        email=email or None,
        created_by_id=created_by.id if created_by else None,
    )
    audit.record(
        "invitation.created",
        actor,
        target_type="invitation",
        target_id=invitation.id,
        details={"role": role_value, "email": email or None, "days": days},
    )
    db.session.commit()
    return invitation, token


def pending_invitations() -> list[Invitation]:
    """Invitations that can still be accepted, newest first."""
    now = utcnow()
    found = db.session.scalars(
        select(Invitation)
        .where(
            Invitation.purpose == LinkPurpose.INVITATION.value,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .order_by(Invitation.created_at.desc())
    ).all()
    return list(found)


def revoke_invitation(invitation_id: int, actor: Actor) -> Invitation:
    """Kill an invitation that has not been accepted yet."""
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.purpose != LinkPurpose.INVITATION.value:
        raise AccountError("That invitation does not exist. Reload the page.")
    if links.link_state(invitation) != LinkState.USABLE:
        raise AccountError("That invitation was already used, revoked or expired.")
    invitation.revoked_at = utcnow()
    audit.record(
        "invitation.revoked",
        actor,
        target_type="invitation",
        target_id=invitation.id,
        details={"role": invitation.role, "email": invitation.email},
    )
    db.session.commit()
    return invitation


def open_link(token: str, purpose: LinkPurpose) -> Invitation:
    """The usable link for ``token``, or :class:`LinkUnusable` saying why not."""
    link = links.find_link(token, purpose)
    state = links.link_state(link)
    is_reset = purpose is LinkPurpose.PASSWORD_RESET and link is not None
    if is_reset and state == LinkState.USABLE and (link.user is None or not link.user.active):
        state = LinkState.REVOKED  # a deactivated user cannot come back through a reset
    if state != LinkState.USABLE or link is None:
        raise LinkUnusable(state)
    return link


def accept_invitation(
    token: str, email: str, display_name: str, password: str, password_again: str, ip: str | None
) -> User:
    """Create the invited person's account; the link is then used up."""
    invitation = open_link(token, LinkPurpose.INVITATION)
    role = invitation.role or "moderator"
    if not links.claim_link(invitation):
        db.session.rollback()
        raise LinkUnusable(LinkState.USED)
    try:
        user = accounts.add_user(email, password, role, display_name, password_again)
    except AccountError:
        db.session.rollback()  # the link stays usable while the person fixes the form
        raise
    invitation.user_id = user.id
    audit.record(
        "invitation.accepted",
        Actor.for_user(user, ip),
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "role": user.role, "invitation_id": invitation.id},
    )
    db.session.commit()
    return user


def issue_reset_link(
    user: User, actor: Actor, created_by: User | None = None
) -> tuple[Invitation, str]:
    """A new password-reset link for ``user`` (older ones die); returns it and its token."""
    if not user.active:
        raise AccountError(f"{user.email} is deactivated. Reactivate them first.")
    hours = int(current_app.config.get("PASSWORD_RESET_HOURS", 24))
    links.revoke_open_links(LinkPurpose.PASSWORD_RESET, user.id)
    link, token = links.issue_link(
        LinkPurpose.PASSWORD_RESET,
        lifetime=timedelta(hours=hours),
        user_id=user.id,
        created_by_id=created_by.id if created_by else None,
    )
    audit.record(
        "user.reset_link_created",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "hours": hours, "link_id": link.id},
    )
    db.session.commit()
    return link, token


def reset_password(token: str, password: str, password_again: str, ip: str | None) -> User:
    """Set a new password through a reset link; every session of the user ends."""
    link = open_link(token, LinkPurpose.PASSWORD_RESET)
    user = link.user
    assert user is not None  # open_link refuses links without a user
    passwords.check_new_password(password, password_again, user.email)
    if not links.claim_link(link):
        db.session.rollback()
        raise LinkUnusable(LinkState.USED)
    accounts.set_password(user, password)
    audit.record(
        "user.password_reset",
        Actor.for_user(user, ip),
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "link_id": link.id},
    )
    db.session.commit()
    return user

"""User accounts: creating them, roles, deactivation, passwords, and the first admin's setup link.

Every change is audited in the same transaction as the change itself. Functions that make a
change commit it; ``add_user`` is the exception, for callers that must claim a link in the same
transaction as the account they create.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.types import utcnow
from app.models.user import LinkPurpose, Role, User, new_session_token
from app.services import audit, links, login_limits, passwords
from app.services.audit import Actor
from app.services.passwords import AccountError

__all__ = [
    "AccountError",
    "add_user",
    "change_password",
    "create_first_admin",
    "create_setup_link",
    "create_user",
    "deactivate",
    "find_user_by_email",
    "get_user",
    "list_users",
    "load_user_for_session",
    "reactivate",
    "rename",
    "set_role",
    "setup_link_is_usable",
]

SETUP_URL_FILE = "setup-url.txt"
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 120


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively: they are stored trimmed and in lower case."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """The normalised email, or :class:`AccountError` when it cannot be an address."""
    email = normalize_email(email)
    local, at, domain = email.partition("@")
    if not (local and at and domain) or "@" in domain or any(c.isspace() for c in email):
        raise AccountError("Enter an email address like name@example.org.", "email")
    if len(email) > MAX_EMAIL_LENGTH:
        raise AccountError(f"Email addresses are at most {MAX_EMAIL_LENGTH} characters.", "email")
    return email


def check_role(role: str) -> Role:
    """``role`` as a :class:`Role`, or :class:`AccountError` naming the roles there are."""
    try:
        return Role(role)
    except ValueError:
        raise AccountError("Choose a role: admin, lead or moderator.", "role") from None


def check_display_name(name: str) -> str:
    """The trimmed display name, or :class:`AccountError` when it is too long."""
    name = " ".join(name.split())
    if len(name) > MAX_NAME_LENGTH:
        raise AccountError(f"Names are at most {MAX_NAME_LENGTH} characters.", "display_name")
    return name


def find_user_by_email(email: str) -> User | None:
    """The user with ``email`` (any letter case), if there is one."""
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def add_user(
    email: str,
    password: str,
    role: Role | str,
    display_name: str = "",
    password_again: str | None = None,
) -> User:
    """Validate and add a user in the caller's transaction (no commit, no audit)."""
    email = check_email(email)
    role = check_role(role)
    display_name = check_display_name(display_name)
    passwords.check_new_password(password, password_again, email)
    if find_user_by_email(email) is not None:
        raise AccountError(f"{email} already has an account. Use another email address.", "email")
    user = User(
        email=email,
        display_name=display_name,
        role=role.value,
        password_hash=passwords.hash_password(password),
        active=True,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # the same email inserted by a concurrent request
        db.session.rollback()
        raise AccountError(
            f"{email} already has an account. Use another email address.", "email"
        ) from None
    return user


def create_user(
    email: str, password: str, role: Role | str, actor: Actor, display_name: str = ""
) -> User:
    """Create an account directly (the command line); audited as ``user.created``."""
    user = add_user(email, password, role, display_name)
    audit.record(
        "user.created",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "role": user.role},
    )
    db.session.commit()
    return user


def load_user_for_session(cookie_id: str) -> User | None:
    """The user a login cookie names, or None when it is stale, forged or deactivated."""
    user_id, _, session_token = cookie_id.partition(":")
    if not user_id.isdigit() or not session_token:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active:
        return None
    if not hmac.compare_digest(user.session_token.encode(), session_token.encode()):
        return None  # the password changed or an admin ended this user's sessions
    return user


def set_password(user: User, password: str) -> None:
    """Store a new password and end every session of ``user`` (caller audits and commits)."""
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()
    user.session_token = new_session_token()


def change_password(user: User, current: str, new: str, new_again: str, actor: Actor) -> None:
    """The user's own password change: the current password proves it is them.

    A wrong current password counts toward the login rate limit; past it, :class:`RateLimited`.
    """
    login_limits.confirm_password(
        user,
        current,
        actor,
        step="change password",
        field="current_password",
        wrong="Your current password is not right. Type it again.",
    )
    passwords.check_new_password(new, new_again, user.email)
    set_password(user, new)
    audit.record("user.password_changed", actor, target_type="user", target_id=user.id)
    db.session.commit()


def rename(user: User, display_name: str, actor: Actor) -> None:
    """Change how the user's name appears to others."""
    old, user.display_name = user.display_name, check_display_name(display_name)
    audit.record(
        "user.renamed",
        actor,
        target_type="user",
        target_id=user.id,
        details={"from": old, "to": user.display_name},
    )
    db.session.commit()


def _keep_an_admin(user: User, actor: Actor, doing: str) -> None:
    if user.role != Role.ADMIN.value or not user.active:
        return
    # Locking the admins' rows (PostgreSQL) stops two admins from demoting each other at once.
    others = db.session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN.value, User.active.is_(True), User.id != user.id)
        .with_for_update()
    ).all()
    if others:
        return
    if actor.type == "user" and actor.id == str(user.id):
        raise AccountError(
            f"You are the last active admin, so you cannot {doing} yourself. "
            "Make another user an admin first."
        )
    raise AccountError(
        f"{user.email} is the last active admin, so you cannot {doing} them. "
        "Make another user an admin first."
    )


def set_role(user: User, role: Role | str, actor: Actor) -> None:
    """Give ``user`` another role; the last active admin keeps theirs."""
    new_role = check_role(role)
    if new_role.value == user.role:
        return
    if new_role != Role.ADMIN:
        _keep_an_admin(user, actor, "demote")
    old, user.role = user.role, new_role.value
    audit.record(
        "user.role_changed",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "from": old, "to": user.role},
    )
    db.session.commit()


def deactivate(user: User, actor: Actor) -> None:
    """Lock ``user`` out at once: sessions end and open reset links die. Reversible."""
    if not user.active:
        return
    _keep_an_admin(user, actor, "deactivate")
    user.active = False
    user.session_token = new_session_token()
    links.revoke_open_links(LinkPurpose.PASSWORD_RESET, user.id)
    audit.record(
        "user.deactivated",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
    db.session.commit()


def reactivate(user: User, actor: Actor) -> None:
    """Let a deactivated user log in again with their old password."""
    if user.active:
        return
    user.active = True
    audit.record(
        "user.reactivated",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
    db.session.commit()


def list_users() -> list[User]:
    """Every account: active ones first, then by role (admins first) and email."""
    users = db.session.scalars(select(User).order_by(User.email)).all()
    return sorted(users, key=lambda user: (not user.active, -user.role_enum.rank))


def get_user(user_id: int) -> User:
    """The user with ``user_id``, or :class:`AccountError` when there is none."""
    user = db.session.get(User, user_id)
    if user is None:
        raise AccountError("That user does not exist. Reload the page.")
    return user


def user_count() -> int:
    """How many accounts exist, active or not."""
    return db.session.scalar(select(func.count()).select_from(User)) or 0


def create_setup_link(base_url: str, instance_path: str) -> str | None:
    """On an empty database, a fresh one-time URL that creates the first admin; else None.

    Called at every start. Any older setup link dies, so only the last printed URL works. The URL
    is also written to ``instance/setup-url.txt`` (mode 0600) for operators who missed the output.
    """
    url_file = Path(instance_path) / SETUP_URL_FILE
    links.revoke_open_links(LinkPurpose.SETUP)
    if user_count():
        db.session.commit()
        url_file.unlink(missing_ok=True)
        return None
    link, token = links.issue_link(LinkPurpose.SETUP, lifetime=None, role=Role.ADMIN.value)
    audit.record(
        "setup.link_created", Actor.system("setup"), target_type="invitation", target_id=link.id
    )
    db.session.commit()
    url = f"{base_url.rstrip('/')}/setup/{token}"
    _write_private(url_file, url + "\n")
    return url


def _write_private(path: Path, text: str) -> None:
    # Created 0600 and written through a temporary name, so nobody else ever reads the link.
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    os.replace(temporary, path)


def setup_link_is_usable(token: str) -> bool:
    """True while ``token`` is the live setup link and no account exists."""
    link = links.find_link(token, LinkPurpose.SETUP)
    return links.link_state(link) == links.LinkState.USABLE and user_count() == 0


def create_first_admin(
    token: str,
    email: str,
    display_name: str,
    password: str,
    password_again: str,
    ip: str | None,
    instance_path: str,
) -> User | None:
    """Create the first admin through the setup link; None when the link is no longer usable."""
    link = links.find_link(token, LinkPurpose.SETUP)
    if link is None or not links.claim_link(link):
        db.session.rollback()
        return None
    # Checked after the claim: on SQLite the claim holds the write lock, so this count is final.
    if user_count():
        db.session.rollback()
        return None
    try:
        user = add_user(email, password, Role.ADMIN, display_name, password_again)
    except AccountError:
        db.session.rollback()  # give the link back: the person fixes the form and posts again
        raise
    audit.record(
        "setup.first_admin",
        Actor.for_user(user, ip),
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
    db.session.commit()
    (Path(instance_path) / SETUP_URL_FILE).unlink(missing_ok=True)
    return user

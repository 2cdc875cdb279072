"""Logging in: the password, the second step, and the successful login that ends the count.

The rate limits that make guessing slow (failures per account and per address in a window) are
in ``app.services.login_limits``, shared with the password re-entry of the profile page.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from app.extensions import db
from app.models.types import utcnow
from app.models.user import LoginAttempt, User
from app.services import accounts, audit, login_limits, passwords, totp
from app.services.audit import Actor
from app.services.login_limits import RateLimited, check_rate_limit

__all__ = [
    "DEACTIVATED",
    "WRONG_CODE",
    "WRONG_PASSWORD",
    "LoginFailed",
    "RateLimited",
    "check_password",
    "check_rate_limit",
    "check_second_step",
    "complete_login",
    "forget_old_attempts",
    "record_logout",
]

WRONG_PASSWORD = "The email or password is wrong. Check both and try again."
WRONG_CODE = "That code is not right. Type the 6 digits your app shows now, or a recovery code."
DEACTIVATED = "This account is deactivated. Ask an admin to reactivate it."
KEEP_ATTEMPTS = timedelta(days=1)


class LoginFailed(Exception):
    """The login did not succeed; ``message`` is safe to show (never says which part was wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _visitor(email: str, ip: str) -> Actor:
    # Not yet logged in: the actor is whoever typed this email, known only by address.
    return Actor("visitor", None, email, ip)


def _record_failure(email: str, ip: str, user: User | None, step: str, reason: str) -> None:
    login_limits.record_failure(
        email,
        ip,
        user,
        actor=_visitor(email, ip),
        action="auth.login_failed",
        step=step,
        reason=reason,
    )


def check_password(email: str, password: str, ip: str) -> User:
    """The user whose email and password these are; :class:`LoginFailed` or :class:`RateLimited`."""
    email = accounts.normalize_email(email)[: accounts.MAX_EMAIL_LENGTH]
    check_rate_limit(email, ip)
    user = accounts.find_user_by_email(email) if email else None
    if user is None:
        passwords.waste_time_like_a_verify(password)
        _record_failure(email, ip, None, "password", "unknown email")
        raise LoginFailed(WRONG_PASSWORD)
    if not passwords.verify_password(user.password_hash, password):
        _record_failure(email, ip, user, "password", "wrong password")
        raise LoginFailed(WRONG_PASSWORD)
    if not user.active:
        _record_failure(email, ip, user, "password", "deactivated")
        raise LoginFailed(DEACTIVATED)
    if passwords.needs_rehash(user.password_hash):  # costs were raised since this hash was made
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user


def check_second_step(user: User, code: str, ip: str) -> str:
    """Accept an app code or a recovery code for ``user``; returns which one it was."""
    check_rate_limit(user.email, ip)
    if totp.accept_code(user, code):
        return "app"
    if totp.use_recovery_code(user, code):
        audit.record(
            "user.recovery_code_used",
            Actor.for_user(user, ip),
            target_type="user",
            target_id=user.id,
            details={"remaining": totp.recovery_codes_left(user)},
        )
        db.session.commit()
        return "recovery"
    _record_failure(user.email, ip, user, "second step", "wrong code")
    raise LoginFailed(WRONG_CODE)


def complete_login(user: User, ip: str, second_step: str | None = None) -> None:
    """Record a successful login: it clears the account's failures and is audited."""
    now = utcnow()
    db.session.add(LoginAttempt(email=user.email, ip=ip, succeeded=True, created_at=now))
    user.last_login_at = now
    audit.record(
        "auth.login",
        Actor.for_user(user, ip),
        target_type="user",
        target_id=user.id,
        details={"second_step": second_step},
    )
    # Logins are rare enough to tidy up here; the daily housekeeping job does it too.
    forget_old_attempts(now)
    db.session.commit()


def forget_old_attempts(now: datetime | None = None) -> int:
    """Delete attempts that no longer count toward any limit (the caller commits)."""
    keep = max(KEEP_ATTEMPTS, login_limits.limits()[2])
    cutoff = (now or utcnow()) - keep
    return (
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < cutoff)).rowcount
        or 0
    )


def record_logout(user: User, ip: str) -> None:
    """Audit a logout (the view ends the session)."""
    audit.record("auth.logout", Actor.for_user(user, ip), target_type="user", target_id=user.id)
    db.session.commit()

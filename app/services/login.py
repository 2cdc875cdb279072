"""Logging in: the password, the second step, and the rate limits that make guessing slow.

Failures are rows in ``login_attempts``. Within ``LOGIN_FAILURE_WINDOW_SECONDS`` (15 minutes) an
account may fail ``LOGIN_MAX_FAILURES_PER_ACCOUNT`` times (5) since its last successful login,
and an address ``LOGIN_MAX_FAILURES_PER_IP`` times (20); past that, attempts are refused, without
checking the password, until the oldest counted failure leaves the window.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models.types import utcnow
from app.models.user import LoginAttempt, User
from app.services import accounts, audit, passwords, totp
from app.services.audit import Actor

WRONG_PASSWORD = "The email or password is wrong. Check both and try again."
WRONG_CODE = "That code is not right. Type the 6 digits your app shows now, or a recovery code."
DEACTIVATED = "This account is deactivated. Ask an admin to reactivate it."
KEEP_ATTEMPTS = timedelta(days=1)


class LoginFailed(Exception):
    """The login did not succeed; ``message`` is safe to show (never says which part was wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RateLimited(Exception):
    """Too many recent failures; ``retry_after`` is how many seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        """What to tell the person, with how long to wait."""
        return f"Too many failed logins. Wait {describe_wait(self.retry_after)}, then try again."


def describe_wait(seconds: int) -> str:
    """``seconds`` in words: "40 seconds", "1 minute", "15 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _limits() -> tuple[int, int, timedelta]:
    config = current_app.config
    return (
        int(config.get("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)),
        int(config.get("LOGIN_MAX_FAILURES_PER_IP", 20)),
        timedelta(seconds=int(config.get("LOGIN_FAILURE_WINDOW_SECONDS", 900))),
    )


def _recent_failures(column: str, value: str, since: datetime, limit: int) -> list[datetime]:
    # Newest first, and no more than the limit: that is all the wait computation needs.
    query = (
        select(LoginAttempt.created_at)
        .where(
            getattr(LoginAttempt, column) == value,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.created_at > since,
        )
        .order_by(LoginAttempt.created_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def _account_window_start(email: str, window_start: datetime) -> datetime:
    last_success = db.session.scalar(
        select(func.max(LoginAttempt.created_at)).where(
            LoginAttempt.email == email, LoginAttempt.succeeded.is_(True)
        )
    )
    if last_success is not None and last_success.tzinfo is None:
        last_success = last_success.replace(tzinfo=window_start.tzinfo)
    return max(window_start, last_success) if last_success else window_start


def _wait(failures: list[datetime], limit: int, window: timedelta, now: datetime) -> int:
    if len(failures) < limit:
        return 0
    # The limit-th newest failure must leave the window before the count drops below the limit.
    oldest_counted = failures[limit - 1]
    if oldest_counted.tzinfo is None:
        oldest_counted = oldest_counted.replace(tzinfo=now.tzinfo)
    return max(1, math.ceil((oldest_counted + window - now).total_seconds()))


def check_rate_limit(email: str, ip: str, now: datetime | None = None) -> None:
    """Raise :class:`RateLimited` when this account or this address failed too often lately."""
    now = now or utcnow()
    per_account, per_ip, window = _limits()
    start = now - window
    email = accounts.normalize_email(email)
    wait = max(
        _wait(
            _recent_failures("email", email, _account_window_start(email, start), per_account),
            per_account,
            window,
            now,
        ),
        _wait(_recent_failures("ip", ip, start, per_ip), per_ip, window, now),
    )
    if wait:
        raise RateLimited(wait)


def _visitor(email: str, ip: str) -> Actor:
    # Not yet logged in: the actor is whoever typed this email, known only by address.
    return Actor("visitor", None, email, ip)


def _record_failure(email: str, ip: str, user: User | None, step: str, reason: str) -> None:
    db.session.add(LoginAttempt(email=email, ip=ip, succeeded=False, created_at=utcnow()))
    audit.record(
        "auth.login_failed",
        _visitor(email, ip),
        target_type="user" if user else None,
        target_id=user.id if user else None,
        details={"email": email, "step": step, "reason": reason},
    )
    db.session.flush()
    try:
        check_rate_limit(email, ip)
    except RateLimited as limited:  # this failure reached a limit: record the lockout once
        audit.record(
            "auth.rate_limited",
            _visitor(email, ip),
            target_type="user" if user else None,
            target_id=user.id if user else None,
            details={"email": email, "wait_seconds": limited.retry_after},
        )
    db.session.commit()


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
    # Old attempts no longer count toward any limit; logins are rare enough to tidy up here.
    keep = max(KEEP_ATTEMPTS, _limits()[2])
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - keep))
    db.session.commit()


def record_logout(user: User, ip: str) -> None:
    """Audit a logout (the view ends the session)."""
    audit.record("auth.logout", Actor.for_user(user, ip), target_type="user", target_id=user.id)
    db.session.commit()

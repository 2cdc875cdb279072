"""The limits that make password guessing slow, shared by the login form and password re-entry.

Failures are rows in ``login_attempts``. Within ``LOGIN_FAILURE_WINDOW_SECONDS`` (15 minutes) an
account may fail ``LOGIN_MAX_FAILURES_PER_ACCOUNT`` times (5) since its last successful login,
and an address ``LOGIN_MAX_FAILURES_PER_IP`` times (20); past that, attempts are refused, without
checking the password, until the oldest counted failure leaves the window.

A logged-in user types their password again to change it, to turn two-step login off or to make
new recovery codes (:func:`confirm_password`). Those attempts count exactly like logins, in the
same rows: a stolen session must not become a way to guess the account's password faster than
the login form allows.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models.types import utcnow
from app.models.user import LoginAttempt, User
from app.services import audit, passwords
from app.services.audit import Actor
from app.services.passwords import AccountError

WRONG_PASSWORD_AGAIN = "Your password is not right. Type it again."


class RateLimited(Exception):
    """Too many recent failures; ``retry_after`` is how many seconds to wait."""

    def __init__(self, retry_after: int, what: str = "failed logins") -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after
        self.what = what

    @property
    def message(self) -> str:
        """What to tell the person, with how long to wait."""
        return f"Too many {self.what}. Wait {describe_wait(self.retry_after)}, then try again."


def describe_wait(seconds: int) -> str:
    """``seconds`` in words: "40 seconds", "1 minute", "15 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def limits() -> tuple[int, int, timedelta]:
    """Failures allowed per account and per address, and the window they are counted in."""
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
    """Raise :class:`RateLimited` when this account or this address failed too often lately.

    ``email`` as accounts store it (trimmed, lower case).
    """
    now = now or utcnow()
    per_account, per_ip, window = limits()
    start = now - window
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


def record_failure(
    email: str, ip: str, user: User | None, *, actor: Actor, action: str, step: str, reason: str
) -> None:
    """Count one failure and audit it as ``action`` (committed); audit the lockout once, when
    this failure is the one that reached a limit."""
    db.session.add(LoginAttempt(email=email, ip=ip, succeeded=False, created_at=utcnow()))
    target = {"target_type": "user" if user else None, "target_id": user.id if user else None}
    audit.record(action, actor, **target, details={"email": email, "step": step, "reason": reason})
    db.session.flush()
    try:
        check_rate_limit(email, ip)
    except RateLimited as limited:
        audit.record(
            "auth.rate_limited",
            actor,
            **target,
            details={"email": email, "step": step, "wait_seconds": limited.retry_after},
        )
    db.session.commit()


def confirm_password(
    user: User,
    password: str,
    actor: Actor,
    *,
    step: str,
    field: str = "password",
    wrong: str = WRONG_PASSWORD_AGAIN,
) -> None:
    """Check the password a logged-in ``user`` typed again before a sensitive change.

    While the account or the address is over its limit the password is not checked and
    :class:`RateLimited` is raised. A wrong password counts as a failure, is audited as
    ``auth.password_check_failed`` and raises :class:`AccountError` (``wrong``, on ``field``).
    """
    ip = actor.ip or "unknown"
    try:
        check_rate_limit(user.email, ip)
    except RateLimited as limited:
        raise RateLimited(limited.retry_after, "wrong passwords") from None
    if passwords.verify_password(user.password_hash, password):
        return
    record_failure(
        user.email,
        ip,
        user,
        actor=actor,
        action="auth.password_check_failed",
        step=step,
        reason="wrong password",
    )
    raise AccountError(wrong, field)

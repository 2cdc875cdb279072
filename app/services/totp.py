"""Two-step login: codes from an authenticator app (TOTP, RFC 6238) and single-use recovery codes.

Turning it on is two moves: :func:`start_enrolment` stores a new secret (encrypted, not yet in
force) and the user proves their app has it with :func:`confirm_enrolment`. Each code works once:
``totp_last_step`` remembers the last time step used, and a code from that step or an earlier one
is refused. One step of clock drift either way is allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, or_, select, update

from app.extensions import db
from app.models.types import utcnow
from app.models.user import RecoveryCode, User
from app.services import audit, crypto, login_limits
from app.services.audit import Actor
from app.services.passwords import AccountError

ISSUER = "Modtools Image"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
# 16 characters of base32 (80 bits): too many to guess offline, so SHA-256 is hash enough.
RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def start_enrolment(user: User) -> None:
    """Give ``user`` a new secret to scan; it takes effect only once confirmed."""
    if user.totp_enabled:
        raise AccountError("Two-step login is already on. Turn it off first to use a new app.")
    user.totp_secret = crypto.encrypt(pyotp.random_base32())
    user.totp_last_step = None
    db.session.commit()


def enrolment_secret(user: User) -> str | None:
    """The secret the user is enrolling, or None when there is none pending."""
    if user.totp_enabled or not user.totp_secret:
        return None
    return crypto.decrypt(user.totp_secret)


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_code_data_uri(uri: str) -> str:
    """A QR code of ``uri`` as an SVG ``data:`` URI (drawn here: no script, no third party)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="black", light="white")


def _normalize(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def accept_code(user: User, code: str, now: float | None = None) -> bool:
    """True if ``code`` is the app's current code and has not been used; marks it used."""
    if not user.totp_secret:
        return False
    code = _normalize(code)
    if len(code) != 6 or not code.isdigit():
        return False
    totp = pyotp.TOTP(crypto.decrypt(user.totp_secret))
    current_step = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in range(current_step - DRIFT_STEPS, current_step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            # Conditional, so two requests racing with one code cannot both pass.
            claimed = db.session.execute(
                update(User)
                .where(
                    User.id == user.id,
                    or_(User.totp_last_step.is_(None), User.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session="fetch")
            ).rowcount
            return claimed == 1
    return False


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_normalize(code).encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def replace_recovery_codes(user: User) -> list[str]:
    """New recovery codes for ``user`` in the caller's transaction; old ones stop working."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(c)) for c in codes)
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """True if ``code`` is one of the user's unused recovery codes; it is then used up."""
    wanted = _recovery_hash(code)
    unused = db.session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    for stored in unused:
        if hmac.compare_digest(stored.code_hash, wanted):
            claimed = db.session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == stored.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
                .execution_options(synchronize_session="fetch")
            ).rowcount
            return claimed == 1
    return False


def recovery_codes_left(user: User) -> int:
    """How many of the user's recovery codes are still unused."""
    return sum(1 for code in user.recovery_codes if code.used_at is None)


def confirm_enrolment(user: User, code: str, actor: Actor) -> list[str]:
    """Turn two-step login on once ``code`` proves the app works; return the recovery codes."""
    if enrolment_secret(user) is None:
        raise AccountError("Start again: choose “Turn on two-step login” on your profile.")
    if not accept_code(user, code):
        raise AccountError("That code is not right. Type the 6 digits your app shows now.", "code")
    user.totp_enabled_at = utcnow()
    codes = replace_recovery_codes(user)
    audit.record("user.totp_enabled", actor, target_type="user", target_id=user.id)
    db.session.commit()
    return codes


def _require_password(user: User, password: str, actor: Actor, step: str) -> None:
    # Counted like a login: a wrong password here is a failure toward the same rate limit.
    login_limits.confirm_password(user, password, actor, step=step)


def new_recovery_codes(user: User, password: str, actor: Actor) -> list[str]:
    """Replace the user's recovery codes after checking their password (rate limited)."""
    _require_password(user, password, actor, "new recovery codes")
    if not user.totp_enabled:
        raise AccountError("Turn on two-step login first; recovery codes come with it.")
    codes = replace_recovery_codes(user)
    audit.record("user.recovery_codes_replaced", actor, target_type="user", target_id=user.id)
    db.session.commit()
    return codes


def _turn_off(user: User) -> None:
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def disable(user: User, password: str, actor: Actor) -> None:
    """The user turns two-step login off; their password proves it is them (rate limited)."""
    _require_password(user, password, actor, "turn off two-step login")
    was_on = user.totp_enabled
    _turn_off(user)
    if was_on:
        audit.record("user.totp_disabled", actor, target_type="user", target_id=user.id)
    db.session.commit()


def admin_disable(user: User, actor: Actor) -> None:
    """An admin turns two-step login off for a user who lost their app and recovery codes."""
    if not user.totp_enabled:
        raise AccountError(f"{user.email} does not use two-step login.")
    _turn_off(user)
    audit.record(
        "user.totp_disabled",
        actor,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "by_admin": True},
    )
    db.session.commit()

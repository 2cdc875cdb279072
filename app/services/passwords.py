"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app

# A hash of nothing anyone can type, verified when an email is unknown so that answering
# "wrong email" takes as long as "wrong password".
_DUMMY_PASSWORD = "not a password: the account does not exist"
MAX_LENGTH = 1024  # long enough for any passphrase, short enough not to be a denial of service


class AccountError(ValueError):
    """Something a person can fix in an account form; ``message`` says how, ``field`` where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PasswordRejected(AccountError):
    """A new password that does not meet the rules."""

    def __init__(self, message: str, field: str = "password") -> None:
        super().__init__(message, field)


@cache
def _hasher(fast: bool) -> PasswordHasher:
    if fast:
        # Tests log in hundreds of times; these costs are far too low for real use.
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    # argon2-cffi's default profile is RFC 9106's "low memory" one: 3 passes over 64 MiB.
    return PasswordHasher()


def hasher() -> PasswordHasher:
    """The hasher this app uses (``PASSWORD_HASH_FAST`` picks tiny costs for tests)."""
    return _hasher(bool(current_app.config.get("PASSWORD_HASH_FAST", False)))


@cache
def _dummy_hash(fast: bool) -> str:
    return _hasher(fast).hash(_DUMMY_PASSWORD)


def hash_password(password: str) -> str:
    """The argon2id hash to store for ``password``."""
    return hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; never raises for a wrong or broken hash."""
    try:
        return hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with other costs than the current ones."""
    try:
        return hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def waste_time_like_a_verify(password: str) -> None:
    """Verify against a dummy hash, so unknown emails cost as much time as known ones."""
    verify_password(
        _dummy_hash(bool(current_app.config.get("PASSWORD_HASH_FAST", False))), password
    )


def min_length() -> int:
    """The shortest password accepted (``PASSWORD_MIN_LENGTH``, 12 unless configured)."""
    return int(current_app.config.get("PASSWORD_MIN_LENGTH", 12))


def check_new_password(password: str, repeated: str | None = None, email: str = "") -> None:
    """Raise :class:`PasswordRejected` unless ``password`` may be used; ``repeated`` must match."""
    shortest = min_length()
    if len(password) < shortest:
        raise PasswordRejected(
            f"Choose a password of at least {shortest} characters; a few words in a row work well."
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"Choose a password of at most {MAX_LENGTH} characters.")
    if not password.strip():
        raise PasswordRejected("The password cannot be only spaces.")
    if email and password.strip().lower() == email.strip().lower():
        raise PasswordRejected("The password cannot be your email address.")
    if repeated is not None and password != repeated:
        raise PasswordRejected(
            "The two passwords are not the same. Type the new password twice.", "password_again"
        )

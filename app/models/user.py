"""People who use the dashboard, the links that let them in, and login attempts for rate limits."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base
from app.models.types import UTCDateTime, utcnow


class Role(StrEnum):
    """What a user may do. Each role includes the ones below it."""

    MODERATOR = "moderator"
    LEAD = "lead"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order moderator < lead < admin."""
        return ROLE_RANK[self]

    def includes(self, other: Role) -> bool:
        """True when this role may do what ``other`` may do."""
        return self.rank >= other.rank


ROLE_RANK = {Role.MODERATOR: 1, Role.LEAD: 2, Role.ADMIN: 3}


def new_session_token() -> str:
    """A fresh random value for ``User.session_token``."""
    return secrets.token_urlsafe(16)


class User(UserMixin, Base):
    """A moderator, lead or admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.MODERATOR.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Part of the login cookie: rotating it ends every session of this user at once.
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    # Fernet-encrypted (app.services.crypto). Set but not enabled while the user is enrolling.
    totp_secret: Mapped[str | None] = mapped_column(String(255), default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, default=None)  # no code used twice
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recovery_codes: Mapped[list[RecoveryCode]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        """False once deactivated: flask-login then refuses the user on every request."""
        return self.active

    @property
    def role_enum(self) -> Role:
        """The role as an enum member."""
        return Role(self.role)

    @property
    def totp_enabled(self) -> bool:
        """True once the user has confirmed an authenticator app."""
        return self.totp_enabled_at is not None

    def get_id(self) -> str:
        """The login cookie's id: a new ``session_token`` makes every old cookie worthless."""
        return f"{self.id}:{self.session_token}"

    def has_role(self, role: Role | str) -> bool:
        """True when this user's role includes ``role``."""
        return self.role_enum.includes(Role(role))

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class RecoveryCode(Base):
    """A single-use code that stands in for a TOTP code when the authenticator is lost."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship(back_populates="recovery_codes")


class LinkPurpose(StrEnum):
    """What a single-use link in ``invitations`` is for."""

    SETUP = "setup"  # creates the first admin on an empty database
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"


class Invitation(Base):
    """A single-use, expiring link: first-admin setup, an invitation, or a password reset.

    Only the SHA-256 of the token is stored, so a database leak does not hand out accounts.
    """

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str | None] = mapped_column(String(16), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])


class LoginAttempt(Base):
    """One login attempt; recent failures per account and per IP drive the rate limit."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_time", "email", "created_at"),
        Index("ix_login_attempts_ip_time", "ip", "created_at"),
        Index("ix_login_attempts_created_at", "created_at"),  # pruning old attempts
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

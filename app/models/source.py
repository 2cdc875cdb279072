"""Sources: one integration each (a forum, a Mastodon instance, a platform) and its tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Base
from app.models.types import JSONType, UTCDateTime, utcnow

if TYPE_CHECKING:
    from app.models.user import User


class SourceKind(StrEnum):
    """The software on the other side; each kind has its own webhook receiver (views/hooks.py)."""

    GENERIC = "generic"  # our own item JSON, signed with Standard Webhooks
    DISCOURSE = "discourse"
    MASTODON = "mastodon"
    PICTRS = "pictrs"  # pict-rs external validation (Lemmy and others)
    ROCKETCHAT = "rocketchat"
    MISSKEY = "misskey"
    MANUAL = "manual"  # images uploaded by hand in the dashboard


class Source(Base):
    """One integration that sends us images."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default=SourceKind.GENERIC.value)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Encrypted at rest with the instance key (app.services.crypto); shown once when created.
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(String(512), default=None)
    callback_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="source", order_by="ApiToken.id")

    def __repr__(self) -> str:
        return f"<Source {self.slug}>"


class ApiToken(Base):
    """A bearer token scoped to one source. Only its SHA-256 is kept; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell tokens apart
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    source: Mapped[Source] = relationship(back_populates="tokens")
    # None when issued outside the dashboard (``flask sources`` commands).
    created_by: Mapped[User | None] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

"""Single-use links (first-admin setup, invitations, password resets): tokens and their life.

A link carries a random token; the database keeps only its SHA-256, so reading the table does
not hand out accounts. A link is used by one conditional UPDATE, so two people (or two tabs)
racing for the same link cannot both win.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select, update

from app.extensions import db
from app.models.types import utcnow
from app.models.user import Invitation, LinkPurpose


class LinkState(StrEnum):
    """Why a link can or cannot be used, in the words shown to the person holding it."""

    USABLE = "usable"
    UNKNOWN = "unknown"
    USED = "used"
    REVOKED = "revoked"
    EXPIRED = "expired"


def new_token() -> str:
    """A fresh link token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database stores for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def find_link(token: str, purpose: LinkPurpose) -> Invitation | None:
    """The link for ``token`` if it exists and serves ``purpose`` (usable or not)."""
    if not token or len(token) > 200:  # no real token is that long; skip the query
        return None
    return db.session.scalar(
        select(Invitation).where(
            Invitation.token_hash == token_hash(token), Invitation.purpose == purpose.value
        )
    )


def link_state(link: Invitation | None, now: datetime | None = None) -> LinkState:
    """Whether ``link`` can be used now, and if not, why."""
    now = now or utcnow()
    if link is None:
        return LinkState.UNKNOWN
    if link.used_at is not None:
        return LinkState.USED
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if link.expires_at is not None and link.expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.USABLE


def issue_link(
    purpose: LinkPurpose,
    *,
    lifetime: timedelta | None,
    role: str | None = None,
    email: str | None = None,
    user_id: int | None = None,
    created_by_id: int | None = None,
) -> tuple[Invitation, str]:
    """Add a link in the caller's transaction; return it and its token (shown once, not stored)."""
    token = new_token()
    now = utcnow()
    link = Invitation(
        purpose=purpose.value,
        token_hash=token_hash(token),
        role=role,
        email=email,
        user_id=user_id,
        created_by_id=created_by_id,
        created_at=now,
        expires_at=now + lifetime if lifetime is not None else None,
    )
    db.session.add(link)
    db.session.flush()
    return link, token


def claim_link(link: Invitation, now: datetime | None = None) -> bool:
    """Mark ``link`` used if it still is usable; False when someone else got there first."""
    now = now or utcnow()
    result = db.session.execute(
        update(Invitation)
        .where(
            Invitation.id == link.id,
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            or_(Invitation.expires_at.is_(None), Invitation.expires_at > now),
        )
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


def revoke_open_links(purpose: LinkPurpose, user_id: int | None = None) -> int:
    """Revoke every unused link for ``purpose`` (and ``user_id`` if given); return how many."""
    query = update(Invitation).where(
        Invitation.purpose == purpose.value,
        Invitation.used_at.is_(None),
        Invitation.revoked_at.is_(None),
    )
    if user_id is not None:
        query = query.where(Invitation.user_id == user_id)
    result = db.session.execute(
        query.values(revoked_at=utcnow()).execution_options(synchronize_session="fetch")
    )
    return result.rowcount

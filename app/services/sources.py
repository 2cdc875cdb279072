"""Sources (the platforms that send us images), their API tokens and webhook signing secrets.

Tokens and secrets are random, returned once to the caller that created them and never again:
a token is kept only as its SHA-256, a webhook secret only encrypted with the instance key (we
must sign callbacks with it, so unlike a token it has to be readable). Every change is written to
the audit log in the same transaction, never with a token or secret in its details.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.item import Item
from app.models.source import ApiToken, Source, SourceKind
from app.models.types import utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.crypto import decrypt, encrypt
from app.services.source_checks import (
    SourceError,
    check_callback_url,
    check_kind,
    check_name,
    check_settings,
    slugify,
)

__all__ = [
    "MANUAL_SLUG",
    "Grant",
    "SourceError",
    "SourceRef",
    "SourceSummary",
    "authenticate_token",
    "check_callback_url",
    "check_kind",
    "check_name",
    "check_settings",
    "check_token",
    "create_source",
    "find_source",
    "get_manual_source",
    "issue_token",
    "list_sources",
    "revoke_token",
    "rotate_webhook_secret",
    "set_enabled",
    "update_source",
    "webhook_secret",
]

TOKEN_PREFIX = "mti_"
# Shown beside each token so admins can tell them apart: "mti_" plus 8 random characters.
TOKEN_DISPLAY_LENGTH = len(TOKEN_PREFIX) + 8
# Recording every use would turn each API call into a database write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MANUAL_SLUG = "manual-uploads"
# "new" would shadow the /admin/sources/new page; the manual source's slug is claimed by it alone.
RESERVED_SLUGS = frozenset({"new", MANUAL_SLUG})


def create_source(
    name: str,
    kind: str,
    actor: Actor,
    *,
    callback_url: str | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[Source, str, str]:
    """Create a source with its first API token and webhook secret; commit.

    Returns ``(source, raw_api_token, raw_webhook_secret)``: show both to the admin now, they
    cannot be read back. Raises :class:`SourceError` when an argument is not acceptable.
    """
    name = check_name(name)
    kind = check_kind(kind)
    if kind == SourceKind.MANUAL:
        raise SourceError(
            "Manual uploads have their own source already; choose another kind.", "kind"
        )
    callback_url = check_callback_url(callback_url)
    settings = check_settings(settings or {})
    for attempt in range(3):
        source = Source(
            name=name,
            slug=_unique_slug(name),
            kind=kind,
            callback_url=callback_url,
            settings=settings,
        )
        secret = _new_webhook_secret()
        source.webhook_secret_encrypted = encrypt(secret)
        db.session.add(source)
        try:
            db.session.flush()
        except IntegrityError:
            # Another admin took the same slug a moment ago: pick the next free one.
            db.session.rollback()
            if attempt == 2:
                raise
            continue
        audit.record(
            "source.created",
            actor,
            target_type="source",
            target_id=source.id,
            details={"name": name, "slug": source.slug, "kind": kind},
        )
        _, raw_token = _add_token(source, actor, "first token")
        db.session.commit()
        return source, raw_token, secret
    raise AssertionError("unreachable")


def update_source(
    source: Source,
    actor: Actor,
    *,
    name: str | None = None,
    callback_url: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Source:
    """Change a source's name, callback URL or settings and commit; ``None`` leaves one as is.

    An empty ``callback_url`` removes it. The slug never changes: platforms have it in their
    webhook URLs.
    """
    # Check everything before changing anything, so a refusal leaves the source untouched.
    name = check_name(name) if name is not None else None
    url = check_callback_url(callback_url) if callback_url is not None else source.callback_url
    settings = check_settings(settings) if settings is not None else None
    changed: dict[str, Any] = {}
    if name is not None and name != source.name:
        changed["name"] = {"from": source.name, "to": name}
        source.name = name
    if url != source.callback_url:
        # Only the host: a URL's query string may itself hold a platform's secret.
        changed["callback_host"] = _host(url)
        source.callback_url = url
    if settings is not None and settings != source.settings:
        old = source.settings or {}
        changed["changed_settings"] = sorted(
            key for key in set(old) | set(settings) if old.get(key) != settings.get(key)
        )
        source.settings = settings
    if changed:
        audit.record(
            "source.updated",
            actor,
            target_type="source",
            target_id=source.id,
            details={"slug": source.slug, **changed},
        )
        db.session.commit()
    return source


def set_enabled(source: Source, enabled: bool, actor: Actor) -> Source:
    """Switch a source on or off and commit. A disabled source's tokens are refused."""
    if source.enabled != enabled:
        source.enabled = enabled
        audit.record(
            "source.enabled" if enabled else "source.disabled",
            actor,
            target_type="source",
            target_id=source.id,
            details={"slug": source.slug},
        )
        db.session.commit()
    return source


def issue_token(source: Source, actor: Actor, name: str = "") -> tuple[ApiToken, str]:
    """Issue another API token for ``source`` and commit; the raw token is returned only here."""
    token, raw = _add_token(source, actor, name.strip()[:120])
    db.session.commit()
    return token, raw


def revoke_token(token_id: int, actor: Actor) -> ApiToken:
    """Revoke a token at once and commit. Revoking a revoked token changes nothing."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise SourceError(f"There is no API token with id {token_id}. Check the id in the list.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            "token.revoked",
            actor,
            target_type="api_token",
            target_id=token.id,
            details={"source": token.source.slug, "prefix": token.prefix, "name": token.name},
        )
        db.session.commit()
    return token


@dataclass(frozen=True)
class SourceRef:
    """A source's id and slug: enough to record an item and name the actor, without a load."""

    id: int
    slug: str


@dataclass(frozen=True)
class Grant:
    """What a valid bearer token grants: the token's id, and its source."""

    token_id: int
    source: SourceRef


# Built once: every API request runs it.
_GRANT_OF_DIGEST = (
    select(
        ApiToken.id,
        ApiToken.token_hash,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        Source.id,
        Source.slug,
        Source.enabled,
    )
    .join(Source, Source.id == ApiToken.source_id)
    .where(ApiToken.token_hash == bindparam("digest"))
)


def check_token(raw_token: str) -> Grant | None:
    """The grant of an active token on an enabled source, or ``None``; one indexed query.

    Also records when the token was last used, at most once a minute. Every API request comes
    through here, so it reads three columns rather than loading the token and source objects.
    """
    if not raw_token.startswith(TOKEN_PREFIX) or len(raw_token) > 200:
        return None
    digest = _hash(raw_token)
    row = db.session.execute(_GRANT_OF_DIGEST, {"digest": digest}).one_or_none()
    # The lookup is by hash already; comparing in constant time costs nothing and leaks nothing.
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    token_id, _, revoked_at, last_used_at, source_id, slug, enabled = row
    if revoked_at is not None or not enabled:
        return None
    now = utcnow()
    if last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests write once; committed now, so the write lock is
        # not held while the caller processes an image.
        db.session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                or_(
                    ApiToken.last_used_at.is_(None),
                    ApiToken.last_used_at <= now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
        )
        db.session.commit()
    return Grant(token_id, SourceRef(source_id, slug))


def authenticate_token(raw_token: str) -> ApiToken | None:
    """The active token matching ``raw_token`` on an enabled source, or ``None`` (check_token)."""
    grant = check_token(raw_token)
    return None if grant is None else db.session.get(ApiToken, grant.token_id)


def rotate_webhook_secret(source: Source, actor: Actor) -> str:
    """Replace the source's webhook signing secret and commit; returns the new one, once."""
    secret = _new_webhook_secret()
    source.webhook_secret_encrypted = encrypt(secret)
    audit.record(
        "source.secret_rotated",
        actor,
        target_type="source",
        target_id=source.id,
        details={"slug": source.slug},
    )
    db.session.commit()
    return secret


def webhook_secret(source: Source) -> str | None:
    """The webhook signing secret in clear, to sign callbacks and check webhooks, or ``None``."""
    if not source.webhook_secret_encrypted:
        return None
    return decrypt(source.webhook_secret_encrypted)


def get_manual_source() -> Source:
    """The source that images uploaded in the dashboard belong to, created on first use.

    Its slug is reserved, so two requests creating it at once collide on the unique slug and the
    loser reads the winner's row.
    """
    query = select(Source).where(Source.slug == MANUAL_SLUG)
    source = db.session.scalar(query)
    if source is not None:
        return source
    source = Source(name="Manual uploads", slug=MANUAL_SLUG, kind=SourceKind.MANUAL.value)
    db.session.add(source)
    try:
        db.session.flush()
        audit.record(
            "source.created",
            Actor.system(),
            target_type="source",
            target_id=source.id,
            details={"name": source.name, "slug": MANUAL_SLUG, "kind": "manual"},
        )
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        source = db.session.scalars(query).one()
    return source


@dataclass(frozen=True)
class SourceSummary:
    """A row of the sources list: the source and its counts."""

    source: Source
    active_tokens: int
    items: int


def list_sources() -> list[SourceSummary]:
    """Every source, by name, with its number of active tokens and of items."""
    tokens = (
        select(ApiToken.source_id, func.count().label("n"))
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.source_id)
        .subquery()
    )
    items = select(Item.source_id, func.count().label("n")).group_by(Item.source_id).subquery()
    rows = db.session.execute(
        select(Source, func.coalesce(tokens.c.n, 0), func.coalesce(items.c.n, 0))
        .outerjoin(tokens, tokens.c.source_id == Source.id)
        .outerjoin(items, items.c.source_id == Source.id)
        .order_by(func.lower(Source.name), Source.id)
    ).all()
    return [SourceSummary(source, active, count) for source, active, count in rows]


def find_source(name_or_slug: str) -> Source | None:
    """The source with this slug, or else the only one with this name (case-insensitive)."""
    source = db.session.scalar(select(Source).where(Source.slug == name_or_slug))
    if source is not None:
        return source
    named = db.session.scalars(
        select(Source).where(func.lower(Source.name) == name_or_slug.strip().lower())
    ).all()
    return named[0] if len(named) == 1 else None


def _unique_slug(name: str) -> str:
    base = slugify(name)
    taken = (
        set(
            db.session.scalars(
                select(Source.slug).where(or_(Source.slug == base, Source.slug.like(f"{base}-%")))
            )
        )
        | RESERVED_SLUGS
    )
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _add_token(source: Source, actor: Actor, name: str) -> tuple[ApiToken, str]:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        source=source,
        name=name,
        prefix=raw[:TOKEN_DISPLAY_LENGTH],
        token_hash=_hash(raw),
        created_by_id=int(actor.id) if actor.type == "user" and actor.id else None,
    )
    db.session.add(token)
    db.session.flush()
    audit.record(
        "token.issued",
        actor,
        target_type="api_token",
        target_id=token.id,
        details={"source": source.slug, "prefix": token.prefix, "name": name},
    )
    return token, raw


def _hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def _new_webhook_secret() -> str:
    # The Standard Webhooks format ("whsec_" + base64), which most receiving libraries accept.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None

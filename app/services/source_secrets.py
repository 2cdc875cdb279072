"""Platform credentials of a source (API keys, tokens), kept encrypted and never shown again.

Each credential is one setting named ``secret:<name>`` whose value is the ciphertext from
:mod:`app.services.crypto`; flat keys, because source settings are a flat object
(``source_checks.check_settings``). The source page's JSON textarea never renders them
(:func:`public_settings`) and saving it keeps them (:func:`keep_secrets`); they change only through
the "Platform credentials" form or :func:`set_secret`, audited by name, never by value.

Compatibility: :func:`credential` falls back to a plain setting of the same name, so sources set up
before credentials were encrypted keep working until an admin re-enters the value in the form.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm.attributes import flag_modified

from app.extensions import db
from app.models.source import Source
from app.services import audit
from app.services.audit import Actor
from app.services.crypto import InvalidToken, decrypt, encrypt
from app.services.source_checks import MAX_SETTING_LENGTH, SourceError

log = logging.getLogger(__name__)
PREFIX = "secret:"
# The credentials each kind of source can use, in the order the form shows them.
NAMES_BY_KIND: dict[str, tuple[str, ...]] = {
    "discourse": ("discourse_api_key", "discourse_api_username"),
    "mastodon": ("mastodon_access_token",),
    "rocketchat": ("rocketchat_user_id", "rocketchat_auth_token"),
    "misskey": ("misskey_token",),
    "pictrs": ("lemmy_jwt", "pictrs_api_key"),
    "generic": ("lemmy_jwt", "pictrs_api_key"),
}


def names_for(source: Source) -> tuple[str, ...]:
    """The credentials that make sense for the source's kind."""
    return NAMES_BY_KIND.get(source.kind, ())


def secret_names(source: Source) -> list[str]:
    """The names of the credentials that are set, sorted."""
    return sorted(key[len(PREFIX) :] for key in (source.settings or {}) if key.startswith(PREFIX))


def get_secret(source: Source, name: str) -> str | None:
    """The credential in clear, or None when unset or unreadable (the instance key changed)."""
    stored = (source.settings or {}).get(PREFIX + name)
    if not isinstance(stored, str) or not stored:
        return None
    try:
        return decrypt(stored)
    except InvalidToken:
        log.warning("source %s: credential %s cannot be decrypted; re-enter it", source.slug, name)
        return None


def credential(source: Source, name: str) -> str | None:
    """The encrypted credential, else a plain setting of that name (older sources), as one line.

    A value with a line break or ``;`` is refused: it goes into HTTP headers and cookies.
    """
    value = get_secret(source, name) or (source.settings or {}).get(name)
    if isinstance(value, str) and value.strip() and not any(c in value for c in "\r\n;"):
        return value.strip()
    return None


def set_secret(source: Source, name: str, value: str, actor: Actor) -> None:
    """Store one credential encrypted, audited by name; commits."""
    save_secrets(source, {name: value}, set(), actor)


def clear_secret(source: Source, name: str, actor: Actor) -> None:
    """Remove one credential, audited by name; commits."""
    save_secrets(source, {}, {name}, actor)


def save_secrets(
    source: Source, values: Mapping[str, str], clear: set[str], actor: Actor
) -> list[str]:
    """Set the non-empty ``values`` and remove the ``clear`` ones; empty values keep the old one.

    Returns the names changed; commits and audits only when something changed.
    """
    unknown = sorted(name for name in set(values) | clear if name not in names_for(source) and name)
    if unknown:
        raise SourceError(
            f"A {source.kind} source has no credential called {', '.join(unknown)}.", "secrets"
        )
    settings = dict(source.settings or {})
    changed: list[str] = []
    for name in sorted(clear):
        if settings.pop(PREFIX + name, None) is not None:
            changed.append(name)
    for name, value in sorted(values.items()):
        value = (value or "").strip()
        if not value or name in clear:
            continue
        if len(value) > MAX_SETTING_LENGTH // 2 or any(c in value for c in "\r\n"):
            raise SourceError(f"The {name} must be one line of at most 1000 characters.", name)
        settings[PREFIX + name] = encrypt(value)
        changed.append(name)
    if changed:
        source.settings = settings
        flag_modified(source, "settings")
        audit.record(
            "source.credentials_changed",
            actor,
            target_type="source",
            target_id=source.id,
            details={
                "slug": source.slug,
                "set": sorted(set(changed) - clear),
                "cleared": sorted(clear & set(changed)),
            },
        )
        db.session.commit()
    return changed


def public_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings an admin may see and edit as JSON: everything but the credentials."""
    return {key: value for key, value in (settings or {}).items() if not key.startswith(PREFIX)}


def keep_secrets(source: Source, edited: Mapping[str, Any]) -> dict[str, Any]:
    """The edited settings plus the stored credentials; typing a ``secret:`` key is refused."""
    if any(str(key).startswith(PREFIX) for key in edited):
        raise SourceError(
            "Enter platform credentials in the “Platform credentials” form, not in the JSON.",
            "settings",
        )
    stored = {k: v for k, v in (source.settings or {}).items() if k.startswith(PREFIX)}
    return {**edited, **stored}

"""Checking what admins type for a source: name, kind, callback URL, settings, and its slug.

Each check returns the clean value or raises :class:`SourceError`, whose message tells the admin
(or the platform developer using the CLI) how to fix the input.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from app.models.source import SourceKind

SLUG_MAX_LENGTH = 48
MAX_SETTINGS = 50
MAX_SETTING_LENGTH = 2000


class SourceError(ValueError):
    """A source change was refused: ``message`` says how to fix it, ``field`` names the input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def check_name(name: str) -> str:
    """The name, trimmed; refused when empty or too long."""
    name = " ".join((name or "").split())
    if not name:
        raise SourceError("Give the source a name, such as the platform's name.", "name")
    if len(name) > 120:
        raise SourceError("Keep the name under 120 characters.", "name")
    return name


def check_kind(kind: str) -> str:
    """The kind as stored; refused unless it is one of :class:`SourceKind`."""
    try:
        return SourceKind((kind or "").strip().lower()).value
    except ValueError:
        choices = ", ".join(k.value for k in SourceKind if k is not SourceKind.MANUAL)
        raise SourceError(f"Unknown kind {kind!r}. Choose one of: {choices}.", "kind") from None


def check_callback_url(url: str | None) -> str | None:
    """An http(s) URL with a host, or ``None`` when empty."""
    url = (url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(
            "The callback URL must start with https:// (or http://) and name a "
            "host, for example https://forum.example.org/modtools/callback.",
            "callback_url",
        )
    if parts.username or parts.password:
        # It would be shown on the source page; the platform should check our signature instead.
        raise SourceError(
            "Leave the user name and password out of the callback URL: "
            "callbacks are signed with the webhook secret.",
            "callback_url",
        )
    if len(url) > 2048:
        raise SourceError("The callback URL is too long (2048 characters at most).", "callback_url")
    return url


def check_settings(settings: Any) -> dict[str, Any]:
    """A flat JSON object of short keys and plain values (text, number, true/false, null)."""
    if not isinstance(settings, dict):
        raise SourceError('Settings must be a JSON object, such as {"language": "en"}.', "settings")
    if len(settings) > MAX_SETTINGS:
        raise SourceError(f"Keep to {MAX_SETTINGS} settings at most.", "settings")
    for key, value in settings.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 64:
            raise SourceError("Each setting needs a name of 1 to 64 characters.", "settings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise SourceError(
                f"The setting {key!r} must be text, a number, true, false or "
                "null; lists and objects are not supported yet.",
                "settings",
            )
        if isinstance(value, str) and len(value) > MAX_SETTING_LENGTH:
            raise SourceError(
                f"The setting {key!r} is too long ({MAX_SETTING_LENGTH} characters at most).",
                "settings",
            )
    return dict(settings)


def slugify(name: str) -> str:
    """A URL-safe slug from a name: ASCII letters, digits and hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX_LENGTH].strip("-") or "source"

"""Webhook receivers for community software: what every platform's parser hands back.

Each platform module (``discourse``, ``mastodon``, ``rocketchat``, ``misskey``, ``generic``) has
``verify(secret, headers, body)``, which raises ``signatures.SignatureError``, and
``read(payload, headers, source)``, which returns a :class:`Delivery`: the event, the id to
deduplicate on, and one :class:`ImageRef` per image found. ``receive`` turns a delivery into
items through the ingest service; ``pictrs`` is the synchronous exception. Images the platform
announced before it can serve them become waiting items (``waiting``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from app.services.submission import (
    HTTP_URL,
    MAX_CONTEXT_TEXT,
    MAX_URL,
    IngestError,
    Submission,
    parse_timestamp,
)

MAX_IMAGES_PER_DELIVERY = 100
# Item metadata flag: fetch the image with the source's platform credentials (``credentials``).
CREDENTIALS_FLAG = "fetch_with_source_credentials"


class HookRefused(Exception):
    """A webhook we refuse: HTTP ``status``, a ``code``, and a ``message`` safe to log and show."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ImageRef:
    """One image a webhook told us about, with the post or message it appeared in."""

    external_id: str
    url: str
    uploader_id: str | None = None
    uploader_name: str | None = None
    context_url: str | None = None
    context_text: str | None = None
    created_at: str | None = None  # as the platform wrote it; ingest parses RFC 3339
    metadata: dict[str, Any] = field(default_factory=dict)
    # The fetch must carry the source's platform credentials (protected Rocket.Chat files).
    with_credentials: bool = False

    def submission(self) -> Submission:
        """The item this image becomes, in the ingest service's terms (``url`` may be empty
        for an image the platform has not finished processing)."""
        metadata = dict(self.metadata)
        if self.with_credentials:
            metadata[CREDENTIALS_FLAG] = True
        try:
            created_at = parse_timestamp(self.created_at, "created_at")
        except IngestError:
            created_at = None  # a platform's odd timestamp is no reason to lose the image
        return Submission(
            external_id=self.external_id[:255],
            image_url=self.url or None,
            uploader_id=self.uploader_id,
            uploader_name=self.uploader_name,
            context_url=(self.context_url or None) and self.context_url[:4096],
            context_text=self.context_text,
            context_created_at=created_at,
            metadata={key: value for key, value in metadata.items() if value is not None},
        )


@dataclass
class Delivery:
    """What one webhook request carried: its event, its dedupe id, and the images in it."""

    event: str
    delivery_id: str | None = None
    images: list[ImageRef] = field(default_factory=list)
    # Images the platform has not finished processing (Mastodon's ``url: null``): no ``url``.
    not_ready: list[ImageRef] = field(default_factory=list)
    submissions: list[Submission] = field(default_factory=list)  # the generic receiver's items
    note: str | None = None  # why nothing was taken, for the receipt log


def text(value: Any, limit: int = 255) -> str | None:
    """A platform value as short text (ids arrive as numbers or strings), or None."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    result = str(value).replace("\x00", "")
    return result[:limit] or None


def absolute_url(url: Any, base_url: str | None) -> str | None:
    """``url`` made absolute against the platform's base URL; None unless it is a usable http(s)
    URL. Relative (``/uploads/…``) and protocol-relative (``//host/…``) URLs need a base URL."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if not urlsplit(url).scheme:
        if not base_url:
            return None
        url = urljoin(base_url.rstrip("/") + "/", url)
    if len(url) > MAX_URL or not HTTP_URL.match(url):
        return None
    return url


def same_origin(url: str, base_url: str | None) -> bool:
    """Whether ``url`` is on the platform's own host (scheme, host and port as configured)."""
    if not base_url:
        return False
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def base_url_of(source: Any, fallback: str | None = None) -> str | None:
    """The platform's address from the source's ``base_url`` setting (or ``fallback``)."""
    configured = (source.settings or {}).get("base_url")
    value = configured if isinstance(configured, str) and configured.strip() else fallback
    return value.strip().rstrip("/") if value else None


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("p", "br", "div", "li", "blockquote", "aside", "h1", "h2", "h3"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: Any) -> str | None:
    """Rendered HTML (Discourse's ``cooked``, Mastodon's ``content``) as plain text."""
    if not isinstance(html, str) or not html:
        return None
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    lines = (
        re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")
    )
    return "\n".join(line for line in lines if line)[:MAX_CONTEXT_TEXT] or None

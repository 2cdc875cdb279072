"""Discourse: ``post_created`` and ``post_edited`` webhooks, images from the post's ``cooked`` HTML.

Chat messages (``chat_message_created`` / ``_edited``) come through the same receiver and are
read by ``discourse_chat``.

Discourse signs the raw body: ``X-Discourse-Event-Signature: sha256=<hex HMAC-SHA256>``. Each
delivery has ``X-Discourse-Event-Id``, kept so a redelivery is ignored. In ``cooked``:

- a large image is a lightbox: ``<a class="lightbox" href="original"><img src="thumbnail">``;
  the ``href`` is the original and the inner thumbnail is the same image, so it is skipped;
- ``img.emoji``, avatars (``img.avatar``, ``/user_avatar/``, ``/letter_avatar``), onebox site
  icons and ``/images/transparent.png`` placeholders are not images people posted;
- an empty ``src`` (secure uploads) or a placeholder falls back to ``data-orig-src``
  (``upload://<base62>.<ext>``), fetched through ``/uploads/short-url/<base62>.<ext>``.

An image's external id is ``discourse:post:<post id>:<sha1>``, with the SHA-1 Discourse puts in
every upload URL (or a hash of the URL for hotlinked images), so an edit that adds an image
creates only that one, and editing never renumbers the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from app.models.source import Source
from app.services.webhooks import (
    MAX_IMAGES_PER_DELIVERY,
    Delivery,
    ImageRef,
    absolute_url,
    base_url_of,
    html_to_text,
    text,
)
from app.services.webhooks.signatures import verify_hex_hmac

POST_EVENTS = {"post_created", "post_edited"}
SKIPPED_CLASSES = {"emoji", "avatar", "site-icon"}
SKIPPED_PATHS = ("/user_avatar/", "/letter_avatar", "/images/transparent.png", "/images/emoji/")
SHA1_IN_PATH = re.compile(r"/([0-9a-f]{40})(?:[._/]|$)")
UPLOAD_SHORT = re.compile(r"^upload://([0-9A-Za-z]+)(\.[0-9A-Za-z]+)?$")
BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check ``X-Discourse-Event-Signature`` over the raw body."""
    verify_hex_hmac(
        secret, body, headers.get("X-Discourse-Event-Signature"), "X-Discourse-Event-Signature"
    )


def read(payload: Any, headers: Mapping[str, str], source: Source) -> Delivery:
    """The images of a post or chat message event; others (``ping``, topics, users) carry none."""
    from app.services.webhooks.discourse_chat import CHAT_EVENTS, read_chat_message

    event = text(headers.get("X-Discourse-Event"), 64) or "unknown"
    delivery = Delivery(event=event, delivery_id=text(headers.get("X-Discourse-Event-Id")))
    base = base_url_of(source, headers.get("X-Discourse-Instance"))
    if event in CHAT_EVENTS:
        return read_chat_message(payload, delivery, base)
    post = payload.get("post") if isinstance(payload, dict) else None
    if event not in POST_EVENTS or not isinstance(post, dict):
        delivery.note = f"The {event} event carries no post or chat message; nothing to check."
        return delivery
    post_id = text(post.get("id"))
    context_url = None
    if base and post.get("topic_id") is not None:
        slug = text(post.get("topic_slug")) or "-"
        context_url = f"{base}/t/{slug}/{post.get('topic_id')}/{post.get('post_number') or 1}"
    title = text(post.get("topic_title"), 500)
    body_text = html_to_text(post.get("cooked")) or text(post.get("raw"), 10_000)
    context_text = "\n\n".join(part for part in (title, body_text) if part) or None
    for key, url in cooked_images(post.get("cooked"), base)[:MAX_IMAGES_PER_DELIVERY]:
        delivery.images.append(
            ImageRef(
                external_id=f"discourse:post:{post_id}:{key}",
                url=url,
                uploader_id=text(post.get("user_id")),
                uploader_name=text(post.get("username")),
                context_url=context_url,
                context_text=context_text,
                created_at=text(post.get("created_at")),
                metadata={
                    "platform": "discourse",
                    "post_id": post.get("id"),
                    "topic_id": post.get("topic_id"),
                    "post_number": post.get("post_number"),
                },
                # Secure uploads need the API key (sent only to the forum's own host).
                with_credentials="/secure-uploads/" in url,
            )
        )
    if not delivery.images:
        delivery.note = "The post has no images."
    return delivery


def cooked_images(cooked: Any, base_url: str | None) -> list[tuple[str, str]]:
    """``(key, absolute URL)`` of each image posted in ``cooked``, each image once."""
    if not isinstance(cooked, str):
        return []
    parser = _CookedImages()
    parser.feed(cooked)
    parser.close()
    found: dict[str, str] = {}
    for raw_url in parser.urls:
        url = absolute_url(raw_url, base_url)
        if url is None:
            continue
        key = image_key(url)
        found.setdefault(key, url)
    return list(found.items())


def image_key(url: str) -> str:
    """The upload's SHA-1 when the URL carries it, else a hash of the URL: stable across edits."""
    match = SHA1_IN_PATH.search(url)
    if match:
        return match.group(1)
    short = re.search(r"/uploads/short-url/([0-9A-Za-z]+)", url)
    if short:
        return base62_to_sha1(short.group(1))
    return "url-" + hashlib.sha256(url.encode()).hexdigest()[:32]


def base62_to_sha1(value: str) -> str:
    """Discourse's ``data-base62-sha1`` back to the 40-digit hex SHA-1 it encodes."""
    number = 0
    for char in value:
        number = number * 62 + BASE62.index(char)
    return f"{number:040x}"[-40:]


class _CookedImages(HTMLParser):
    """Collects posted images' URLs: lightbox originals, else ``img`` sources."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.lightbox_depth = 0  # >0 while inside <a class="lightbox">

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        classes = set(attributes.get("class", "").split())
        if tag == "a":
            if self.lightbox_depth:
                self.lightbox_depth += 1
            elif "lightbox" in classes and attributes.get("href"):
                self.lightbox_depth = 1
                self.urls.append(attributes["href"])
            return
        if tag != "img" or self.lightbox_depth or classes & SKIPPED_CLASSES:
            return
        src = attributes.get("src", "")
        if not src or "/images/transparent.png" in src:
            src = _short_url(attributes.get("data-orig-src", ""))
        if src and not any(path in src for path in SKIPPED_PATHS):
            self.urls.append(src)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.lightbox_depth:
            self.lightbox_depth -= 1


def _short_url(orig_src: str) -> str:
    match = UPLOAD_SHORT.match(orig_src.strip())
    if not match:
        return ""
    return f"/uploads/short-url/{match.group(1)}{match.group(2) or ''}"

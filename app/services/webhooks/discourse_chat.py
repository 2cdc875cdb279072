"""Discourse chat: ``chat_message_created`` and ``chat_message_edited`` webhooks.

The chat plugin sends them through the same webhooks as posts (event type ``chat_message``, the
*Chat Message Event* in the webhook form), signed the same way. The body is
``{"chat_message": {"message": <Chat::MessageSerializer>, "channel": <Chat::ChannelSerializer>}}``:
the message has ``id``, ``message`` (its raw text), ``cooked``, ``created_at``, ``user`` (``id``,
``username``…) and ``uploads`` (``UploadSerializer``: ``id``, ``url``, ``original_filename``,
``extension``, ``width``, ``height``…); the channel has ``id``, ``title`` and ``slug``.

Images are the uploads with an image extension (a PDF or a zip is skipped), plus any image in the
cooked HTML (a markdown image or a pasted URL), read as for posts. An image's external id is
``discourse:chat:<message id>:<sha1>``, so an edit that adds an image creates only that one.
Context: the message's link in its channel (``/chat/c/<slug>/<channel id>/<message id>``), the
channel's title and the message as text; uploader: the message's user.
"""

from __future__ import annotations

from typing import Any

from app.services.webhooks import (
    MAX_IMAGES_PER_DELIVERY,
    Delivery,
    ImageRef,
    absolute_url,
    html_to_text,
    text,
)
from app.services.webhooks.discourse import cooked_images, image_key

CHAT_EVENTS = {"chat_message_created", "chat_message_edited"}
# Raster formats a person posts as a picture; SVG and icons are not photographs to review.
IMAGE_EXTENSIONS = {
    "avif",
    "bmp",
    "gif",
    "heic",
    "heif",
    "jpeg",
    "jpg",
    "png",
    "tif",
    "tiff",
    "webp",
}


def read_chat_message(payload: Any, delivery: Delivery, base: str | None) -> Delivery:
    """The images of one chat message event, added to ``delivery``."""
    body = payload.get("chat_message") if isinstance(payload, dict) else None
    body = body if isinstance(body, dict) else {}
    message = body.get("message") if isinstance(body.get("message"), dict) else None
    if message is None:
        delivery.note = f"The {delivery.event} event carries no chat message; nothing to check."
        return delivery
    channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
    user = message.get("user") if isinstance(message.get("user"), dict) else {}
    message_id = text(message.get("id"))
    channel_id = text(channel.get("id") or message.get("chat_channel_id"))
    context_url = None
    if base and channel_id and message_id:
        slug = text(channel.get("slug")) or "-"
        context_url = f"{base}/chat/c/{slug}/{channel_id}/{message_id}"
    title = text(channel.get("title") or channel.get("name"), 500)
    words = html_to_text(message.get("cooked")) or text(message.get("message"), 10_000)
    context_text = "\n\n".join(part for part in (title, words) if part) or None
    for key, url, filename in _images(message, base)[:MAX_IMAGES_PER_DELIVERY]:
        delivery.images.append(
            ImageRef(
                external_id=f"discourse:chat:{message_id}:{key}",
                url=url,
                uploader_id=text(user.get("id")),
                uploader_name=text(user.get("username")),
                context_url=context_url,
                context_text=context_text,
                created_at=text(message.get("created_at")),
                metadata={
                    "platform": "discourse",
                    "chat_message_id": message.get("id"),
                    "chat_channel_id": channel.get("id") or message.get("chat_channel_id"),
                    "thread_id": message.get("thread_id"),
                    "filename": filename,
                },
                # Secure uploads need the API key (sent only to the forum's own host).
                with_credentials="/secure-uploads/" in url,
            )
        )
    if not delivery.images:
        delivery.note = "The chat message has no images."
    return delivery


def _images(message: dict[str, Any], base: str | None) -> list[tuple[str, str, str | None]]:
    """``(key, absolute URL, file name)`` of each image in the message, each image once."""
    found: dict[str, tuple[str, str | None]] = {}
    for upload in message.get("uploads") or []:
        if not isinstance(upload, dict) or not _is_image(upload):
            continue
        url = absolute_url(upload.get("url"), base)
        if url is not None:
            found.setdefault(image_key(url), (url, text(upload.get("original_filename"))))
    for key, url in cooked_images(message.get("cooked"), base):
        found.setdefault(key, (url, None))
    return [(key, url, name) for key, (url, name) in found.items()]


def _is_image(upload: dict[str, Any]) -> bool:
    extension = text(upload.get("extension"), 16)
    if not extension:  # older serializers: the name or the URL still ends with it
        name = str(upload.get("original_filename") or upload.get("url") or "")
        extension = name.rsplit(".", 1)[-1] if "." in name else None
    return (extension or "").lower() in IMAGE_EXTENSIONS

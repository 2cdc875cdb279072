"""Discourse actions: delete or hide the post with the image, silence or suspend its author.

Authentication is ``Api-Key`` + ``Api-Username`` (a staff user, ``system`` by default), from the
source's platform credentials ``discourse_api_key`` and ``discourse_api_username``. The post is
``post_id`` in the item's metadata and the author the item's uploader id (Discourse's
``user_id``), both kept by the Discourse webhook receiver. Discourse has no idempotency key, but
each call is naturally idempotent: deleting a deleted post answers 404, which counts as done.

An image posted in chat has ``chat_message_id`` and ``chat_channel_id`` instead of a post:
``discourse_delete_chat_message`` deletes the message (``DELETE /chat/api/channels/{channel}/
messages/{message}``, which staff may do to anyone's), and ``discourse_delete_post`` does the same
for such an item, so one mapping of "remove" serves posts and chat alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.plugins import ActionContext, ActionOutcome, Setting
from app.services.source_secrets import credential
from plugins.platform_actions.client import PlatformAction, call, item_id, reason_for

DEFAULT_REASON = "Image removed by the moderation team"
FLAG_TYPES = (("4", "inappropriate"), ("8", "spam"), ("7", "notify moderators"))


class DiscourseAction(PlatformAction):
    """The part every Discourse action shares: where and how to call."""

    name = "discourse_base"  # abstract in practice: not registered
    platform = "Discourse"
    source_kinds = ("discourse",)
    version = "1.0"
    timeout = 20.0

    def headers(self, source: Any) -> dict[str, str]:
        """The API headers of the source's staff user."""
        username = credential(source, "discourse_api_username") or "system"
        return {"Api-Key": self.secret(source, "discourse_api_key"), "Api-Username": username}

    def request(
        self, ctx: ActionContext, source: Any, method: str, path: str, done: str, **body: Any
    ) -> ActionOutcome:
        """One call to ``path`` on the item's forum as the source's staff user."""
        return call(
            self.platform,
            method,
            f"{self.base_url(source)}{path}",
            headers=self.headers(source),
            timeout=ctx.timeout,
            done=done,
            **body,
        )

    def delete_chat_message(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Trash the item's chat message (staff may trash anyone's)."""
        channel = item_id(ctx.item, "chat_channel_id", what="Discourse chat channel")
        message = item_id(ctx.item, "chat_message_id", what="Discourse chat message")
        path = f"/chat/api/channels/{channel}/messages/{message}"
        return self.request(ctx, source, "DELETE", path, f"Deleted chat message {message}.")


class DeletePost(DiscourseAction):
    """Delete the post the image was posted in."""

    name = "discourse_delete_post"
    title = "Discourse: delete the post"
    description = "DELETE /posts/{id}.json on the item's forum (for a chat image: its message)."

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Delete the post once (or the chat message, for a chat image); gone counts as done."""
        metadata = ctx.item.item_metadata or {}
        if metadata.get("chat_message_id") is not None and metadata.get("post_id") is None:
            return self.delete_chat_message(ctx, source)
        post_id = item_id(ctx.item, "post_id", what="Discourse post")
        return self.request(
            ctx, source, "DELETE", f"/posts/{post_id}.json", f"Deleted post {post_id}."
        )


class DeleteChatMessage(DiscourseAction):
    """Delete the chat message the image was posted in."""

    name = "discourse_delete_chat_message"
    title = "Discourse: delete the chat message"
    description = "DELETE /chat/api/channels/{channel_id}/messages/{message_id} on the forum."

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Delete the message once; a message already deleted counts as done."""
        return self.delete_chat_message(ctx, source)


class HidePost(DiscourseAction):
    """Flag the post as staff with ``take_action``, which hides it at once."""

    name = "discourse_hide_post"
    title = "Discourse: hide the post"
    description = "Flags the post as staff (take_action), hiding it and opening a review."
    settings = (
        Setting(
            "flag_type",
            "choice",
            default="4",
            choices=FLAG_TYPES,
            help="The flag's post_action_type_id; check /post_action_types.json on the site.",
        ),
    )

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Flag and hide the post once."""
        post_id = item_id(ctx.item, "post_id", what="Discourse post")
        form = {
            "id": post_id,
            "post_action_type_id": str(ctx.settings.get("flag_type") or "4"),
            "flag_topic": "false",
            "take_action": "true",  # Discourse compares with the string "true"
        }
        done = f"Hid post {post_id}."
        return self.request(ctx, source, "POST", "/post_actions.json", done, data=form)


class _UserAction(DiscourseAction):
    """Silence or suspend the author for ``days``, deleting the post in the same call."""

    verb = ""  # "silence" or "suspend": the path and the until field's name
    until_field = ""
    done_word = ""
    settings = (
        Setting("days", "integer", default=30, min=1, max=36500, help="How long it lasts."),
        Setting("reason", "string", default=DEFAULT_REASON, help="Shown to the user and staff."),
        Setting("delete_post", "boolean", default=True, help="Delete the image's post as well."),
    )

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """One PUT to the user's admin endpoint."""
        user_id = item_id(ctx.item, "user_id", what="Discourse user", uploader=True)
        until = datetime.now(UTC) + timedelta(days=int(ctx.settings.get("days") or 30))
        body: dict[str, Any] = {
            self.until_field: until.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "reason": reason_for(ctx, DEFAULT_REASON)[:300],  # Discourse's limit
        }
        post_id = (ctx.item.item_metadata or {}).get("post_id")
        if post_id is not None and ctx.settings.get("delete_post", True):
            body.update(post_id=post_id, post_action="delete")
        path = f"/admin/users/{user_id}/{self.verb}.json"
        done = f"{self.done_word} user {user_id} until {until:%Y-%m-%d}."
        return self.request(ctx, source, "PUT", path, done, json=body)


class SilenceUser(_UserAction):
    """Silence the image's author: they can read but not post."""

    name = "discourse_silence_user"
    title = "Discourse: silence the author"
    description = "PUT /admin/users/{id}/silence.json."
    verb, until_field, done_word = "silence", "silenced_till", "Silenced"


class SuspendUser(_UserAction):
    """Suspend the image's author: they cannot log in."""

    name = "discourse_suspend_user"
    title = "Discourse: suspend the author"
    description = "PUT /admin/users/{id}/suspend.json."
    verb, until_field, done_word = "suspend", "suspend_until", "Suspended"


ACTIONS = [DeletePost, DeleteChatMessage, HidePost, SilenceUser, SuspendUser]

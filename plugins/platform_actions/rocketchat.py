"""Rocket.Chat actions: delete the message with the image, deactivate its author.

Auth is ``X-User-Id`` + ``X-Auth-Token`` of a bot or admin user (a personal access token), the
source's ``rocketchat_user_id`` and ``rocketchat_auth_token`` credentials, the same the worker
uses to fetch protected files. The message is ``message_id`` + ``room_id`` in the item's metadata
and the author its uploader id, all kept by the Rocket.Chat receiver. Rocket.Chat answers most
refusals with 400 ``{"success": false, "error": …}``; a message it cannot find counts as gone.
"""

from __future__ import annotations

from typing import Any

import requests

from app.plugins import ActionContext, ActionOutcome
from plugins.platform_actions.client import PlatformAction, call, item_id


def _not_found(answer: requests.Response) -> bool:
    # chat.delete on a deleted message: 400 "No message found with the id of …".
    return answer.status_code == 400 and "no message found" in answer.text.lower()


class RocketChatAction(PlatformAction):
    """Calls Rocket.Chat's REST API as the source's bot user."""

    name = "rocketchat_base"  # shared part, not registered
    platform = "Rocket.Chat"
    source_kinds = ("rocketchat",)
    version = "1.0"
    timeout = 20.0

    def post(
        self, ctx: ActionContext, source: Any, method: str, body: dict[str, Any], done: str
    ) -> ActionOutcome:
        """POST ``body`` to ``/api/v1/<method>``."""
        headers = {
            "X-User-Id": self.secret(source, "rocketchat_user_id"),
            "X-Auth-Token": self.secret(source, "rocketchat_auth_token"),
        }
        return call(
            self.platform,
            "POST",
            f"{self.base_url(source)}/api/v1/{method}",
            headers=headers,
            timeout=ctx.timeout,
            done=done,
            gone=_not_found,
            json=body,
        )


class DeleteMessage(RocketChatAction):
    """Delete the message the image was posted in."""

    name = "rocketchat_delete_message"
    title = "Rocket.Chat: delete the message"
    description = "POST /api/v1/chat.delete."

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Delete the message once."""
        message = item_id(ctx.item, "message_id", what="Rocket.Chat message")
        room = item_id(ctx.item, "room_id", what="Rocket.Chat room")
        body = {"roomId": room, "msgId": message, "asUser": False}
        return self.post(ctx, source, "chat.delete", body, f"Deleted message {message}.")


class DeactivateUser(RocketChatAction):
    """Deactivate the image's author: they can no longer log in."""

    name = "rocketchat_deactivate_user"
    title = "Rocket.Chat: deactivate the author"
    description = "POST /api/v1/users.setActiveStatus with activeStatus false."

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Deactivate the user once (deactivating an inactive user changes nothing)."""
        user = item_id(ctx.item, "user_id", what="Rocket.Chat user", uploader=True)
        body = {"userId": user, "activeStatus": False, "confirmRelinquish": True}
        return self.post(ctx, source, "users.setActiveStatus", body, f"Deactivated user {user}.")


ACTIONS = [DeleteMessage, DeactivateUser]

"""Misskey actions: delete the note with the image, suspend its author.

Misskey takes the access token in the JSON body as ``"i"`` (the source's ``misskey_token``
credential, a moderator's token with ``write:admin`` rights for suspending). The note is
``note_id`` in the item's metadata and the author its uploader id, kept by the Misskey receiver.
Misskey answers refusals with 4xx ``{"error": {"code": …}}``; ``NO_SUCH_NOTE`` and
``NO_SUCH_USER`` mean the thing is gone already, which counts as done.
"""

from __future__ import annotations

from typing import Any

import requests

from app.plugins import ActionContext, ActionOutcome
from plugins.platform_actions.client import PlatformAction, call, item_id

GONE_CODES = {"NO_SUCH_NOTE", "NO_SUCH_USER"}


def _gone(answer: requests.Response) -> bool:
    try:
        error = answer.json().get("error") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and error.get("code") in GONE_CODES


class MisskeyAction(PlatformAction):
    """Calls Misskey's API with the token in the body."""

    name = "misskey_base"  # shared part, not registered
    platform = "Misskey"
    source_kinds = ("misskey",)
    version = "1.0"
    timeout = 20.0

    def post(
        self, ctx: ActionContext, source: Any, endpoint: str, body: dict[str, Any], done: str
    ) -> ActionOutcome:
        """POST ``body`` with ``i`` to ``/api/<endpoint>``."""
        return call(
            self.platform,
            "POST",
            f"{self.base_url(source)}/api/{endpoint}",
            timeout=ctx.timeout,
            done=done,
            gone=_gone,
            json={**body, "i": self.secret(source, "misskey_token")},
        )


class DeleteNote(MisskeyAction):
    """Delete the note the image was attached to (moderators may delete anyone's)."""

    name = "misskey_delete_note"
    title = "Misskey: delete the note"
    description = "POST /api/notes/delete."

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Delete the note once."""
        note = item_id(ctx.item, "note_id", what="Misskey note")
        return self.post(ctx, source, "notes/delete", {"noteId": note}, f"Deleted note {note}.")


class SuspendUser(MisskeyAction):
    """Suspend the note's author."""

    name = "misskey_suspend_user"
    title = "Misskey: suspend the author"
    description = "POST /api/admin/suspend-user."

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Suspend the user once (suspending a suspended user changes nothing)."""
        user = item_id(ctx.item, "user_id", what="Misskey user", uploader=True)
        return self.post(
            ctx, source, "admin/suspend-user", {"userId": user}, f"Suspended user {user}."
        )


ACTIONS = [DeleteNote, SuspendUser]

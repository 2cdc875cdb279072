"""Lemmy actions (remove the post, ban the person) and pict-rs purge (delete the image itself).

Lemmy sends no webhooks: its images reach us through pict-rs validation (a ``pictrs`` source) or
through our item API (a ``generic`` source). Either way the ids come from the item's metadata:
``post_id`` (or ``lemmy_post_id``), ``person_id`` (or ``lemmy_person_id``, else the uploader id),
``pictrs_alias`` (or ``alias``) for the file. Lemmy is at the source's ``base_url``; the API
version is the setting ``api_version`` (``v3`` for 0.19, ``v4`` for 1.0). Auth is
``Authorization: Bearer <lemmy_jwt>`` (an admin's or moderator's login token).

pict-rs is called directly at the source's ``pictrs_url`` setting (an internal address, never the
public one) with ``X-Api-Token: <pictrs_api_key>``: ``POST /internal/purge?alias=<alias>``
removes the file and every alias of it, as Lemmy's own purge does.
"""

from __future__ import annotations

from typing import Any

from app.plugins import ActionContext, ActionOutcome, Setting
from plugins.platform_actions.client import PlatformAction, call, item_id, reason_for

DEFAULT_REASON = "Image removed by the moderation team"
KINDS = ("pictrs", "generic")
VERSION = Setting(
    "api_version",
    "choice",
    default="v3",
    choices=("v3", "v4"),
    help="v3 for Lemmy 0.19, v4 for Lemmy 1.0.",
)


class LemmyAction(PlatformAction):
    """Calls Lemmy's API with the source's JWT."""

    name = "lemmy_base"  # shared part, not registered
    platform = "Lemmy"
    source_kinds = KINDS
    version = "1.0"
    timeout = 20.0

    def post(
        self, ctx: ActionContext, source: Any, path: str, body: dict[str, Any], done: str
    ) -> ActionOutcome:
        """POST ``body`` to ``/api/<version>/<path>``."""
        api = "v4" if ctx.settings.get("api_version") == "v4" else "v3"
        return call(
            self.platform,
            "POST",
            f"{self.base_url(source)}/api/{api}/{path}",
            headers={"Authorization": f"Bearer {self.secret(source, 'lemmy_jwt')}"},
            timeout=ctx.timeout,
            done=done,
            json=body,
        )


class RemovePost(LemmyAction):
    """Remove the post (as a moderator): hidden from everyone, kept in the mod log."""

    name = "lemmy_remove_post"
    title = "Lemmy: remove the post"
    description = "POST /api/v3/post/remove (or /api/v4)."
    settings = (VERSION, Setting("reason", "string", default=DEFAULT_REASON))

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Remove the post once."""
        post_id = item_id(ctx.item, "post_id", "lemmy_post_id", what="Lemmy post")
        body = {
            "post_id": int(post_id) if post_id.isdigit() else post_id,
            "removed": True,
            "reason": reason_for(ctx, DEFAULT_REASON),
        }
        return self.post(ctx, source, "post/remove", body, f"Removed post {post_id}.")


class BanUser(LemmyAction):
    """Ban the person from the site, optionally removing everything they posted."""

    name = "lemmy_ban_user"
    title = "Lemmy: ban the author"
    description = "POST /api/v3/user/ban (or /api/v4/admin/ban)."
    settings = (
        VERSION,
        Setting("reason", "string", default=DEFAULT_REASON),
        Setting("remove_data", "boolean", default=False, help="Also remove all their content."),
    )

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Ban the person once (banning a banned person changes nothing)."""
        person = item_id(
            ctx.item, "person_id", "lemmy_person_id", what="Lemmy person", uploader=True
        )
        remove = bool(ctx.settings.get("remove_data"))
        body: dict[str, Any] = {
            "person_id": int(person) if person.isdigit() else person,
            "ban": True,
            "reason": reason_for(ctx, DEFAULT_REASON),
        }
        if ctx.settings.get("api_version") == "v4":
            body["remove_or_restore_data"] = remove
            return self.post(ctx, source, "admin/ban", body, f"Banned person {person}.")
        body["remove_data"] = remove
        return self.post(ctx, source, "user/ban", body, f"Banned person {person}.")


class PictrsPurge(PlatformAction):
    """Purge the image file from pict-rs, with all its aliases and thumbnails."""

    name = "pictrs_purge"
    title = "pict-rs: purge the image"
    description = "POST /internal/purge?alias=… on the source's pict-rs."
    version = "1.0"
    platform = "pict-rs"
    source_kinds = KINDS
    timeout = 20.0

    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Purge once; an alias pict-rs no longer knows counts as done."""
        alias = item_id(ctx.item, "pictrs_alias", "alias", what="pict-rs file")
        return call(
            self.platform,
            "POST",
            f"{self.base_url(source, 'pictrs_url')}/internal/purge",
            headers={"X-Api-Token": self.secret(source, "pictrs_api_key")},
            timeout=ctx.timeout,
            done=f"Purged {alias} from pict-rs.",
            params={"alias": alias},
        )


ACTIONS = [RemovePost, BanUser, PictrsPurge]

"""Actions on the platform an item came from: delete or hide the post, limit or ban its author.

One module per platform (Discourse, Mastodon, Lemmy with pict-rs, Rocket.Chat, Misskey), all on
``client.PlatformAction``: each reads the platform's address and credentials from the item's
source, so one install acts on several forums, and maps the platform's answers the same way (see
``client``). Map decisions to them on the Actions page, e.g. remove + spam → discourse_delete_post.
"""

from __future__ import annotations

from app.plugins import Action, hookimpl
from plugins.platform_actions import discourse, lemmy, mastodon, misskey, rocketchat


@hookimpl
def register_actions() -> list[type[Action]]:
    """Every platform action."""
    return [
        *discourse.ACTIONS,
        *mastodon.ACTIONS,
        *lemmy.ACTIONS,
        *rocketchat.ACTIONS,
        *misskey.ACTIONS,
    ]

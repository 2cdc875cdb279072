"""The platform credentials a worker sends when it fetches a webhook item's image.

Some platforms protect their files: Rocket.Chat by default (``FileUpload_ProtectFiles``),
Discourse with secure uploads or login-required sites. The item row never holds a credential;
it holds only the flag ``fetch_with_source_credentials``, and at fetch time the worker asks
:func:`fetch_headers` for them, read from the source's settings. They go only to the host of the
source's ``base_url`` setting (the fetcher also drops them on a redirect to another host), so
a forged attachment pointing elsewhere never receives them.

Credentials are read with :func:`app.services.source_secrets.credential`: the encrypted value
set in the source page's "Platform credentials" form first, else (sources set up before that form
existed) a plain setting of the same name.

Credentials read: Rocket.Chat ``rocketchat_user_id`` + ``rocketchat_auth_token`` (a bot user's
personal access token), sent as ``X-User-Id``/``X-Auth-Token`` and as the ``rc_uid``/``rc_token``
cookies Rocket.Chat's file route also accepts; Discourse ``discourse_api_key`` +
``discourse_api_username``, sent as ``Api-Key``/``Api-Username``.
"""

from __future__ import annotations

from typing import Any

from app.models.item import Item
from app.services.source_secrets import credential
from app.services.webhooks import CREDENTIALS_FLAG as FLAG
from app.services.webhooks import base_url_of, same_origin


def fetch_headers(item: Item) -> dict[str, str]:
    """The headers to send with the item's image fetch; empty unless the item asks for them."""
    metadata: dict[str, Any] = item.item_metadata or {}
    if metadata.get(FLAG) is not True or not item.image_url:
        return {}
    source = item.source
    if not same_origin(item.image_url, base_url_of(source)):
        return {}
    if source.kind == "rocketchat":
        user_id = _setting(source, "rocketchat_user_id")
        token = _setting(source, "rocketchat_auth_token")
        if user_id and token:
            return {
                "X-User-Id": user_id,
                "X-Auth-Token": token,
                "Cookie": f"rc_uid={user_id}; rc_token={token}",
            }
    if source.kind == "discourse":
        key = _setting(source, "discourse_api_key")
        username = _setting(source, "discourse_api_username") or "system"
        if key:
            return {"Api-Key": key, "Api-Username": username}
    return {}


def _setting(source: Any, name: str) -> str | None:
    # One line only (checked there): a pasted newline would be a header injection.
    return credential(source, name)

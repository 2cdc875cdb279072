"""What every platform action shares: the item's source, its credentials, one HTTP call, its answer.

Credentials and the platform's address come from the item's SOURCE (``base_url`` setting and the
encrypted "Platform credentials"), so one install can act on several forums. The ids acted on
come from what the webhook receivers kept on the item; they are checked before they go into a URL,
because they came from a payload.

How answers are read, the same on every platform:

- 2xx: done.
- 404 (or the platform's own "no such post" answer): the thing is gone already; the run succeeds.
- 401/403: permanent; the credentials were refused, which retrying cannot fix.
- 429, 5xx, no answer: raised, so the run is retried with backoff.
- any other 4xx: permanent, with the platform's message.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import requests

from app.plugins import Action, ActionContext, ActionOutcome
from app.services.jobs import PermanentJobError
from app.services.source_secrets import credential
from app.services.webhooks import base_url_of

SAFE_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
USER_AGENT = "ModtoolsImage-Actions/1.0"


class PlatformAction(Action):
    """An action on the platform the item came from; subclasses write ``act``."""

    platform: ClassVar[str] = ""  # the platform's name, in messages
    source_kinds: ClassVar[tuple[str, ...]] = ()  # source kinds it can act for

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Refuse items from other kinds of source, then ``act``."""
        item = ctx.item
        source = getattr(item, "source", None)
        if source is None or source.kind not in self.source_kinds:
            kind = getattr(source, "kind", "no")
            raise PermanentJobError(
                f"{self.title} acts on {self.platform} items; this one has a {kind} source."
            )
        return self.act(ctx, source)

    @abstractmethod
    def act(self, ctx: ActionContext, source: Any) -> ActionOutcome:
        """Carry the action out once on ``source``'s platform."""

    def base_url(self, source: Any, setting: str = "base_url") -> str:
        """The platform's address from the source's settings, or a permanent error saying so."""
        if setting == "base_url":
            value = base_url_of(source)
        else:
            raw = (source.settings or {}).get(setting)
            value = raw.strip().rstrip("/") if isinstance(raw, str) and raw.strip() else None
        if not value:
            raise PermanentJobError(f"Set the {setting} setting on the source {source.slug} first.")
        return value

    def secret(self, source: Any, name: str) -> str:
        """A credential of the source, or a permanent error saying where to enter it."""
        value = credential(source, name)
        if not value:
            raise PermanentJobError(
                f"The source {source.slug} has no {name}: enter it under Platform credentials "
                "on the source's page."
            )
        return value


def item_id(item: Any, *keys: str, what: str, uploader: bool = False) -> str:
    """The first of the item's metadata ``keys`` (or its uploader id) that looks like an id."""
    metadata: Mapping[str, Any] = item.item_metadata or {}
    candidates = [metadata.get(key) for key in keys]
    if uploader:
        candidates.append(item.uploader_id)
    for value in candidates:
        if value is not None and SAFE_ID.match(str(value)):
            return str(value)
    raise PermanentJobError(
        f"The item does not say which {what} it is "
        f"(no usable {' or '.join(keys) or 'uploader id'})."
    )


def call(
    platform: str,
    method: str,
    url: str,
    *,
    timeout: float,
    done: str,
    headers: Mapping[str, str] | None = None,
    gone: Callable[[requests.Response], bool] | None = None,
    **body: Any,
) -> ActionOutcome:
    """One request to the platform, its answer read as the module docstring says."""
    try:
        answer = requests.request(
            method,
            url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            timeout=timeout,
            allow_redirects=False,  # a redirect would carry the credentials elsewhere
            **body,
        )
    except requests.RequestException as error:
        raise RuntimeError(f"{platform} did not answer: {type(error).__name__}") from None
    status, summary = answer.status_code, answer.text[:300].strip()
    if 200 <= status < 300:
        return ActionOutcome(True, None, done, raw=_json(answer))
    if status == 404 or (gone is not None and gone(answer)):
        return ActionOutcome(
            True, None, f"Already gone on {platform} (HTTP {status}).", raw=_json(answer)
        )
    if status in (401, 403):
        raise PermanentJobError(
            f"{platform} refused (HTTP {status}): the API key was refused — check the source's "
            "settings (Platform credentials) and the account's permissions."
        )
    if status == 429 or status >= 500:
        raise RuntimeError(f"{platform} answered HTTP {status}; will retry. {summary}")
    raise PermanentJobError(f"{platform} refused the request (HTTP {status}): {summary}")


def reason_for(ctx: ActionContext, default: str) -> str:
    """The reason given to the platform: the setting, plus the decision's category."""
    reason = str(ctx.settings.get("reason") or default)
    category = getattr(ctx.decision, "category", None)
    return f"{reason} ({category})" if category else reason


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None

"""A fake Lemmy API (v3 and v4) and pict-rs internal API for the takedown actions (webhooks.md §3c).

Lemmy: ``Authorization: Bearer <jwt>`` (401 ``not_logged_in`` otherwise); JSON bodies to
``/api/v3/post/remove`` (``post_id``, ``removed``, ``reason``), ``/api/v3/user/ban`` (``person_id``,
``ban``, ``remove_data``, ``reason``) and ``/api/v4/admin/ban`` (``remove_or_restore_data``);
an unknown post or person is 404 ``not_found``. pict-rs: ``POST /internal/purge?alias=`` with
``X-Api-Token`` (403 otherwise) answers ``{"msg": "ok", "aliases": [...]}``.
Behaviours for ``upcoming``: ``429``, ``502``. Images (``images``: ``/pictrs/image/<alias>`` →
bytes) are served without a token, as Lemmy's proxy of pict-rs serves them.
"""

from __future__ import annotations

import json

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

JWT = "lemmy.jwt.token-77aa"
PICTRS_KEY = "pictrs-api-key-31bd"


class FakeLemmy(FakeService):
    """A Lemmy instance and its pict-rs, served together for the tests' convenience."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: set[int] = {501}
        self.people: set[int] = {33}
        self.aliases: set[str] = {"f3c1a2.webp"}
        self.removed: list[dict] = []
        self.bans: list[tuple[str, dict]] = []  # (path, body)
        self.purged: list[str] = []
        self.images: dict[str, bytes] = {}

    def answer(self, request: Request) -> Response:
        """Images; pict-rs under ``/internal``, Lemmy under ``/api``."""
        if request.method == "GET" and request.path in self.images:
            return Response(self.images[request.path], 200, content_type="image/png")
        behaviour = self.next_behaviour()
        if behaviour in ("429", "502"):
            return json_response({"error": "rate_limit_error"}, int(behaviour))
        if request.path == "/internal/purge" and request.method == "POST":
            if request.headers.get("X-Api-Token") != PICTRS_KEY:
                return json_response({"msg": "Invalid API token"}, 403)
            alias = request.args.get("alias", "")
            found = [alias] if alias in self.aliases else []
            self.aliases.discard(alias)
            self.purged += found
            return json_response({"msg": "ok", "aliases": found})
        if request.headers.get("Authorization") != f"Bearer {JWT}":
            return json_response({"error": "not_logged_in"}, 401)
        body = json.loads(request.get_data() or b"{}")
        if request.path.endswith("/post/remove"):
            if body.get("post_id") not in self.posts or not body.get("reason"):
                return json_response({"error": "not_found"}, 404)
            self.removed.append(body)
            return json_response({"post_view": {"post": {"id": body["post_id"], "removed": True}}})
        if request.path in ("/api/v3/user/ban", "/api/v4/admin/ban"):
            if body.get("person_id") not in self.people:
                return json_response({"error": "not_found"}, 404)
            self.bans.append((request.path, body))
            return json_response(
                {"person_view": {"person": {"id": body["person_id"]}}, "banned": True}
            )
        return json_response({"error": "not_found"}, 404)

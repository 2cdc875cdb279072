"""A fake Tech Against Terrorism (TCAP) hash list API v2.

As TCAP documents it and threatexchange's client uses it: ``POST /token-auth/tcap/`` with form
fields ``username`` and ``password`` returns ``{"token", "user"}`` (a wrong password gets 400
``{"non_field_errors": [...]}``, Django REST framework style); ``GET /api/hash-list/v2/all``
with ``Authorization: Bearer <token>`` returns ``{"count", "next", "previous", "checkpoint",
"results"}``, oldest first. ``after`` is a checkpoint ``"<updated_on>,<id>"``: entries after it;
``next`` is the full URL of the next page (``limit`` and ``offset``). The client glues ``next``
onto the list URL after a ``?``, so this fake reads ``limit``/``offset`` from anywhere in the
query, as a lenient server would.

Behaviours for ``upcoming``: ``500`` and ``malformed`` (a 200 that is not JSON); the token
request consumes none.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response, malformed_json

USERNAME, PASSWORD = "tcap-test-user", "tcap-test-password-19"
LIST_PATH = "/api/hash-list/v2/all"


class FakeTAT(FakeService):
    """TCAP's token and hash list endpoints over entries the test edits."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__()
        self.page_size = page_size
        self.entries: dict[int, dict[str, Any]] = {}  # id → entry
        self.tokens: set[str] = set()
        self.clock = 1_704_000_000.0

    def publish(
        self,
        digest: str,
        algorithm: str = "PDQ",
        file_type: str = "jpg",
        deleted: bool = False,
        entry_id: int | None = None,
    ) -> int:
        """Add an entry, or change the one with ``entry_id``; returns its id."""
        self.clock += 10.5
        entry_id = entry_id or len(self.entries) + 1000
        self.entries[entry_id] = {
            "hash_digest": digest,
            "algorithm": algorithm,
            "ideology": "far-right",
            "file_type": file_type,
            "deleted": deleted,
            "updated_on": self.clock,
            "created_on": "2025-03-03 23:05:22,587",
            "id": entry_id,
        }
        return entry_id

    def answer(self, request: Request) -> Response:
        """Issue tokens for good credentials; serve the list to holders of one."""
        if request.path == "/token-auth/tcap/" and request.method == "POST":
            if (request.form.get("username"), request.form.get("password")) != (USERNAME, PASSWORD):
                return json_response(
                    {"non_field_errors": ["Unable to log in with provided credentials."]}, 400
                )
            token = secrets.token_urlsafe(16)
            self.tokens.add(token)
            return json_response({"token": token, "user": {"username": USERNAME}})
        if request.path != LIST_PATH or request.method != "GET":
            return json_response({"detail": "Not found."}, 404)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return json_response({"detail": "Authentication credentials were not provided."}, 401)
        behaviour = self.next_behaviour()
        if behaviour == "500":
            return Response("<h1>Server Error (500)</h1>", 500, content_type="text/html")
        if behaviour == "malformed":
            return malformed_json()
        return json_response(self._page(request))

    def _page(self, request: Request) -> dict[str, Any]:
        query = parse_qsl(request.query_string.decode(), keep_blank_values=True)

        def last(name: str, default: str) -> str:
            found = [value for key, value in query if key == name or key.endswith("?" + name)]
            return found[-1] if found and found[-1] not in ("", "None") else default

        after = last("after", "")
        limit, offset = int(last("limit", str(self.page_size))), int(last("offset", "0"))
        position = (float(after.split(",")[0]), int(after.split(",")[1])) if after else None
        ordered = sorted(self.entries.values(), key=lambda e: (e["updated_on"], e["id"]))
        if position:
            ordered = [e for e in ordered if (e["updated_on"], e["id"]) > position]
        page = ordered[offset : offset + min(limit, self.page_size)]
        more = offset + len(page) < len(ordered)
        base = f"{self.url}{LIST_PATH}"
        return {
            "count": len(ordered),
            "next": f"{base}?limit={self.page_size}&offset={offset + len(page)}" if more else None,
            "previous": None,
            "checkpoint": f"{page[-1]['updated_on']},{page[-1]['id']}" if page else after,
            "results": page,
        }

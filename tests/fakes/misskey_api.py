"""A fake Misskey API for the takedown actions (webhooks.md §6d).

The token is the ``i`` field of the JSON body (401 ``AUTHENTICATION_FAILED`` otherwise).
``POST /api/notes/delete`` (``noteId``) and ``POST /api/admin/suspend-user`` (``userId``) answer
204; a note it does not have is 400 ``NO_SUCH_NOTE``. Behaviours for ``upcoming``: ``429``,
``500``. Drive files (``files``: ``/files/<key>`` → bytes) are served without a token.
"""

from __future__ import annotations

import json

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

TOKEN = "misskey-mod-token-0f3a"


def _error(code: str, message: str, status: int) -> Response:
    return json_response({"error": {"message": message, "code": code, "kind": "client"}}, status)


class FakeMisskey(FakeService):
    """An instance with one note by one user; records deletions and suspensions."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: set[str] = {"9note01"}
        self.deleted: list[str] = []
        self.suspended: list[str] = []
        self.files: dict[str, bytes] = {}

    def answer(self, request: Request) -> Response:
        """A drive file; else check the token in the body, then the endpoint."""
        if request.method == "GET" and request.path in self.files:
            return Response(self.files[request.path], 200, content_type="image/png")
        behaviour = self.next_behaviour()
        if behaviour in ("429", "500"):
            return _error("RATE_LIMIT_EXCEEDED", "Rate limit exceeded.", int(behaviour))
        body = json.loads(request.get_data() or b"{}")
        if body.get("i") != TOKEN:
            return _error("AUTHENTICATION_FAILED", "Authentication failed.", 401)
        if request.path == "/api/notes/delete":
            if body.get("noteId") not in self.notes:
                return _error("NO_SUCH_NOTE", "No such note.", 400)
            self.notes.discard(body["noteId"])
            self.deleted.append(body["noteId"])
            return Response(status=204)
        if request.path == "/api/admin/suspend-user":
            self.suspended.append(str(body.get("userId")))
            return Response(status=204)
        return _error("NO_SUCH_ENDPOINT", "No such endpoint.", 404)

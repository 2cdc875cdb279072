"""A fake Rocket.Chat REST API for the takedown actions (webhooks.md §4d).

``X-User-Id`` + ``X-Auth-Token`` are checked (401 ``You must be logged in to do this.``
otherwise). ``POST /api/v1/chat.delete`` (``roomId``, ``msgId``, ``asUser``) answers ``{"_id",
"ts", "message", "success": true}``; a message it does not have is 400 ``No message found with the
id of …`` (our assumption of Rocket.Chat's answer). ``POST /api/v1/users.setActiveStatus``
(``userId``, ``activeStatus``, ``confirmRelinquish``). Behaviours: ``429``, ``500``.
Uploaded files (``files``: ``/file-upload/<id>/<name>`` → bytes) are protected, as with
``FileUpload_ProtectFiles`` on (the default): served only to the same user id and token.
"""

from __future__ import annotations

import json

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

USER_ID = "bot-user-id-12"
AUTH_TOKEN = "rocket-pat-8e21"


class FakeRocketChat(FakeService):
    """A server with one message in one room; records deletions and deactivations."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: set[tuple[str, str]] = {("GENERAL", "msg-abc")}
        self.deleted: list[tuple[str, str]] = []
        self.deactivated: list[str] = []
        self.files: dict[str, bytes] = {}

    def answer(self, request: Request) -> Response:
        """Check the bot's headers, then the method (or the protected file)."""
        if request.method == "GET" and request.path.startswith("/file-upload/"):
            return self.protected_file(request)
        behaviour = self.next_behaviour()
        if behaviour in ("429", "500"):
            return json_response(
                {"success": False, "error": "error-too-many-requests"}, int(behaviour)
            )
        if (
            request.headers.get("X-User-Id") != USER_ID
            or request.headers.get("X-Auth-Token") != AUTH_TOKEN
        ):
            return json_response(
                {"status": "error", "message": "You must be logged in to do this."}, 401
            )
        body = json.loads(request.get_data() or b"{}")
        if request.path == "/api/v1/chat.delete":
            key = (body.get("roomId"), body.get("msgId"))
            if key not in self.messages:
                error = f'No message found with the id of "{body.get("msgId")}".'
                return json_response({"success": False, "error": error}, 400)
            self.messages.discard(key)
            self.deleted.append(key)
            return json_response(
                {"_id": key[1], "ts": 1723456789000, "message": {"_id": key[1]}, "success": True}
            )
        if request.path == "/api/v1/users.setActiveStatus":
            if body.get("activeStatus") is not False or body.get("confirmRelinquish") is not True:
                return json_response({"success": False, "error": "unexpected body"}, 400)
            self.deactivated.append(body["userId"])
            return json_response(
                {"user": {"_id": body["userId"], "active": False}, "success": True}
            )
        return json_response({"success": False, "error": "Not found"}, 404)

    def protected_file(self, request: Request) -> Response:
        """An uploaded file, for the user id and token in the headers (or the rc_ cookies)."""
        user = request.headers.get("X-User-Id") or request.cookies.get("rc_uid")
        token = request.headers.get("X-Auth-Token") or request.cookies.get("rc_token")
        if (user, token) != (USER_ID, AUTH_TOKEN):
            return Response("Forbidden", 403)
        if request.path not in self.files:
            return Response("Not found", 404)
        return Response(self.files[request.path], 200, content_type="image/png")

"""A fake Discourse admin API for the takedown actions (webhooks.md §1d).

Checks ``Api-Key`` + ``Api-Username`` (403 ``invalid_access`` otherwise, as Discourse answers),
then: ``DELETE /posts/{id}.json`` (404 ``not_found`` for a post it does not have),
``POST /post_actions.json`` (form ``id``, ``post_action_type_id``, ``flag_topic``, ``take_action``
as the string ``"true"`` hides the post), ``PUT /admin/users/{id}/suspend.json`` (``suspend_until``
and ``reason`` required) and ``/silence.json`` (``silenced_till`` and ``reason`` required).
The chat plugin's ``DELETE /chat/api/channels/{channel}/messages/{message}`` trashes a message
(``{"success": "OK"}``; 404 ``not_found`` for a message it does not have in that channel).
Uploads under ``/uploads/`` are served without a key (``uploads``: path → bytes), so the worker
can fetch a posted image. Behaviours for ``upcoming``: ``429``, ``500``, ``403``.
"""

from __future__ import annotations

import json
import re

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

API_KEY = "discourse-api-key-5f1e"
NOT_FOUND = {
    "errors": ["The requested URL or resource could not be found."],
    "error_type": "not_found",
}
INVALID = {
    "errors": [
        "You are not permitted to view the requested resource. The API username or key is invalid."
    ],
    "error_type": "invalid_access",
}


class FakeDiscourse(FakeService):
    """A forum with some posts and users; records what moderators did to them."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: set[int] = {40}
        self.users: set[int] = {7}
        self.deleted: list[int] = []
        self.hidden: list[tuple[int, int]] = []  # (post id, flag type)
        self.user_actions: list[tuple[str, int, dict]] = []  # (silence|suspend, user, body)
        self.uploads: dict[str, bytes] = {}
        self.chat_messages: set[tuple[int, int]] = {(2, 801)}  # (channel id, message id)
        self.trashed_chat: list[tuple[int, int]] = []

    def answer(self, request: Request) -> Response:
        """Check the API headers, then the route."""
        if request.method == "GET" and request.path in self.uploads:
            return Response(self.uploads[request.path], 200, content_type="image/png")
        behaviour = self.next_behaviour()
        if behaviour in ("429", "500"):
            return json_response({"errors": ["slow down"]}, int(behaviour))
        if (
            behaviour == "403"
            or request.headers.get("Api-Key") != API_KEY
            or not request.headers.get("Api-Username")
        ):
            return json_response(INVALID, 403)
        path, method = request.path, request.method
        if method == "DELETE" and (match := re.fullmatch(r"/posts/(\d+)\.json", path)):
            post = int(match.group(1))
            if post not in self.posts:
                return json_response(NOT_FOUND, 404)
            self.posts.discard(post)
            self.deleted.append(post)
            return Response("", 200)
        if method == "DELETE" and (
            match := re.fullmatch(r"/chat/api/channels/(\d+)/messages/(\d+)", path)
        ):
            message = (int(match.group(1)), int(match.group(2)))
            if message not in self.chat_messages:
                return json_response(NOT_FOUND, 404)
            self.chat_messages.discard(message)
            self.trashed_chat.append(message)
            return json_response({"success": "OK"})
        if method == "POST" and path == "/post_actions.json":
            post = int(request.form.get("id") or 0)
            if post not in self.posts:
                return json_response(NOT_FOUND, 404)
            if request.form.get("take_action") == "true":
                self.hidden.append((post, int(request.form["post_action_type_id"])))
            return json_response({"id": post, "hidden": True})
        if method == "PUT" and (
            match := re.fullmatch(r"/admin/users/(\d+)/(suspend|silence)\.json", path)
        ):
            user, verb = int(match.group(1)), match.group(2)
            body = json.loads(request.get_data() or b"{}")
            until = "suspend_until" if verb == "suspend" else "silenced_till"
            if not body.get(until) or not body.get("reason"):
                return json_response({"errors": [f"{until} and reason are required"]}, 400)
            if user not in self.users:
                return json_response(NOT_FOUND, 404)
            self.user_actions.append((verb, user, body))
            return json_response({verb if verb == "suspend" else "silence": {until: body[until]}})
        return json_response(NOT_FOUND, 404)

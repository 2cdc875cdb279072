"""A fake Mastodon server: the admin account action (webhooks.md §2d) and status re-fetching.

Media files under ``media`` (path → bytes) are served without a token, as Mastodon's are.
``Authorization: Bearer`` is checked for the API (401 ``The access token is invalid`` otherwise).
``GET /api/v1/statuses/:id`` answers a status from ``statuses``; while its media is processing
(the first ``processing_reads[id]`` reads; ``None`` for ever) each image attachment's ``url`` is
``null``, as ``REST::MediaAttachmentSerializer`` sends it. An unknown status is 404. Form bodies:
``POST /api/v1/reports`` (``account_id``, ``status_ids[]``, ``comment``, ``category``) returns the
report; the same ``Idempotency-Key`` returns the same report again, as Mastodon does.
``POST /api/v1/admin/accounts/:id/action`` takes ``type`` in ``none|sensitive|disable|silence|
suspend`` (422 otherwise) and an optional ``report_id``, answering ``{}``; an unknown account is
404 ``Record not found``. Behaviours for ``upcoming``: ``429``, ``503``.
"""

from __future__ import annotations

import copy
import re

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response

TOKEN = "mastodon-admin-token-9c2d"
TYPES = {"none", "sensitive", "disable", "silence", "suspend"}


class FakeMastodon(FakeService):
    """An instance with one account and its status; records reports and account actions."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts: set[str] = {"108"}
        self.reports: dict[str, dict] = {}  # id -> form
        self.by_key: dict[str, str] = {}  # Idempotency-Key -> report id
        self.actions: list[tuple[str, dict, str | None]] = []  # (account, form, Idempotency-Key)
        self.media: dict[str, bytes] = {}
        self.statuses: dict[str, dict] = {}
        self.processing_reads: dict[str, int | None] = {}  # reads with url null; None: for ever
        self.status_reads: dict[str, int] = {}

    def answer(self, request: Request) -> Response:
        """Media without a token; then check the token, then the route."""
        if request.method == "GET" and request.path in self.media:
            return Response(self.media[request.path], 200, content_type="image/png")
        behaviour = self.next_behaviour()
        if behaviour in ("429", "503"):
            return json_response({"error": "Too many requests"}, int(behaviour))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response({"error": "The access token is invalid"}, 401)
        status = re.fullmatch(r"/api/v1/statuses/(\d+)", request.path)
        if request.method == "GET" and status:
            return self.read_status(status.group(1))
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and request.path == "/api/v1/reports":
            if key in self.by_key:
                return json_response({"id": self.by_key[key]})
            if request.form.get("account_id") not in self.accounts:
                return json_response({"error": "Record not found"}, 404)
            report_id = str(len(self.reports) + 1)
            self.reports[report_id] = request.form.to_dict(flat=False)
            if key:
                self.by_key[key] = report_id
            return json_response(
                {"id": report_id, "action_taken": False, "category": request.form.get("category")}
            )
        match = re.fullmatch(r"/api/v1/admin/accounts/(\w+)/action", request.path)
        if request.method == "POST" and match:
            if match.group(1) not in self.accounts:
                return json_response({"error": "Record not found"}, 404)
            if request.form.get("type") not in TYPES:
                return json_response(
                    {"error": "Validation failed: Type is not included in the list"}, 422
                )
            report = request.form.get("report_id")
            if report and report not in self.reports:
                return json_response({"error": "Record not found"}, 404)
            self.actions.append((match.group(1), request.form.to_dict(), key))
            return json_response({})
        return json_response({"error": "Record not found"}, 404)

    def read_status(self, status_id: str) -> Response:
        """The status, its image URLs null while Mastodon still processes them."""
        if status_id not in self.statuses:
            return json_response({"error": "Record not found"}, 404)
        with self.lock:
            reads = self.status_reads[status_id] = self.status_reads.get(status_id, 0) + 1
        status = copy.deepcopy(self.statuses[status_id])
        processing = self.processing_reads.get(status_id, 0)
        if processing is None or reads <= processing:
            for media in status.get("media_attachments") or []:
                media["url"] = None
        return json_response(status)

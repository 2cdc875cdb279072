"""A fake Meta ThreatExchange Graph API: ``GET /<version>/<privacy group>/threat_updates/``.

As the Graph API documents it: the app access token ``<app id>|<app secret>`` in the
``access_token`` query parameter (a wrong one gets HTTP 400 with an ``OAuthException``, code
190); ``start_time`` (updates at or after it), ``limit`` and ``fields``; ``{"data": [...],
"paging": {"cursors": {...}, "next": <full URL>}}``. Each update carries ``id``, ``indicator``,
``type`` (``HASH_PDQ``, ``HASH_MD5`` …), ``last_updated``, ``should_delete`` and, unless
deleted, ``descriptors`` with owner, status and tags. Unknown privacy groups get a 400 too.

Behaviours for ``upcoming``: ``500`` and ``malformed`` (a 200 that is not JSON).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response, malformed_json

APP_ID, APP_SECRET = "1234567890123", "te-app-secret-abcdefghijklmnop"
TOKEN = f"{APP_ID}|{APP_SECRET}"
VERSION = "v26.0"
PRIVACY_GROUP = 303


def graph_error(message: str, code: int = 190, kind: str = "OAuthException") -> Response:
    """The Graph API's error body."""
    body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}}
    return json_response(body, 400)


class FakeThreatExchange(FakeService):
    """``threat_updates`` of one privacy group, over indicators the test edits."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__()
        self.page_size = page_size
        self.updates: dict[str, dict[str, Any]] = {}  # indicator id → latest update
        self.clock = 1_700_000_000

    def publish(
        self,
        indicator: str,
        kind: str = "HASH_PDQ",
        tags: tuple[str, ...] = (),
        status: str = "MALICIOUS",
    ) -> str:
        """Share an indicator (or change it); returns its id."""
        self.clock += 10
        digest = hashlib.sha256(f"{kind} {indicator}".encode()).hexdigest()
        indicator_id = str(int(digest[:12], 16))
        self.updates[indicator_id] = {
            "id": indicator_id,
            "indicator": indicator,
            "type": kind,
            "last_updated": self.clock,
            "should_delete": False,
            "descriptors": {
                "data": [
                    {
                        "id": str(int(indicator_id) + 1),
                        "owner": {"id": "494491891138576"},
                        "status": status,
                        "tags": list(tags),
                        "reactions": [],
                    }
                ]
            },
        }
        return indicator_id

    def delete(self, indicator_id: str) -> None:
        """The owner deleted its descriptor: a tombstone update."""
        self.clock += 10
        gone = self.updates[indicator_id]
        self.updates[indicator_id] = {key: gone[key] for key in ("id", "indicator", "type")} | {
            "last_updated": self.clock,
            "should_delete": True,
        }

    def answer(self, request: Request) -> Response:
        """Check the token and path, then answer threat_updates."""
        if request.args.get("access_token") != TOKEN:
            return graph_error("Invalid OAuth access token - Cannot parse access token")
        behaviour = self.next_behaviour()
        if behaviour == "500":
            return json_response(
                {
                    "error": {
                        "message": "An unknown error occurred",
                        "type": "OAuthException",
                        "code": 1,
                    }
                },
                500,
            )
        if behaviour == "malformed":
            return malformed_json()
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != VERSION or parts[2] != "threat_updates":
            return graph_error("Unknown path components", code=2500)
        if parts[1] != str(PRIVACY_GROUP):
            return graph_error("Unsupported get request.", code=100, kind="GraphMethodException")
        if "fields" not in request.args:
            return graph_error("fields is required", code=100, kind="GraphMethodException")
        return json_response(self._page(request))

    def _page(self, request: Request) -> dict[str, Any]:
        start = int(request.args.get("start_time") or 0)
        offset = int(request.args.get("after") or 0)
        size = min(int(request.args.get("limit") or 100), self.page_size)
        matching = sorted(
            (u for u in self.updates.values() if u["last_updated"] >= start),
            key=lambda u: (u["last_updated"], u["id"]),
        )
        page = matching[offset : offset + size]
        body: dict[str, Any] = {
            "data": page,
            "paging": {"cursors": {"before": str(offset), "after": str(offset + size)}},
        }
        if offset + size < len(matching):
            query = {key: value for key, value in request.args.items() if key != "after"}
            query["after"] = str(offset + size)
            body["paging"]["next"] = f"{self.url}{request.path}?{urlencode(query)}"
        return body

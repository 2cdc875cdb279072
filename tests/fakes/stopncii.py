"""A fake StopNCII.org hash API: ``GET /v1/FetchHashes`` (vendor-apis.md §7 & 8).

It checks what threatexchange's client sends: the ``x-functions-key`` of the FetchHashes
endpoint and the ``Ocp-Apim-Subscription-Key`` header, and the ``startTimestamp``, ``pageSize``
and ``nextPageToken`` parameters. Records come back oldest first, at most ``page_size`` per page,
with ``nextSetTimestamp`` (the time to resume from), ``nextPageToken`` and ``hasMoreRecords``;
records modified at or after ``startTimestamp`` are returned. Wrong keys get the API gateway's
401 ``{"statusCode", "message"}``.

Behaviours for ``upcoming``: ``500`` (every retry of that page fails too: the behaviour sticks
until ``upcoming`` is changed) and ``malformed`` (a 200 that is not JSON).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response, malformed_json

FETCH_KEY = "stopncii-fetch-key-8f2d"
SUBSCRIPTION_KEY = "stopncii-subscription-31ac"


def hash_record(
    value: str,
    timestamp: int,
    signal_type: str = "ImagePDQ",
    status: str = "Active",
    feedback: str | None = None,
) -> dict[str, Any]:
    """One ``hashRecords`` entry as the API documents it."""
    return {
        "lastModtimestamp": timestamp,
        "signalType": signal_type,
        "hashValue": value,
        "hashStatus": status,
        "caseNumbers": {"case-1": status},
        "CSPFeedbacks": [{"feedbackValue": feedback, "tags": [], "source": "Example CSP"}]
        if feedback
        else [],
        "tags": [],
        "source": "StopNCII",
    }


class FakeStopNCII(FakeService):
    """StopNCII's FetchHashes with a list of hash records the test edits."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__()
        self.page_size = page_size
        self.records: dict[tuple[str, str], dict[str, Any]] = {}  # (signalType, hash) → record
        self.clock = 1_700_000_000
        self.sticky: str | None = None  # a failure that lasts until reset

    def publish(self, value: str, signal_type: str = "ImagePDQ", **fields: Any) -> None:
        """Add or change a record, as a later modification than everything before."""
        self.clock += 10
        self.records[signal_type, value] = hash_record(value, self.clock, signal_type, **fields)

    def withdraw(self, value: str, signal_type: str = "ImagePDQ") -> None:
        """The person withdrew their case: the record stays, with status Withdrawn."""
        self.publish(value, signal_type, status="Withdrawn")

    def answer(self, request: Request) -> Response:
        """Check both keys, then answer FetchHashes."""
        if request.path != "/v1/FetchHashes" or request.method != "GET":
            return json_response({"statusCode": 404, "message": "Resource not found"}, 404)
        keys = (
            request.headers.get("x-functions-key"),
            request.headers.get("Ocp-Apim-Subscription-Key"),
        )
        if keys != (FETCH_KEY, SUBSCRIPTION_KEY):
            return json_response(
                {
                    "statusCode": 401,
                    "message": "Access denied due to invalid subscription key. "
                    "Make sure to provide a valid key for an active subscription.",
                },
                401,
            )
        behaviour = self.next_behaviour() or self.sticky
        if behaviour == "500":
            self.sticky = "500"
            return Response("Internal Server Error", status=500)
        if behaviour == "malformed":
            return malformed_json()
        return json_response(self._page(request.args))

    def _page(self, args: Any) -> dict[str, Any]:
        start = int(args["startTimestamp"])
        size = min(int(args.get("pageSize", 800)), self.page_size)
        token = args.get("nextPageToken")
        offset = json.loads(base64.b64decode(token))["offset"] if token else 0
        matching = sorted(
            (r for r in self.records.values() if r["lastModtimestamp"] >= start),
            key=lambda r: (r["lastModtimestamp"], r["hashValue"]),
        )
        page = matching[offset : offset + size]
        more = offset + size < len(matching)
        next_token = base64.b64encode(json.dumps({"offset": offset + size}).encode()).decode()
        return {
            "count": len(page),
            "nextPageToken": next_token if more else None,
            "nextSetTimestamp": page[-1]["lastModtimestamp"] + 1 if page else start,
            "hasMoreRecords": more,
            "hashRecords": page,
        }

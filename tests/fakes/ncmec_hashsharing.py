"""A fake NCMEC hash sharing API v2 (not the CyberTipline; vendor-apis.md §7 & 8).

HTTP Basic authentication; XML in the ``https://hashsharing.ncmec.org/hashsharing/v2``
namespace, shaped as NCMEC's documentation examples (threatexchange's test data):
``GET /v2/status`` says who you are, ``GET /v2/entries?from=…&to=…`` lists the entries (images
and videos, deletions as ``deletedImage``/``deletedVideo``) whose timestamp falls in
``[from, to)``, ``page_size`` at a time; ``paging/next`` is the path of the next page, with
``start``, ``size`` and ``max`` as NCMEC sends them. ``maxTimestamp`` is the newest timestamp in
the range. Times are UTC, ``yyyy-MM-ddTHH:mm:ssZ`` (with or without milliseconds).

Behaviours for ``upcoming``: ``500`` and ``malformed`` (a 200 that is not XML).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService

USER, PASSWORD = "ncmec-test-user", "ncmec-test-password-77"
NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"


@dataclass
class Entry:
    """One entry: an image or video uploaded by a member, or its deletion."""

    id: str
    timestamp: int
    fingerprints: dict[str, str] = field(default_factory=dict)  # md5, sha1, pdna, pdq
    member_id: int = 42
    kind: str = "image"  # or "video"
    deleted: bool = False
    classification: str = "A1"

    def xml(self) -> str:
        """The entry's element."""
        tag = ("deleted" + self.kind.capitalize()) if self.deleted else self.kind
        prints = "".join(f"<{name}>{value}</{name}>" for name, value in self.fingerprints.items())
        body = (
            ""
            if self.deleted
            else (
                f"<classification>{self.classification}</classification>"
                f"<fingerprints>{prints}</fingerprints>"
            )
        )
        return (
            f'<{tag}><member id="{self.member_id}">Member {self.member_id}</member>'
            f"<timestamp>{stamp(self.timestamp)}</timestamp><id>{escape(self.id)}</id>"
            f"{body}</{tag}>"
        )


def stamp(timestamp: int) -> str:
    """NCMEC's time format."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    """A timestamp from NCMEC's time format, with or without milliseconds."""
    for pattern in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return int(datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    raise ValueError(text)


class FakeNCMEC(FakeService):
    """NCMEC's status and entries endpoints over a list of entries the test edits."""

    def __init__(self, page_size: int = 100) -> None:
        super().__init__()
        self.page_size = page_size
        self.entries: list[Entry] = []
        self.windows: list[tuple[int, int]] = []  # (from, to) of each entries request

    def publish(self, entry: Entry) -> None:
        """Add an entry (a later version of an id replaces the earlier one)."""
        self.entries = [e for e in self.entries if e.id != entry.id] + [entry]

    def answer(self, request: Request) -> Response:
        """Check Basic authentication, then answer status and entries requests."""
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response("Unauthorized", 401, {"WWW-Authenticate": 'Basic realm="hashsharing"'})
        behaviour = self.next_behaviour()
        if behaviour == "500":
            return Response("<html>Internal Server Error</html>", 500, content_type="text/html")
        if behaviour == "malformed":
            return Response("<queryResult><images>", 200, content_type="application/xml")
        if request.path == "/v2/status":
            return self._xml(
                f'<status xmlns="{NAMESPACE}"><ipAddress>127.0.0.1</ipAddress>'
                f'<username>{USER}</username><member id="1">Test ESP</member></status>'
            )
        if request.path == "/v2/entries":
            return self._entries(request)
        return Response("Not Found", 404)

    def _entries(self, request: Request) -> Response:
        start, end = parse_time(request.args["from"]), parse_time(request.args["to"])
        self.windows.append((start, end))
        in_range = sorted(
            (e for e in self.entries if start <= e.timestamp < end), key=lambda e: e.id
        )
        offset = int(request.args.get("start", 0))
        page = in_range[offset : offset + self.page_size]
        groups = []
        for kind in ("image", "video"):
            chosen = [e for e in page if e.kind == kind]
            if chosen:
                newest = max(e.timestamp for e in in_range if e.kind == kind)
                groups.append(
                    f'<{kind}s count="{len(chosen)}" maxTimestamp="{stamp(newest)}">'
                    + "".join(e.xml() for e in chosen)
                    + f"</{kind}s>"
                )
        paging = ""
        if offset + self.page_size < len(in_range):
            query = urlencode(
                {
                    "from": request.args["from"],
                    "to": request.args["to"],
                    "start": offset + self.page_size,
                    "size": self.page_size,
                    "max": len(in_range),
                }
            )
            paging = f"<paging><next>{escape('/v2/entries?' + query)}</next></paging>"
        return self._xml(
            f'<queryResult xmlns="{NAMESPACE}">{"".join(groups)}{paging}</queryResult>'
        )

    @staticmethod
    def _xml(body: str) -> Response:
        document = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body
        return Response(document, 200, content_type="application/xml")

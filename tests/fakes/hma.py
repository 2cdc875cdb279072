"""A fake HMA 1.x matcher and hasher (``shared/reference/hma.md`` §2), optionally behind a proxy.

It answers ``GET /m/lookup`` (``signal_type`` and a 64-hex ``signal`` required; distances as
strings; ``banks=A,B`` limits the banks; ``{}`` when nothing matched), ``POST /m/lookup`` (one
multipart file in the field ``photo``; hashed with threatexchange's PDQ hasher, as HMA does;
``{"pdq": ""}`` when its quality is below 50; 403 without the hasher role), ``GET
/m/index/status`` and ``GET /status``. Errors are ``{"message": …}``; a 503 until the index is
loaded. With ``proxy_header`` set, a reverse proxy in front answers 401 without that header.

Behaviours for ``upcoming``: ``timeout``, ``429``, ``500``, ``503``, ``malformed``.
"""

from __future__ import annotations

import re
from typing import Any

from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes
from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService, json_response, malformed_json

PDQ = re.compile(r"[0-9a-f]{64}")
THRESHOLD = 31
QUALITY_THRESHOLD = 50


class FakeHMA(FakeService):
    """HMA's matcher over banks of PDQ hashes: ``banks[name] = [(content_id, pdq), …]``."""

    def __init__(self, proxy_header: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.banks: dict[str, list[tuple[int, str]]] = {}
        self.proxy_header = proxy_header
        self.hasher = True  # ROLE_HASHER: POST /m/lookup works
        self.index_loaded = True
        self.uploads: list[bytes] = []  # the files POST /m/lookup received

    def add(self, bank: str, pdq: str) -> int:
        """Put ``pdq`` into ``bank``; returns its bank content id."""
        content_id = sum(len(entries) for entries in self.banks.values()) + 1
        self.banks.setdefault(bank, []).append((content_id, pdq))
        return content_id

    def answer(self, request: Request) -> Response:
        """The proxy's check, scripted behaviours, then HMA's routes."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        if self.proxy_header:
            name, value = self.proxy_header
            if request.headers.get(name) != value:
                page = "<html><h1>401 Authorization Required</h1></html>"
                return Response(page, 401, content_type="text/html")
        if behaviour in ("429", "500", "503"):
            return json_response({"message": "try again later"}, int(behaviour))
        if behaviour == "malformed":
            return malformed_json()
        route = (request.method, request.path)
        if route == ("GET", "/status"):
            if self.index_loaded:
                return Response("I-AM-ALIVE")
            return Response("INDEX-NOT-LOADED", 503)
        if route == ("GET", "/m/index/status"):
            size = sum(len(entries) for entries in self.banks.values())
            present = self.index_loaded and size > 0
            pdq = {"built_to": 1795564841 if present else -1, "present": present, "size": size}
            video = {"built_to": -1, "present": False, "size": 0}
            return json_response({"pdq": pdq, "video_md5": video})
        if route == ("GET", "/m/lookup"):
            return self.lookup_hash(request)
        if route == ("POST", "/m/lookup"):
            return self.lookup_image(request)
        return json_response({"message": "404 Not Found: The requested URL was not found"}, 404)

    def lookup_hash(self, request: Request) -> Response:
        """``GET /m/lookup?signal_type=pdq&signal=<hash>[&banks=A,B]``."""
        for name in ("signal", "signal_type"):
            if not request.args.get(name):
                return self.error(400, f"{name} is required")
        kind, signal = request.args["signal_type"], request.args["signal"]
        if kind not in ("pdq", "video_md5"):
            return self.error(400, f"No such SignalType '{kind}'")
        if kind == "pdq" and not PDQ.fullmatch(signal):
            return self.error(400, "invalid signal: invalid PDQ hash")
        if not self.index_loaded:
            return self.error(503, "index not yet ready")
        return json_response(self.matches(signal, request.args.get("banks")))

    def lookup_image(self, request: Request) -> Response:
        """``POST /m/lookup`` with one file, the form field named after its content type."""
        if not self.hasher:
            return self.error(403, "This instance does not hash: ROLE_HASHER is off")
        if len(request.files) != 1 or request.form:
            return self.error(400, "Upload exactly one file, as photo=@file or video=@file")
        field, upload = next(iter(request.files.items()))
        if field != "photo":
            return self.error(400, f"Unsupported content type '{field}'")
        self.uploads.append(upload.read())
        try:
            pdq, quality = pdq_from_bytes(self.uploads[-1])
        except Exception:
            return self.error(400, "Could not hash the uploaded photo")
        if quality < QUALITY_THRESHOLD:
            return json_response({"pdq": ""})
        return json_response({"pdq": self.matches(pdq, request.args.get("banks"))})

    def matches(self, pdq: str, banks: str | None) -> dict[str, list[dict[str, Any]]]:
        """Banks with content within distance 31 of ``pdq``, distances as strings."""
        wanted = set(banks.split(",")) if banks else None
        found: dict[str, list[dict[str, Any]]] = {}
        for bank, entries in self.banks.items():
            if wanted is not None and bank not in wanted:
                continue
            for content_id, known in entries:
                distance = bin(int(pdq, 16) ^ int(known, 16)).count("1")
                if distance <= THRESHOLD:
                    match = {"bank_content_id": content_id, "distance": str(distance)}
                    found.setdefault(bank, []).append(match)
        return found

    def error(self, status: int, message: str) -> Response:
        """HMA's error shape."""
        return json_response({"message": message}, status)

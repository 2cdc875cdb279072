"""The EU DSA Transparency Database API: file one statement or a batch of up to 100.

Bearer token auth, JSON both ways. Anything but ``201 Created`` means "not stored": the answer
comes back as a ``DsaAnswer`` with the field errors of a 422 and, for a duplicate PUID, the
statement the database already holds (``existing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

DEFAULT_BASE_URL = "https://transparency.dsa.ec.europa.eu"
DUPLICATE = "The identifier given is not unique within this platform."


@dataclass
class DsaAnswer:
    """One answer: HTTP status, the body, and what it means."""

    status: int
    body: Any = None
    errors: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def created(self) -> bool:
        """True only for 201: the statement(s) are stored."""
        return self.status == 201

    @property
    def existing(self) -> dict[str, Any] | None:
        """The statement already filed under this PUID (a duplicate), if that is what this is."""
        if isinstance(self.body, dict) and DUPLICATE in str(self.errors.get("puid", "")):
            return self.body.get("existing") or {}
        return None


class TransparencyDatabase:
    """A client for one platform's token."""

    def __init__(self, base_url: str, token: str, timeout: float = 30) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.token = token
        self.timeout = timeout

    def file(self, statement: dict[str, Any]) -> DsaAnswer:
        """``POST /api/v1/statement``."""
        return self._post("/api/v1/statement", statement)

    def file_batch(self, statements: list[dict[str, Any]]) -> DsaAnswer:
        """``POST /api/v1/statements``: all or none are stored."""
        return self._post("/api/v1/statements", {"statements": statements})

    def _post(self, path: str, body: Any) -> DsaAnswer:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            response = requests.post(
                self.base_url + path, json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as error:
            return DsaAnswer(
                0, message=f"The DSA database could not be reached ({type(error).__name__})."
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        answer = DsaAnswer(response.status_code, payload)
        if isinstance(payload, dict):
            answer.errors = payload.get("errors") or {}
            answer.message = str(payload.get("message") or "")
        if not answer.message and not answer.created:
            answer.message = {
                401: "The DSA database refused the API token (HTTP 401).",
                429: "The DSA database's rate limit was hit; try again shortly.",
            }.get(response.status_code, f"The DSA database answered HTTP {response.status_code}.")
        return answer

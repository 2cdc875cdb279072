"""The CyberTipline reporting API ("ispws") over HTTP: submit, upload, fileinfo, finish, retract.

Every call uses HTTP Basic auth with the environment's own credentials. XML goes as
``text/xml; charset=utf-8``, ids and files as ``multipart/form-data``. Each call returns an
``Answer`` (response code, description, ids, NCMEC's ``Request-ID``) or raises ``NcmecError``
carrying that answer, so the caller can log every response code, success or not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from lxml import etree

BASE_URLS = {
    "test": "https://exttest.cybertip.org/ispws",
    "production": "https://report.cybertip.org/ispws",
}
XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
CODES = {
    0: "Success",
    1000: "Server error",
    1100: "Save failed",
    1110: "Upload failed",
    1111: "File upload failed",
    1210: "Resource not found",
    1300: "Update failed",
    2000: "Authentication required",
    3000: "User is not authorized to perform this action",
    3100: "User does not have authorization to make submissions",
    3300: "User does not have authorization to make updates",
    4000: "Invalid request",
    4100: "Validation failed",
    4110: "Malformed XML submittal",
    4200: "Malformed file submittal",
    5001: "Report does not exist",
    5002: "File does not exist",
    5101: "Report already retracted",
    5102: "Report already finished",
}


@dataclass
class Answer:
    """One answer of NCMEC: HTTP status, response code and what came with it."""

    http_status: int
    code: int | None
    description: str = ""
    report_id: str | None = None
    file_id: str | None = None
    hash: str | None = None
    files: list[str] = field(default_factory=list)
    request_id: str | None = None

    def record(self) -> dict[str, Any]:
        """The answer as a JSON-able dict for the report's response log."""
        return {k: v for k, v in asdict(self).items() if v not in (None, [], "")}


class NcmecError(Exception):
    """A call that did not succeed; ``answer`` is what came back (None: nothing did)."""

    def __init__(self, message: str, answer: Answer | None = None) -> None:
        super().__init__(message)
        self.answer = answer


class CyberTipline:
    """A client for one environment (test or production) with one set of credentials."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = (username, password)
        self.timeout = timeout

    def submit(self, report_xml: bytes) -> Answer:
        """Open a report; the answer carries its new ``report_id``."""
        return self._call("submit", data=report_xml, headers=XML_HEADERS)

    def upload(self, report_id: str, filename: str, data: bytes, mime: str) -> Answer:
        """Add one file to an open report; the answer carries ``file_id`` and NCMEC's MD5."""
        files = {"file": (filename, data, mime or "application/octet-stream")}
        return self._call("upload", data={"id": report_id}, files=files)

    def fileinfo(self, details_xml: bytes) -> Answer:
        """Describe one uploaded file."""
        return self._call("fileinfo", data=details_xml, headers=XML_HEADERS)

    def finish(self, report_id: str) -> Answer:
        """File the report: it becomes immutable and can no longer be retracted."""
        return self._call("finish", files={"id": (None, report_id)})

    def retract(self, report_id: str) -> Answer:
        """Cancel an open (unfinished) report."""
        return self._call("retract", files={"id": (None, report_id)})

    def status(self) -> Answer:
        """Check the credentials (``GET /status``)."""
        return self._call("status", method="GET")

    def _call(self, step: str, method: str = "POST", **kwargs: Any) -> Answer:
        try:
            response = requests.request(
                method, f"{self.base_url}/{step}", auth=self.auth, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as error:
            raise NcmecError(f"NCMEC could not be reached ({type(error).__name__}).") from None
        answer = parse_answer(response)
        if response.status_code == 401:
            raise NcmecError("NCMEC refused the username or password (HTTP 401).", answer)
        if answer.code != 0:
            meaning = answer.description or CODES.get(answer.code or -1, "no response code")
            raise NcmecError(f"NCMEC answered {step} with code {answer.code}: {meaning}", answer)
        return answer


def parse_answer(response: requests.Response) -> Answer:
    """Read a ``reportResponse`` or ``reportDoneResponse`` (or note that there was none)."""
    answer = Answer(response.status_code, None, request_id=response.headers.get("Request-ID"))
    try:
        root = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        answer.description = f"HTTP {response.status_code} without a readable answer"
        return answer
    code = root.findtext("responseCode")
    answer.code = int(code) if code and code.strip().lstrip("-").isdigit() else None
    answer.description = root.findtext("responseDescription") or CODES.get(answer.code or -1, "")
    answer.report_id = root.findtext("reportId")
    answer.file_id = root.findtext("fileId")
    answer.hash = root.findtext("hash")
    answer.files = [f.text or "" for f in root.findall("files/fileId")]
    return answer

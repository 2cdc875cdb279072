"""A fake CyberTipline reporting API (vendor-apis.md §4 and §9.4), on loopback.

Basic auth (401 with an empty body on bad credentials); every ``/submit`` and ``/fileinfo``
document is validated against the vendored XSD (4100 with HTTP 400 when it fails, 4110 when it
is not XML); reports go open → (upload/fileinfo)* → finished | retracted with 5001/5002/5101/5102;
uploads answer a 32-hex file id and the MD5 of what arrived; every answer has a ``Request-ID``.

Behaviours for ``upcoming`` (one per request): ``"1000"`` (server error), ``"1111"`` (file upload
failed), ``"3100"`` (no submission rights), ``"crash"`` (drop the connection's answer: HTTP 500
without a body), or None to behave as documented.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from itertools import count

from lxml import etree
from werkzeug.wrappers import Request, Response

from plugins.ncmec.xml import schema
from tests.fakes import FakeService

USERNAME, PASSWORD = "usr123", "pswd123"


@dataclass
class OpenReport:
    """A report as NCMEC holds it."""

    xml: bytes
    state: str = "open"  # open | finished | retracted
    files: dict[str, bytes] = field(default_factory=dict)
    details: dict[str, bytes] = field(default_factory=dict)


class FakeNcmec(FakeService):
    """The seven ispws endpoints, with a state machine per report."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: dict[str, OpenReport] = {}
        self.ids = count(4564654)

    def answer(self, request: Request) -> Response:
        """Authenticate, then route."""
        behaviour = self.next_behaviour()
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (USERNAME, PASSWORD):
            return Response("", 401)
        if behaviour == "crash":
            return Response("", 500)
        if behaviour and behaviour.isdigit():
            return self.respond(int(behaviour), "Scripted failure", status=500)
        routes = {
            "/ispws/status": self.status,
            "/ispws/submit": self.submit,
            "/ispws/upload": self.upload,
            "/ispws/fileinfo": self.fileinfo,
            "/ispws/finish": self.finish,
            "/ispws/retract": self.retract,
        }
        route = routes.get(request.path)
        if route is None:
            return self.respond(1210, "Resource not found", status=404)
        return route(request)

    def respond(self, code: int, text: str, status: int = 200, **extra: str) -> Response:
        """A ``reportResponse`` with the documented fields in order."""
        root = etree.Element("reportResponse")
        etree.SubElement(root, "responseCode").text = str(code)
        etree.SubElement(root, "responseDescription").text = text
        for tag in ("reportId", "fileId", "hash"):
            if tag in extra:
                etree.SubElement(root, tag).text = extra[tag]
        body = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
        return Response(
            body, status, content_type="text/xml", headers={"Request-ID": secrets.token_hex(8)}
        )

    def status(self, request: Request) -> Response:
        return self.respond(0, f"Remote User : {USERNAME}, Remote Ip : {request.remote_addr}")

    def _invalid(self, body: bytes) -> Response | None:
        try:
            tree = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return self.respond(4110, "Malformed XML submittal", status=400)
        if not schema().validate(tree):
            return self.respond(4100, f"Validation failed: {schema().error_log.last_error}", 400)
        if tree.tag == "report" and tree.find("reporter/reportingPerson/email") is None:
            return self.respond(4100, "Validation failed: reportingPerson email required", 400)
        return None

    def _open(self, report_id: str | None) -> tuple[OpenReport | None, Response | None]:
        report = self.reports.get(report_id or "")
        if report is None:
            return None, self.respond(5001, "Report does not exist", status=400)
        if report.state == "retracted":
            return None, self.respond(5101, "Report already retracted", 400, reportId=report_id)
        if report.state == "finished":
            return None, self.respond(5102, "Report already finished", 400, reportId=report_id)
        return report, None

    def submit(self, request: Request) -> Response:
        body = request.get_data()
        if request.mimetype != "text/xml":
            return self.respond(4000, "Invalid request", status=400)
        problem = self._invalid(body)
        if problem:
            return problem
        report_id = str(next(self.ids))
        self.reports[report_id] = OpenReport(body)
        return self.respond(0, "Success", reportId=report_id)

    def upload(self, request: Request) -> Response:
        report, problem = self._open(request.form.get("id"))
        upload = request.files.get("file")
        if problem or report is None:
            return problem  # type: ignore[return-value]
        if upload is None:
            return self.respond(4200, "Malformed file submittal", status=400)
        data = upload.read()
        upload.close()  # the multipart parser spooled it to a temporary file
        file_id = secrets.token_hex(16)
        report.files[file_id] = data
        return self.respond(
            0,
            "Success",
            reportId=request.form["id"],
            fileId=file_id,
            hash=hashlib.md5(data).hexdigest(),
        )

    def fileinfo(self, request: Request) -> Response:
        problem = self._invalid(request.get_data())
        if problem:
            return problem
        tree = etree.fromstring(request.get_data())
        report_id, file_id = tree.findtext("reportId"), tree.findtext("fileId")
        report, problem = self._open(report_id)
        if problem or report is None:
            return problem  # type: ignore[return-value]
        if file_id not in report.files:
            return self.respond(5002, "File does not exist", 400, reportId=report_id or "")
        report.details[file_id or ""] = request.get_data()
        return self.respond(0, "Success", reportId=report_id or "")

    def finish(self, request: Request) -> Response:
        report_id = request.form.get("id")
        report, problem = self._open(report_id)
        if problem or report is None:
            return problem  # type: ignore[return-value]
        report.state = "finished"
        root = etree.Element("reportDoneResponse")
        etree.SubElement(root, "responseCode").text = "0"
        etree.SubElement(root, "reportId").text = report_id
        files = etree.SubElement(root, "files")
        for file_id in report.files:
            etree.SubElement(files, "fileId").text = file_id
        return Response(
            etree.tostring(root),
            200,
            content_type="text/xml",
            headers={"Request-ID": secrets.token_hex(8)},
        )

    def retract(self, request: Request) -> Response:
        report_id = request.form.get("id")
        report, problem = self._open(report_id)
        if problem or report is None:
            return problem  # type: ignore[return-value]
        report.state = "retracted"
        return self.respond(0, "Success", reportId=report_id or "")

    def calls(self, path: str) -> int:
        """How many requests reached ``path`` (e.g. ``/ispws/submit``)."""
        return sum(1 for r in self.requests if r.path == path)

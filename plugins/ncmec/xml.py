"""CyberTipline XML: the ``<report>`` and ``<fileDetails>`` documents, checked against the XSD.

Elements are written in the XSD's sequence order (the schema uses ``xs:sequence``, so order is
part of validity). ``validate`` runs the vendored copy of NCMEC's schema (``ncmec-report.xsd``,
as served at ``{base}/xsd``) and the one rule the schema cannot say: the reporting person needs
an email. Nothing is sent to NCMEC that fails here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

XSD_PATH = Path(__file__).with_name("ncmec-report.xsd")
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"


class InvalidReport(Exception):
    """The XML does not validate; ``problems`` lists each complaint in words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@cache
def schema() -> etree.XMLSchema:
    """NCMEC's report schema, parsed once."""
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def validate(document: bytes) -> None:
    """Raise InvalidReport unless ``document`` is valid CyberTipline XML."""
    try:
        tree = etree.fromstring(document)
    except etree.XMLSyntaxError as error:
        raise InvalidReport([f"Malformed XML: {error}"]) from None
    checker = schema()
    if not checker.validate(tree):
        raise InvalidReport([f"line {e.line}: {e.message}" for e in checker.error_log])
    if tree.tag == "report" and tree.find("reporter/reportingPerson/email") is None:
        raise InvalidReport(["The reporting person needs an email address (NCMEC requires it)."])


def _add(parent: etree._Element, tag: str, text: Any = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v})
    if text is not None:
        element.text = str(text).lower() if isinstance(text, bool) else str(text)
    return element


def _maybe(parent: etree._Element, tag: str, text: Any) -> None:
    if text not in (None, "", []):
        _add(parent, tag, text)


def _ip_event(
    parent: etree._Element, ip: str, when: str | None, tag: str = "ipCaptureEvent"
) -> None:
    event = _add(parent, tag)
    _add(event, "ipAddress", ip)
    _add(event, "eventName", "Upload")
    _maybe(event, "dateTime", when)


def build_report(form: dict[str, Any]) -> bytes:
    """The ``<report>`` document for a completed report form (see ``plugins.ncmec.fields``)."""
    root = etree.Element("report", nsmap={"xsi": XSI})
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    summary = _add(root, "incidentSummary")
    _add(summary, "incidentType", form.get("incident_type", ""))
    _maybe(summary, "platform", form.get("platform"))
    _maybe(summary, "escalateToHighPriority", form.get("escalate"))
    _add(summary, "incidentDateTime", form.get("incident_datetime", ""))
    _maybe(summary, "incidentDateTimeDescription", form.get("incident_description"))
    urls = [url for url in form.get("urls", []) if url]
    if urls:
        page = _add(_add(root, "internetDetails"), "webPageIncident")
        for url in urls:
            _add(page, "url", url)
    reporter = _add(root, "reporter")
    person = _add(reporter, "reportingPerson")
    _maybe(person, "firstName", form.get("reporter_first_name"))
    _maybe(person, "lastName", form.get("reporter_last_name"))
    _maybe(person, "phone", form.get("reporter_phone"))
    _maybe(person, "email", form.get("reporter_email"))
    _maybe(reporter, "legalURL", form.get("legal_url"))
    if form.get("user_id") or form.get("user_name") or form.get("user_ip"):
        user = _add(root, "personOrUserReported")
        _maybe(user, "espIdentifier", form.get("user_id"))
        _maybe(user, "espService", form.get("platform"))
        _maybe(user, "displayName", form.get("user_name"))
        if form.get("user_ip"):
            _ip_event(user, form["user_ip"], form.get("user_ip_at") or None)
    _maybe(root, "additionalInfo", form.get("additional_info"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def build_file_details(report_id: str, file_id: str, file: dict[str, Any]) -> bytes:
    """The ``<fileDetails>`` document for one uploaded file (XSD order)."""
    root = etree.Element("fileDetails")
    _add(root, "reportId", report_id)
    _add(root, "fileId", file_id)
    _maybe(root, "originalFileName", file.get("original_name"))
    _maybe(root, "uploadedToEspTimestamp", file.get("uploaded_at"))
    _maybe(root, "locationOfFile", file.get("location"))
    _add(root, "fileViewedByEsp", bool(file.get("viewed")))
    if file.get("publicly_available") is not None:
        _add(root, "publiclyAvailable", bool(file["publicly_available"]))
    _add(root, "fileRelevance", "Reported")
    _maybe(root, "industryClassification", file.get("classification"))
    for hash_type in ("MD5", "SHA256"):
        if file.get(hash_type.lower()):
            _add(root, "originalFileHash", file[hash_type.lower()], hashType=hash_type)
    if file.get("ip"):
        _ip_event(root, file["ip"], file.get("uploaded_at") or None)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

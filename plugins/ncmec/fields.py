"""The CyberTipline report form: each field with the help a lead reads, prefilled from the items.

``FIELDS`` drives the form page and the parser alike, so a field added here appears on the page
with its explanation and is checked on save. ``prefill`` fills what we already know (incident
time, the uploader, their address, the context URLs, file names and hashes) and the reporter's
contact details from the plugin settings; the lead completes and corrects the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models.item import Item

INCIDENT_TYPES = (
    "Child Pornography (possession, manufacture, and distribution)",
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    "Online Enticement of Children for Sexual Acts",
    "Unsolicited Obscene Material Sent to a Child",
)
CLASSIFICATIONS = ("", "A1", "A2", "B1", "B2")


@dataclass(frozen=True)
class Field:
    """One form field: its key in the form JSON, label, help text, input type."""

    name: str
    label: str
    help: str
    type: str = "text"
    required: bool = False
    choices: tuple[str, ...] = ()


FIELDS = (
    Field(
        "incident_type",
        "Incident type",
        "What the report is about, in NCMEC's words. Apparent "
        "child sexual abuse material is the first one.",
        "choice",
        True,
        INCIDENT_TYPES,
    ),
    Field(
        "incident_datetime",
        "When it happened",
        "Date and time with zone (ISO 8601, e.g. "
        "2025-03-01T14:05:00+00:00): when the image was uploaded. Must be in the past.",
        required=True,
    ),
    Field(
        "incident_description",
        "About that time",
        "Optional: what the time above means (e.g. 'upload time as recorded by the forum').",
    ),
    Field("platform", "Platform", "The service the image was on, as NCMEC should name it."),
    Field(
        "urls",
        "Where it appeared",
        "One URL a line: the pages where the image was shown.",
        "textarea",
    ),
    Field("user_id", "Uploader's account id", "The platform's id of the account that uploaded it."),
    Field("user_name", "Uploader's display name", "The name the account showed."),
    Field("user_ip", "Uploader's IP address", "The address the upload came from (IPv4 or IPv6)."),
    Field("user_ip_at", "IP captured at", "When that address was seen (ISO 8601 with zone)."),
    Field(
        "escalate",
        "Escalate to high priority",
        "Only if a child is in imminent danger: say "
        "why. Anything written here marks the report urgent at NCMEC.",
        "textarea",
    ),
    Field(
        "additional_info",
        "Additional information",
        "Anything else NCMEC should know. Do not describe the image beyond what is needed.",
        "textarea",
    ),
    Field(
        "reporter_first_name", "Your first name", "The person NCMEC can contact about this report."
    ),
    Field("reporter_last_name", "Your last name", "As above."),
    Field("reporter_email", "Your email", "Required by NCMEC.", "email", True),
    Field("reporter_phone", "Your phone", "Optional."),
    Field("legal_url", "Legal process URL", "Where law enforcement sends legal process to you."),
)
FILE_FIELDS = (
    Field("original_name", "File name", "The name the uploader gave the file."),
    Field("location", "File URL", "Where the file itself was served."),
    Field(
        "viewed",
        "Viewed by us",
        "Tick if a person here looked at the file (a hash match alone "
        "is not a view). NCMEC treats unviewed files differently.",
        "checkbox",
    ),
    Field("publicly_available", "Publicly available", "Tick if anyone could see it.", "checkbox"),
    Field(
        "classification",
        "Industry classification",
        "Optional: A1, A2, B1 or B2 (the industry categorisation scheme); leave empty if unsure.",
        "choice",
        False,
        CLASSIFICATIONS,
    ),
)


def iso(moment: datetime | None) -> str:
    """A timestamp as the XSD wants it: ISO 8601 with a zone."""
    return moment.isoformat(timespec="seconds") if moment else ""


def prefill(items: list[Item], settings: dict[str, Any]) -> dict[str, Any]:
    """The form as far as the items and the reporter settings tell it."""
    first = items[0]
    earliest = min((i.context_created_at or i.created_at for i in items), default=None)
    return {
        "incident_type": INCIDENT_TYPES[0],
        "incident_datetime": iso(earliest),
        "platform": settings.get("platform") or first.source.name,
        "urls": [i.context_url for i in items if i.context_url],
        "user_id": first.uploader_id or "",
        "user_name": first.uploader_name or "",
        "user_ip": first.uploader_ip or "",
        "user_ip_at": iso(first.context_created_at or first.created_at)
        if first.uploader_ip
        else "",
        "reporter_first_name": settings.get("reporter_first_name") or "",
        "reporter_last_name": settings.get("reporter_last_name") or "",
        "reporter_email": settings.get("reporter_email") or "",
        "reporter_phone": settings.get("reporter_phone") or "",
        "legal_url": settings.get("legal_url") or "",
        "files": {i.id: _file(i) for i in items},
    }


def _file(item: Item) -> dict[str, Any]:
    name = (item.item_metadata or {}).get("filename") or f"{item.external_id}"
    return {
        "original_name": str(name),
        "uploaded_at": iso(item.context_created_at or item.created_at),
        "location": item.image_url or "",
        "viewed": False,
        "publicly_available": None,
        "classification": "",
        "md5": item.md5 or "",
        "sha256": item.sha256 or "",
        "ip": item.uploader_ip or "",
    }


def parse(
    submitted: dict[str, str], current: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form after a lead's edit, and the errors (field name → how to fix it)."""
    form, errors = dict(current), {}
    for spec in FIELDS:
        raw = (submitted.get(spec.name) or "").strip()
        form[spec.name] = (
            [u.strip() for u in raw.splitlines() if u.strip()] if spec.name == "urls" else raw
        )
        if spec.required and not raw:
            errors[spec.name] = f"{spec.label} is required."
        if spec.choices and raw and raw not in spec.choices:
            errors[spec.name] = f"Choose one of the listed values for {spec.label.lower()}."
    for name in ("incident_datetime", "user_ip_at"):
        if form.get(name) and not _past(form[name]):
            errors[name] = "Give a past date and time with a zone, e.g. 2025-03-01T14:05:00+00:00."
    files = {}
    for item_id, file in (current.get("files") or {}).items():
        file = dict(file)
        for spec in FILE_FIELDS:
            raw = (submitted.get(f"file-{item_id}-{spec.name}") or "").strip()
            file[spec.name] = bool(raw) if spec.type == "checkbox" else raw
        files[item_id] = file
    form["files"] = files
    return form, errors


def _past(text: str) -> bool:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    return moment.tzinfo is not None and moment.timestamp() < datetime.now().timestamp()

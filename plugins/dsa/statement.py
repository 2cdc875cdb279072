"""A DSA statement of reasons (Art. 17) for a removal, in the Transparency Database's fields.

The category comes from the decision (``Decision.dsa_category``, set from ``DSA_CATEGORY_MAP`` in
``app.services.policy``); the ground is "illegal content" for the categories the
``illegal_categories`` setting names (CSAM and terrorism by default) and "incompatible with our
terms" otherwise. Automated detection is "Yes" when a scanner matched or flagged the item; the
decision is "fully" automated when a rule removed it, "partially" when a person confirmed what a
scanner found, "not automated" otherwise. No personal data goes in (Art. 24(5)).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.review import Decision
from app.models.scan import ScanResult

KEYWORDS = {
    "csam": "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
    "ncii": "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING",
    "adult_nudity": "KEYWORD_NUDITY",
    "sexual_activity": "KEYWORD_ADULT_SEXUAL_MATERIAL",
    "terrorism": "KEYWORD_TERRORIST_CONTENT",
    "hate": "KEYWORD_HATE_SPEECH",
    "self_harm": "KEYWORD_SELF_MUTILATION",
}


def puid(item: Item) -> str:
    """Our stable, unique id of the decision's content: the same item always gets the same PUID."""
    return f"modtools-{item.id}"


def _split(text: str | None) -> list[str]:
    return [
        part.strip().upper() for part in (text or "").replace(";", ",").split(",") if part.strip()
    ]


def automated_detection(item: Item) -> bool:
    """Whether a scanner matched or flagged the item."""
    verdicts = db.session.scalars(select(ScanResult.verdict).where(ScanResult.item_id == item.id))
    return any(verdict in ("match", "flag") for verdict in verdicts)


def build_statement(item: Item, decision: Decision, settings: dict[str, Any]) -> dict[str, Any]:
    """The statement body for one removal decision."""
    category = decision.category or "other"
    detected = automated_detection(item)
    if decision.user_id is None:
        automated = "AUTOMATED_DECISION_FULLY"
    else:
        automated = (
            "AUTOMATED_DECISION_PARTIALLY" if detected else "AUTOMATED_DECISION_NOT_AUTOMATED"
        )
    facts = (
        settings.get("decision_facts")
        or "An uploaded image was reviewed and removed under our policy on {category}."
    )
    statement: dict[str, Any] = {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "content_type": ["CONTENT_TYPE_IMAGE"],
        "category": decision.dsa_category or "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
        "content_date": (item.context_created_at or item.created_at).date().isoformat(),
        "application_date": decision.created_at.date().isoformat(),
        "decision_facts": facts.format(category=category.replace("_", " "))[:5000],
        "source_type": "SOURCE_VOLUNTARY",
        "automated_detection": "Yes" if detected else "No",
        "automated_decision": automated,
        "puid": puid(item),
    }
    if category.upper() in _split(settings.get("illegal_categories")):
        statement["decision_ground"] = "DECISION_GROUND_ILLEGAL_CONTENT"
        statement["illegal_content_legal_ground"] = (
            settings.get("illegal_legal_ground") or "Illegal content under applicable law"
        )[:500]
        statement["illegal_content_explanation"] = (
            f"The image was found to be illegal content ({category.replace('_', ' ')})."[:2000]
        )
    else:
        statement["decision_ground"] = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
        statement["incompatible_content_ground"] = (
            settings.get("terms_ground") or "Our terms of service"
        )[:500]
        statement["incompatible_content_explanation"] = (
            f"The image breaks our content policy on {category.replace('_', ' ')}."[:2000]
        )
    if settings.get("terms_url"):
        statement["decision_ground_reference_url"] = settings["terms_url"]
    if category in KEYWORDS:
        statement["category_specification"] = [KEYWORDS[category]]
    scope = _split((item.source.settings or {}).get("territorial_scope")) if item.source else []
    scope = scope or _split(settings.get("territorial_scope"))
    if scope:
        statement["territorial_scope"] = scope
    return statement


def is_eu_source(item: Item) -> bool:
    """Whether statements are filed for the item's source (source setting ``dsa_enabled``)."""
    return bool((item.source.settings or {}).get("dsa_enabled")) if item.source else False

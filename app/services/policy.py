"""Policy categories: what a removal or escalation names, and how each is reported to the DSA.

``POLICY_CATEGORIES`` lists the categories moderators choose from; ``DSA_CATEGORY_MAP`` maps each
to the statement category of the EU DSA Transparency Database (schema of 2025-07-01) that a
statement of reasons for it is filed under; ``BANK_FOR_CATEGORY`` names the hash bank "add to
bank" picks for it, and the helpers below put a removed item's hashes in that bank (and take
them out again when the decision is undone). docs/review.md explains the mapping.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.bank import BankEntry
from app.models.item import Item
from app.models.review import Decision
from app.services.audit import Actor

# The policy categories a removal or escalation names (``POLICY_CATEGORIES``), and the category of
# the EU DSA Transparency Database (schema of 2025-07-01) each one is reported under
# (``DSA_CATEGORY_MAP``). docs/review.md explains the choices.
DEFAULT_POLICY_CATEGORIES = (
    "csam",
    "ncii",
    "adult_nudity",
    "sexual_activity",
    "violence_gore",
    "terrorism",
    "hate",
    "self_harm",
    "spam",
    "harassment",
    "other",
)
DEFAULT_DSA_CATEGORY_MAP = {
    "csam": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "ncii": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
    "adult_nudity": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
    "sexual_activity": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
    "violence_gore": "STATEMENT_CATEGORY_VIOLENCE",
    "terrorism": "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
    "hate": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "self_harm": "STATEMENT_CATEGORY_SELF_HARM",
    "spam": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
    "harassment": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
    "other": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
}
CATEGORY_TITLES = {
    "csam": "Child sexual abuse material",
    "ncii": "Non-consensual intimate imagery",
    "adult_nudity": "Adult nudity",
    "sexual_activity": "Sexual activity",
    "violence_gore": "Violence or gore",
    "terrorism": "Terrorism",
    "hate": "Hate",
    "self_harm": "Self-harm",
    "spam": "Spam",
    "harassment": "Harassment",
    "other": "Other",
}


def policy_categories() -> list[str]:
    """The policy categories moderators choose from."""
    return list(current_app.config.get("POLICY_CATEGORIES", DEFAULT_POLICY_CATEGORIES))


def category_title(category: str) -> str:
    """A category's name in words (configured ones without a title show as written)."""
    return CATEGORY_TITLES.get(category, category.replace("_", " ").capitalize())


def dsa_category(category: str | None) -> str | None:
    """The DSA statement-of-reasons category a policy category is reported under."""
    if category is None:
        return None
    mapping = current_app.config.get("DSA_CATEGORY_MAP", DEFAULT_DSA_CATEGORY_MAP)
    return mapping.get(category, "STATEMENT_CATEGORY_OTHER_VIOLATION_TC")


def bank_for_category(category: str | None) -> int | None:
    """The bank "add to bank" suggests for a category (``BANK_FOR_CATEGORY``: name or id)."""
    from app.services import banks

    wanted = current_app.config.get("BANK_FOR_CATEGORY", {}).get(category or "")
    bank = banks.find_bank(wanted) if wanted else None
    return bank.id if bank is not None else None


def bank_exists(bank_id: int) -> bool:
    """Whether a hash bank with this id exists."""
    from app.services import banks

    return banks.find_bank(bank_id) is not None


def add_to_bank(item: Item, decision: Decision, actor: Actor) -> None:
    """Put the item's SHA-256, MD5 and PDQ into the decision's bank (those not there yet); the
    entries name the decision, so an undo can take them back."""
    from app.services import banks

    bank = banks.find_bank(decision.bank_id) if decision.bank_id is not None else None
    if bank is None:
        return
    for signal_type in ("sha256", "md5", "pdq"):
        signal = getattr(item, signal_type)
        if not signal:
            continue
        try:
            banks.add_entry(
                bank,
                signal_type,
                signal,
                actor,
                source_ref=f"decision:{decision.id}",
                note=f"Removed from item {item.id} ({decision.category})",
            )
        except banks.BankError:
            continue  # already in the bank: nothing to add


def remove_from_bank(decision: Decision, actor: Actor) -> None:
    """Take back the entries an undone decision added to its bank."""
    from app.services import banks

    bank = banks.find_bank(decision.bank_id) if decision.bank_id is not None else None
    if bank is None:
        return
    entry_ids = list(
        db.session.scalars(
            select(BankEntry.id).where(
                BankEntry.bank_id == bank.id, BankEntry.source_ref == f"decision:{decision.id}"
            )
        )
    )
    for entry_id in entry_ids:
        banks.remove_entry(bank, entry_id, actor)

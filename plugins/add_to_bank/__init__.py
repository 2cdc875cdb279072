"""The ``add_to_bank`` action: put the item's SHA-256, MD5 and PDQ into a hash bank.

The bank is the run's ``bank`` parameter (name or id), else the setting ``bank``, else the one
``BANK_FOR_CATEGORY`` names for the decision's category, else the decision's own bank. Idempotent
by construction: a hash already in the bank is skipped, so a repeated run adds nothing twice.
"""

from __future__ import annotations

from typing import Any

from app.plugins import Action, ActionContext, ActionOutcome, Setting, hookimpl
from app.services import banks, policy
from app.services.audit import Actor
from app.services.jobs import PermanentJobError


class AddToBankAction(Action):
    """Add the item's hashes to a bank, so the same image is matched next time."""

    name = "add_to_bank"
    title = "Add to hash bank"
    version = "1.0"
    description = "Adds the item's SHA-256, MD5 and PDQ hashes to a hash bank."
    enabled_by_default = True
    timeout = 30.0
    settings = (
        Setting(
            "bank",
            "string",
            default="",
            help="Bank name or id; empty: the bank configured for the decision's category.",
        ),
    )

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Add the hashes not in the bank yet; the reference is the bank's id."""
        item, decision = ctx.item, ctx.decision
        params: dict[str, Any] = getattr(ctx, "params", {}) or {}
        wanted = params.get("bank") or ctx.settings.get("bank")
        if not wanted and decision is not None:
            wanted = policy.bank_for_category(decision.category) or decision.bank_id
        bank = banks.find_bank(wanted) if wanted else None
        if bank is None:
            raise PermanentJobError(
                "No bank to add to: set the action's bank, or BANK_FOR_CATEGORY for this category."
            )
        added = 0
        actor = Actor.system("actions")
        key = getattr(ctx, "idempotency_key", "")
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
                    source_ref=f"action:{key}"[:255],
                    note=f"Added by an action on item {item.id}",
                )
                added += 1
            except banks.BankError:
                continue  # already there: that is the idempotency
        return ActionOutcome(True, str(bank.id), f"{added} hash(es) added to {bank.name}.")


@hookimpl
def register_actions() -> list[type[Action]]:
    """The add-to-bank action."""
    return [AddToBankAction]

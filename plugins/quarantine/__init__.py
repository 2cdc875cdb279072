"""The ``quarantine`` action: take the original out of the served media store, keep it as evidence.

Moderators can no longer reveal a quarantined original (the media route finds nothing to serve);
a lead can, from quarantine only. The item gets an evidence hold of ``hold_days`` (default 365),
which retention respects and an authority report extends.
"""

from __future__ import annotations

from datetime import timedelta

from app.models.types import utcnow
from app.plugins import Action, ActionContext, ActionOutcome, Setting, hookimpl
from app.services import audit, storage
from app.services.audit import Actor
from app.services.jobs import PermanentJobError
from plugins.quarantine.store import hold, move_to_quarantine


class QuarantineAction(Action):
    """Move the original into quarantine and hold the item's evidence."""

    name = "quarantine"
    title = "Quarantine the original"
    version = "1.0"
    description = "Moves the original out of the served media store into the quarantine store."
    enabled_by_default = True
    timeout = 60.0
    settings = (
        Setting(
            "hold_days",
            "integer",
            default=365,
            min=0,
            max=3650,
            help="Days the item's evidence is kept after quarantine (0: no hold).",
        ),
    )

    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Move (or finish moving) the original; a repeat finds it moved and changes nothing."""
        item = ctx.item
        if item is None or not item.sha256:
            raise PermanentJobError("This item has no original to quarantine.")
        run_id = getattr(ctx, "run_id", None)
        try:
            moved = move_to_quarantine(item, run_id)
        except storage.MissingMedia:
            raise PermanentJobError(
                "The original is in neither the media store nor quarantine (purged?)."
            ) from None
        days = int(ctx.settings.get("hold_days", 365) or 0)
        if days:
            hold(item.id, utcnow() + timedelta(days=days), "quarantined")
        if moved:
            audit.record(
                "item.quarantined",
                Actor.system("actions"),
                target_type="item",
                target_id=item.id,
                details={"run_id": run_id, "hold_days": days},
            )
        return ActionOutcome(
            True, item.sha256[:16], "Moved to quarantine." if moved else "Already in quarantine."
        )


@hookimpl
def register_actions() -> list[type[Action]]:
    """The quarantine action."""
    return [QuarantineAction]

"""Which actions a decision starts, per outcome and policy category, with a new install's defaults.

A decision looks for the row of its outcome and category first, then its outcome and ``*``. With no
rows at all, ``DEFAULTS`` apply: removing CSAM quarantines it and tells the platform; any other
removal, and any approval, tells the platform. Escalations start nothing by default.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models.action import ActionConfig
from app.plugins import current_plugins
from app.services import audit
from app.services.audit import Actor

OUTCOMES = ("approve", "remove", "escalate")
ANY = "*"
DEFAULTS: dict[tuple[str, str], list[str]] = {
    ("remove", "csam"): ["quarantine", "webhook"],
    ("remove", ANY): ["webhook"],
    ("approve", ANY): ["webhook"],
}


class ConfigError(Exception):
    """A mapping that cannot be saved; the message says what to fix."""


def mapping() -> dict[tuple[str, str], list[str]]:
    """The saved mapping, or the defaults when nothing was saved yet."""
    rows = db.session.scalars(select(ActionConfig)).all()
    if not rows:
        return {key: list(value) for key, value in DEFAULTS.items()}
    return {(row.outcome, row.category): list(row.actions) for row in rows if row.actions}


def actions_for(outcome: str, category: str | None) -> list[str]:
    """The actions a decision with ``outcome`` and ``category`` starts, in order."""
    table = mapping()
    found = table.get((outcome, category or ANY))
    return found if found is not None else table.get((outcome, ANY), [])


def save(table: dict[tuple[str, str], list[str]], actor: Actor) -> None:
    """Replace the mapping (rows with no actions are dropped); audited; commits."""
    installed = set(current_plugins().actions)
    for (outcome, _category), names in table.items():
        if outcome not in OUTCOMES:
            raise ConfigError(f"“{outcome}” is not a decision; use approve, remove or escalate.")
        unknown = [name for name in names if name not in installed]
        if unknown:
            raise ConfigError(f"No action is installed called {', '.join(unknown)}.")
    for row in db.session.scalars(select(ActionConfig)):
        db.session.delete(row)
    db.session.flush()
    kept = {key: names for key, names in table.items() if names}
    if not kept:  # an empty table would bring the defaults back: keep an explicit "nothing"
        kept = {("approve", ANY): []}
    for (outcome, category), names in kept.items():
        db.session.add(ActionConfig(outcome=outcome, category=category, actions=names))
    audit.record(
        "actions.configured",
        actor,
        target_type="actions",
        details={f"{o}:{c}": names for (o, c), names in kept.items()},
    )
    db.session.commit()

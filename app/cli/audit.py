"""``flask audit verify``: check the audit log's hash chain."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.services import audit


@click.group("audit", help="Inspect the tamper-evident audit log.")
def command() -> None:
    pass


@command.command("verify")
@with_appcontext
def verify() -> None:
    """Recompute every event's hash and link; exit 1 if any was changed or removed."""
    breaks = audit.verify_chain()
    if breaks:
        for found in breaks:
            click.echo(f"BROKEN at event {found.seq}: {found.reason}", err=True)
        raise SystemExit(1)
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models.audit import AuditEvent

    count = db.session.scalar(select(func.count()).select_from(AuditEvent))
    click.echo(f"audit log intact: {count} events verified")

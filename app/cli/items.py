"""``flask items …``: work on items from a shell, such as re-scanning a filtered set.

Re-scanning after a new bank import or a newly switched-on scanner: every matching item gets a
new scan round and is routed again when its scanners finish (``docs/pipeline.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from app.services import rescans
from app.services.audit import Actor


@click.group("items", help="Work on items: re-scan a filtered set.")
def command() -> None:
    pass


@command.command("rescan")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    help="Only items in this state (queued, cleared, …); repeat for several.",
)
@click.option("--source", "source_slug", default=None, help="Only items of this source (slug).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Only items received on or after this UTC date (YYYY-MM-DD).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--dry-run", is_flag=True, help="Count the items; scan nothing.")
@with_appcontext
def rescan(
    statuses: tuple[str, ...],
    source_slug: str | None,
    since: datetime | None,
    limit: int | None,
    dry_run: bool,
) -> None:
    """Scan the matching items again with every switched-on scanner."""
    try:
        summary = rescans.rescan_items(
            Actor.system("cli"),
            statuses=list(statuses),
            source_slug=source_slug,
            since=since.replace(tzinfo=UTC) if since else None,
            limit=limit,
            dry_run=dry_run,
        )
    except rescans.RescanError as error:
        raise click.ClickException(str(error)) from None
    if dry_run:
        click.echo(f"{summary.matched} items match; nothing was scanned (--dry-run).")
        return
    click.echo(f"Re-scanning {summary.started} of {summary.matched} matching items.")
    if summary.skipped:
        click.echo(
            f"Skipped {summary.skipped} whose state does not allow a re-scan "
            "(received, fetch_failed or removed)."
        )

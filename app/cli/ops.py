"""Operator commands: ``purge``, ``backup``, ``restore``, ``transparency``, ``copy-database``.

They are top-level commands (``flask --app wsgi backup /srv/backups/today``), so they are not
one group in ``COMMAND_MODULES``: the ``stats`` blueprint (``cli_group=None``) carries them, and
Flask merges a blueprint's commands into the app's. Each is a thin wrapper around a service.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.services import backup, retention, transparency
from app.services import housekeeping as _housekeeping  # noqa: F401  (the daily prune)
from app.services import metrics as _metrics  # noqa: F401  (registers the queue sampler)


def _instance() -> backup.Instance:
    return backup.Instance.from_config(dict(current_app.config), current_app.instance_path)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@click.command("purge", help="Purge media past its retention time (hashes and decisions stay).")
@click.option("--dry-run", is_flag=True, help="Only list what would be purged.")
@with_appcontext
def purge_command(dry_run: bool) -> None:
    if dry_run:
        plan = retention.plan_purge()
        for item_id, reason in plan.items:
            click.echo(f"{item_id}\t{reason}")
        click.echo(
            f"would purge {_plural(len(plan.items), 'item')}, delete "
            f"{_plural(len(plan.blobs), 'blob')}; {len(plan.held)} held as evidence"
        )
        return
    run, plan = retention.purge()
    click.echo(
        f"purged {_plural(run.items_purged, 'item')}, deleted "
        f"{_plural(run.blobs_deleted, 'blob')}; {run.items_held} held as evidence"
    )


@click.command("backup", help="Copy the database, media and instance keys into DEST (online).")
@click.argument("dest", type=click.Path(path_type=Path))
@with_appcontext
def backup_command(dest: Path) -> None:
    try:
        manifest = backup.backup(_instance(), dest)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"backup written to {dest}: {manifest['database']}, "
        f"{_plural(manifest['files'], 'media file')}"
    )
    if manifest["secrets"]:
        click.echo(
            f"warning: {', '.join(manifest['secrets'])} are secrets; keep {dest} private "
            "and encrypt it before it leaves this machine",
            err=True,
        )


@click.command("restore", help="Restore a backup made by `backup` into this instance.")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an instance that already holds data.")
@with_appcontext
def restore_command(src: Path, force: bool) -> None:
    try:
        manifest = backup.restore(_instance(), src, force=force)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"restored {src} (taken {manifest['started_at']}); run `flask db upgrade` next")


@click.command("transparency", help="Transparency report for a period, as CSV or JSON.")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option(
    "--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day included."
)
@click.option("--format", "form", type=click.Choice(["csv", "json"]), default="json")
@with_appcontext
def transparency_command(start: date, end: date, form: str) -> None:
    report = transparency.build_report(start.date(), end.date())  # type: ignore[attr-defined]
    if form == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        sys.stdout.write(transparency.to_csv(report))


@click.command("copy-database", help="Copy every row of this database into another (empty) one.")
@click.option("--to", "target", required=True, help="e.g. postgresql+psycopg://user@host/db")
@click.option("--force", is_flag=True, help="Copy even if the target already holds rows.")
@with_appcontext
def copy_database_command(target: str, force: bool) -> None:
    from app.services.database_copy import copy_database

    try:
        counts = copy_database(target, force=force)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"copied {_plural(sum(counts.values()), 'row')} in {_plural(len(counts), 'table')}")


COMMANDS = [
    purge_command,
    backup_command,
    restore_command,
    transparency_command,
    copy_database_command,
]


def register(group: click.Group) -> None:
    """Add every operator command to ``group`` (the stats blueprint's ``cli``)."""
    for operator_command in COMMANDS:
        group.add_command(operator_command)

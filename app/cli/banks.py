"""``flask banks …``: create hash banks, import and export their hashes, list them.

Imports print the report (added, already there, errors with line numbers) and exit with status
1 when any line was wrong, so a provisioning script notices; the valid lines are kept.
"""

from __future__ import annotations

import json
import sys
from typing import IO

import click
from flask.cli import with_appcontext

from app.extensions import db
from app.models.bank import Bank
from app.services import bank_export, bank_io, banks
from app.services.audit import Actor
from app.services.banks import BankError

FORMATS = [fmt.value for fmt in bank_io.Format]


@click.group("banks", help="Hash banks: create, import, export, list.")
def command() -> None:
    pass


def _actor() -> Actor:
    return Actor.system("cli")


def _find(name: str) -> Bank:
    bank = banks.find_bank(name)
    if bank is None:
        raise click.ClickException(f"No bank is called {name!r}. `flask banks list` shows them.")
    return bank


@command.command("create")
@click.argument("name")
@click.option("--label", "labels", multiple=True, help="e.g. csam, ncii, terrorism, spam.")
@click.option("--negative", is_flag=True, help="Entries are known false positives.")
@click.option("--threshold", default=31, show_default=True, help="PDQ distance, 0 to 31.")
@click.option("--description", default="", help="What the bank holds and where it came from.")
@with_appcontext
def create(
    name: str, labels: tuple[str, ...], negative: bool, threshold: int, description: str
) -> None:
    """Create a bank."""
    try:
        bank = banks.create_bank(
            name,
            _actor(),
            labels=labels,
            negative=negative,
            pdq_threshold=threshold,
            description=description,
        )
    except BankError as error:
        raise click.ClickException(error.message) from None
    db.session.commit()
    kind = "negative bank" if bank.negative else "bank"
    click.echo(
        f"Created {kind} {bank.name!r} (id {bank.id}, labels: "
        f"{', '.join(bank.labels) or 'none'}, PDQ threshold {bank.pdq_threshold})."
    )


@command.command("import")
@click.argument("name")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="csv, te (threatexchange) or hma. Guessed from the content when left out.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@with_appcontext
def import_(name: str, file: IO[bytes], fmt: str | None, as_json: bool) -> None:
    """Import hashes from FILE ('-' for standard input) into the bank NAME."""
    bank = _find(name)
    filename = getattr(file, "name", "-")
    filename = "" if filename in ("-", "<stdin>") else filename
    report = bank_io.import_entries(bank, file, _actor(), fmt=fmt, filename=filename)
    if as_json:
        click.echo(
            json.dumps(
                {
                    **report.summary(),
                    "error_lines": [
                        {report.unit: where, "message": message} for where, message in report.errors
                    ],
                }
            )
        )
    else:
        click.echo(
            f"{report.format}: {report.added} added, {report.duplicates} already there, "
            f"{report.skipped} skipped (disabled in HMA), {report.error_count} errors."
        )
        for where, message in report.errors:
            click.echo(f"{report.unit} {where}: {message}", err=True)
        if report.error_count > len(report.errors):
            click.echo(f"… and {report.error_count - len(report.errors)} more errors.", err=True)
    if report.error_count:
        sys.exit(1)


@command.command("export")
@click.argument("name")
@click.argument("file", type=click.File("w"), default="-")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="csv, te (threatexchange) or hma.",
)
@with_appcontext
def export(name: str, file: IO[str], fmt: str) -> None:
    """Write the bank NAME's entries to FILE (standard output by default)."""
    bank = _find(name)
    for chunk in bank_export.export_lines(bank, fmt):
        file.write(chunk)
    banks.record_export(bank, fmt, _actor())
    db.session.commit()


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def list_(as_json: bool) -> None:
    """List every bank with its labels, state and entry counts."""
    rows = banks.list_banks()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": bank.id,
                        "name": bank.name,
                        "labels": bank.labels,
                        "enabled": bank.enabled,
                        "negative": bank.negative,
                        "pdq_threshold": bank.pdq_threshold,
                        "sha256": bank.sha256_count,
                        "md5": bank.md5_count,
                        "pdq": bank.pdq_count,
                    }
                    for bank in rows
                ]
            )
        )
        return
    if not rows:
        click.echo("No banks yet. Create one with `flask banks create NAME --label csam`.")
        return
    for bank in rows:
        state = ("enabled" if bank.enabled else "DISABLED") + (" negative" if bank.negative else "")
        click.echo(
            f"{bank.name:<30} {state:<17} d<={bank.pdq_threshold:<3} "
            f"pdq={bank.pdq_count} md5={bank.md5_count} sha256={bank.sha256_count}  "
            f"labels={','.join(bank.labels) or '-'}"
        )

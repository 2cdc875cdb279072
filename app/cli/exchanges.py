"""``flask exchanges …``: set up hash exchanges from scripts, list them, fetch one now.

Credentials given as ``--credential NAME=env:VARIABLE`` are read from the environment, so they
stay out of shell history and process listings; ``NAME=VALUE`` works too. ``fetch`` runs in this
process, prints what it changed and exits with status 1 when the fetch failed.
"""

from __future__ import annotations

import os

import click
from flask.cli import with_appcontext

from app.extensions import db
from app.models.bank import Bank
from app.models.exchange import Exchange, RunStatus
from app.services import exchange_fetch, exchanges
from app.services.audit import Actor
from app.services.exchange_kinds import KINDS
from app.services.exchanges import ExchangeError


@click.group("exchanges", help="Hash exchanges (NCMEC, StopNCII, TAT, ThreatExchange, lists).")
def command() -> None:
    """The ``exchanges`` command group."""


def _pairs(values: tuple[str, ...], what: str, *, secret: bool = False) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep:
            raise click.ClickException(f"Give {what} as NAME=VALUE, not {value!r}.")
        if secret and text.startswith("env:"):
            if text[4:] not in os.environ:
                raise click.ClickException(f"The environment variable {text[4:]} is not set.")
            text = os.environ[text[4:]]
        pairs[name.strip()] = text
    return pairs


def _find(name: str) -> Exchange:
    exchange = exchanges.find_exchange(name)
    if exchange is None:
        raise click.ClickException(f"No exchange is called {name!r}. `flask exchanges list`.")
    return exchange


@command.command("create")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)), help="Which exchange.")
@click.option("--bank", required=True, help="Name or id of the bank it fills.")
@click.option("--schedule", default=60, show_default=True, help="Minutes between fetches.")
@click.option("--setting", "settings", multiple=True, help="NAME=VALUE, e.g. environment=NGO.")
@click.option(
    "--credential",
    "credentials",
    multiple=True,
    help="NAME=VALUE or NAME=env:VARIABLE, e.g. password=env:NCMEC_PASSWORD.",
)
@click.option("--disabled", is_flag=True, help="Create it without fetching on schedule.")
@with_appcontext
def create(
    name: str,
    kind: str,
    bank: str,
    schedule: int,
    settings: tuple[str, ...],
    credentials: tuple[str, ...],
    disabled: bool,
) -> None:
    """Create an exchange that fills a bank."""
    declared = KINDS[kind]
    given = {
        "settings": _pairs(settings, "settings"),
        "credentials": _pairs(credentials, "credentials", secret=True),
    }
    for what, names in (("settings", declared.settings), ("credentials", declared.credentials)):
        unknown = set(given[what]) - {setting.name for setting in names}
        if unknown:
            known = ", ".join(setting.name for setting in names) or "none"
            raise click.ClickException(
                f"{kind} has no {what} called {', '.join(sorted(unknown))}; its {what}: {known}."
            )
    try:
        exchange = exchanges.create_exchange(
            name,
            kind,
            bank,
            Actor.system("cli"),
            settings=given["settings"],
            credentials=given["credentials"],
            schedule_minutes=schedule,
            enabled=not disabled,
        )
    except ExchangeError as error:
        problems = "; ".join(f"{field}: {message}" for field, message in error.errors.items())
        raise click.ClickException(problems) from None
    db.session.commit()
    click.echo(
        f"Created exchange {exchange.name!r} (id {exchange.id}, {KINDS[kind].title}), "
        f"fetching every {exchange.schedule_minutes} minutes"
        + (" once enabled." if disabled else ".")
    )


@command.command("list")
@with_appcontext
def list_exchanges() -> None:
    """Every exchange with its bank, schedule and last fetch."""
    rows = exchanges.list_exchanges()
    if not rows:
        click.echo("No exchanges yet. `flask exchanges create --help` shows how.")
        return
    for exchange in rows:
        bank = db.session.get(Bank, exchange.bank_id)
        state = "enabled" if exchange.enabled else "disabled"
        last = (
            exchange.last_run_at.isoformat(timespec="seconds") if exchange.last_run_at else "never"
        )
        outcome = f"error: {exchange.last_error}" if exchange.last_error else "ok"
        click.echo(
            f"{exchange.id}\t{exchange.name}\t{exchange.kind}\tbank {bank.name if bank else '?'}"
            f"\t{state}, every {exchange.schedule_minutes} min\tlast fetch {last}"
            f"\t{exchange.total_count} hashes\t{outcome if exchange.last_run_at else ''}"
        )


@command.command("fetch")
@click.argument("name")
@with_appcontext
def fetch(name: str) -> None:
    """Fetch an exchange now, in this process, and print what changed."""
    exchange = _find(name)
    try:
        run = exchange_fetch.fetch_now(exchange, Actor.system("cli"), "cli")
    except exchange_fetch.FetchBusy as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"{exchange.name}: {run.status}, {run.pages} pages, {run.records} records: "
        f"added {run.added}, removed {run.removed}, skipped {run.skipped}; "
        f"the bank holds {exchange.total_count} hashes from this exchange."
    )
    if run.status == RunStatus.PARTIAL:
        click.echo("Stopped at the time budget; the next fetch carries on from here.")
    if run.status == RunStatus.FAILED:
        raise click.ClickException(run.error or "The fetch failed.")

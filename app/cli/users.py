"""``flask users …``: manage accounts from the server's shell (first admin, lost access, scripts).

Every change is audited with the actor ``system:cli``. Errors exit with status 1 and say how to
fix them; usage mistakes (a role that does not exist) exit with status 2, as click does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from app.models.user import Role, User
from app.services import accounts, invitations, totp
from app.services.accounts import AccountError
from app.services.audit import Actor

ROLE_CHOICE = click.Choice([role.value for role in Role], case_sensitive=False)


def cli_actor() -> Actor:
    """The audit actor for command-line changes."""
    return Actor.system("cli")


def user_as_dict(user: User) -> dict[str, Any]:
    """The fields scripts read from ``--json`` output."""
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "display_name": user.display_name,
    }


def _user(email: str) -> User:
    user = accounts.find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user has the email {email}. See `flask users list`.")
    return user


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group("users", help="Create and manage user accounts.")
def command() -> None:
    """The ``users`` command group."""


@command.command("create")
@click.option("--email", required=True, help="The new user's email address (their login).")
@click.option("--role", type=ROLE_CHOICE, required=True, help="admin, lead or moderator.")
@click.option("--name", "display_name", default="", help="The name other people see.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new user as JSON.")
@with_appcontext
def create(email: str, role: str, display_name: str, password_stdin: bool, as_json: bool) -> None:
    """Create a user with a password (no invitation needed)."""
    password = _read_password(password_stdin)
    try:
        user = accounts.create_user(email, password, role.lower(), cli_actor(), display_name)
    except AccountError as error:
        raise click.ClickException(error.message) from None
    if as_json:
        click.echo(json.dumps(user_as_dict(user)))
    else:
        click.echo(f"Created {user.role} {user.email} (id {user.id}).")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def list_users(as_json: bool) -> None:
    """List every account with its role and state."""
    users = accounts.list_users()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {**user_as_dict(user), "active": user.active, "two_step": user.totp_enabled}
                    for user in users
                ]
            )
        )
        return
    if not users:
        click.echo("No users yet. Start the server for a setup link, or run `flask users create`.")
    for user in users:
        state = "active" if user.active else "deactivated"
        two_step = ", two-step login" if user.totp_enabled else ""
        click.echo(f"{user.id:>5}  {user.email}  {user.role}  {state}{two_step}")


@command.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLE_CHOICE)
@with_appcontext
def set_role(email: str, role: str) -> None:
    """Give the user EMAIL the role ROLE."""
    user = _user(email)
    try:
        accounts.set_role(user, role.lower(), cli_actor())
    except AccountError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"{user.email} is now {user.role}.")


@command.command("deactivate")
@click.argument("email")
@with_appcontext
def deactivate(email: str) -> None:
    """Lock the user EMAIL out and end their sessions."""
    user = _user(email)
    try:
        accounts.deactivate(user, cli_actor())
    except AccountError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"{user.email} is deactivated.")


@command.command("reactivate")
@click.argument("email")
@with_appcontext
def reactivate(email: str) -> None:
    """Let the deactivated user EMAIL log in again."""
    user = _user(email)
    accounts.reactivate(user, cli_actor())
    click.echo(f"{user.email} can log in again.")


@command.command("reset-link")
@click.argument("email")
@click.option(
    "--base-url",
    default=None,
    help="The address people reach the server at (default PUBLIC_URL, or HOST:PORT).",
)
@with_appcontext
def reset_link(email: str, base_url: str | None) -> None:
    """Print a single-use password-reset link for EMAIL."""
    user = _user(email)
    try:
        link, token = invitations.issue_reset_link(user, cli_actor())
    except AccountError as error:
        raise click.ClickException(error.message) from None
    config = current_app.config
    base = base_url or config.get("PUBLIC_URL") or f"http://{config['HOST']}:{config['PORT']}"
    click.echo(f"{base.rstrip('/')}/reset/{token}")
    expires = link.expires_at.strftime("%Y-%m-%d %H:%M UTC") if link.expires_at else "never"
    click.echo(f"It works once, until {expires}.", err=True)


@command.command("disable-two-step")
@click.argument("email")
@with_appcontext
def disable_two_step(email: str) -> None:
    """Turn two-step login off for EMAIL (lost authenticator app and recovery codes)."""
    user = _user(email)
    try:
        totp.admin_disable(user, cli_actor())
    except AccountError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Two-step login is off for {user.email}.")

"""``flask sources …``: create sources and manage their API tokens from a shell or a script.

Meant for provisioning (Ansible, a platform's install script): ``create --json`` prints exactly
``{"id", "slug", "token", "webhook_secret"}`` so a script can store the credentials it needs;
a pict-rs source adds ``validation_path`` (``/hooks/<slug>/<path token>``), made only then.
Tokens and secrets are printed once, by the command that made them, and never again.
"""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from app.extensions import db
from app.models.source import ApiToken, Source, SourceKind
from app.services import sources
from app.services.audit import Actor
from app.services.sources import SourceError

KIND_CHOICES = [kind.value for kind in SourceKind if kind is not SourceKind.MANUAL]


@click.group("sources", help="Create sources (integrations) and manage their API tokens.")
def command() -> None:
    pass


def _actor() -> Actor:
    return Actor.system("cli")


def _find(name_or_slug: str) -> Source:
    source = sources.find_source(name_or_slug)
    if source is None:
        raise click.ClickException(
            f"No source is called {name_or_slug!r}. `flask sources list` shows the slugs."
        )
    return source


@command.command("create")
@click.argument("name")
@click.option(
    "--kind",
    default=SourceKind.GENERIC.value,
    show_default=True,
    help=f"The software on the other side: {', '.join(KIND_CHOICES)}.",
)
@click.option("--callback-url", default=None, help="Where decisions are sent back (http/https).")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as one JSON object.")
@with_appcontext
def create(name: str, kind: str, callback_url: str | None, as_json: bool) -> None:
    """Create a source and print its first API token and its webhook signing secret."""
    try:
        source, token, secret = sources.create_source(
            name, kind, _actor(), callback_url=callback_url
        )
    except SourceError as error:
        raise click.ClickException(error.message) from None
    # pict-rs sends no credentials: its URL carries a path token, made here as on the admin page.
    from app.services.webhooks.pictrs import issue_path_token_if_pictrs, validation_path

    path_token = issue_path_token_if_pictrs(source, _actor())
    path = validation_path(source.slug, path_token) if path_token else None
    if as_json:
        created = {"id": source.id, "slug": source.slug, "token": token, "webhook_secret": secret}
        click.echo(json.dumps({**created, "validation_path": path} if path else created))
        return
    click.echo(f"Created source {source.name!r} (slug {source.slug}, id {source.id}).")
    click.echo(f"API token:      {token}")
    click.echo(f"Webhook secret: {secret}")
    if path:
        click.echo(f"pict-rs external_validation path: {path}")
        click.echo("  (after this server's public address, e.g. https://modtools.example.org)")
    click.echo("Store them now: they are not shown again.")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def list_(as_json: bool) -> None:
    """List every source with its kind, state and counts (and, in JSON, its tokens' ids)."""
    rows = sources.list_sources()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": row.source.id,
                        "name": row.source.name,
                        "slug": row.source.slug,
                        "kind": row.source.kind,
                        "enabled": row.source.enabled,
                        "active_tokens": row.active_tokens,
                        "items": row.items,
                        "created_at": row.source.created_at.isoformat(),
                        "tokens": [_token_json(token) for token in row.source.tokens],
                    }
                    for row in rows
                ]
            )
        )
        return
    if not rows:
        click.echo("No sources yet. Create one with `flask sources create NAME`.")
        return
    for row in rows:
        state = "enabled" if row.source.enabled else "DISABLED"
        click.echo(
            f"{row.source.slug:<30} {row.source.kind:<10} {state:<9} "
            f"tokens={row.active_tokens} items={row.items}  {row.source.name}"
        )


def _token_json(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "revoked": token.revoked_at is not None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


@command.command("token")
@click.argument("name_or_slug")
@click.option("--name", "token_name", default="", help="A label for the token, e.g. 'staging'.")
@with_appcontext
def token(name_or_slug: str, token_name: str) -> None:
    """Issue another API token for a source and print it (once)."""
    source = _find(name_or_slug)
    api_token, raw = sources.issue_token(source, _actor(), token_name)
    click.echo(raw)
    click.echo(f"Token id {api_token.id} for {source.slug}. It is not shown again.", err=True)


@command.command("revoke-token")
@click.argument("token_id", type=int)
@with_appcontext
def revoke_token(token_id: int) -> None:
    """Revoke an API token at once; requests using it are refused from now on."""
    try:
        api_token = sources.revoke_token(token_id, _actor())
    except SourceError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Revoked token {api_token.id} ({api_token.prefix}…) of {api_token.source.slug}.")


@command.command("disable")
@click.argument("slug")
@with_appcontext
def disable(slug: str) -> None:
    """Switch a source off: its tokens are refused until an admin switches it on again."""
    source = db.session.scalar(db.select(Source).where(Source.slug == slug))
    if source is None:
        raise click.ClickException(
            f"No source has the slug {slug!r}. `flask sources list` shows the slugs."
        )
    sources.set_enabled(source, False, _actor())
    click.echo(f"Disabled {source.slug}. Its tokens are refused until it is enabled again.")

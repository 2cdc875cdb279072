"""``flask demo``: fill a running server with synthetic demo data, or remove it again.

The images go through the real API over HTTP, exactly as a platform would send them, so the
demo also shows that ingest, scanning and routing work. The command itself only creates the demo
source (for its API token) and the demo bank in the database, so it must run with the same
instance folder (``MODTOOLS_INSTANCE_PATH``) as the server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import click
import requests
from flask.cli import with_appcontext

from app.services import demo
from app.services.audit import Actor

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _session(url: str) -> requests.Session:
    session = requests.Session()
    # A proxy from the environment must not swallow requests to this machine.
    session.trust_env = urlsplit(url).hostname not in LOOPBACK
    return session


@click.command("demo", help="Send about fifty synthetic demo images to the server, or remove them.")
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The running server's base URL.",
)
@click.option(
    "--count",
    default=demo.DEMO_COUNT,
    show_default=True,
    type=click.IntRange(1, 500),
    help="How many images to send.",
)
@click.option(
    "--remove",
    is_flag=True,
    help="Remove every demo item, its media, the demo source and the demo bank instead.",
)
@with_appcontext
def command(url: str, count: int, remove: bool) -> None:
    """Create the demo source and bank, then post the images to ``url``'s API."""
    actor = Actor.system("flask demo")
    if remove:
        removed = demo.remove_demo(actor)
        click.echo(
            f"Removed {removed.items} demo items, {removed.media} media files, "
            f"{removed.sources} demo source(s) and {removed.banks} demo bank(s)."
        )
        return
    base = url.rstrip("/")
    session = _session(base)
    try:
        session.get(f"{base}/healthz", timeout=5)
    except requests.RequestException:
        raise click.ClickException(
            f"Cannot reach Modtools Image at {base}. Start the server first (`make run`), or pass "
            "--url with the address it listens on."
        ) from None
    source, token = demo.ensure_source(actor)
    bank = demo.ensure_bank(actor)
    click.echo(f"Demo source “{source.name}” and demo bank “{bank.name}” are ready.")
    accepted = failed = 0
    for image in demo.demo_images(count):
        response = session.post(
            f"{base}/api/v1/items",
            json=demo.api_body(image),
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code in (200, 201, 202):
            accepted += 1
            continue
        failed += 1
        if response.status_code == 401:
            raise click.ClickException(
                f"The server at {base} does not know the demo source's token. Run this command "
                "with the same instance folder (MODTOOLS_INSTANCE_PATH) as the server."
            )
        click.echo(f"{image.external_id}: {response.status_code} {response.text[:200]}", err=True)
    click.echo(
        f"Sent {accepted} demo images to {base}"
        + (f" ({failed} refused)" if failed else "")
        + ". They appear in the queue as the scanners finish. "
        "Remove them with `flask --app wsgi demo --remove`."
    )

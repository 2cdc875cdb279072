"""``flask worker``: a standalone task consumer for deployments that separate web and worker."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("worker", help="Run a task consumer (without the web server) until SIGINT/SIGTERM.")
@click.option("--threads", type=int, default=None, help="Worker threads (default HUEY_WORKERS).")
@with_appcontext
def command(threads: int | None) -> None:
    from app.runner import run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if threads:
        app.config["HUEY_WORKERS"] = threads
    run_worker(app)

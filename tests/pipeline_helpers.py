"""Plain factory functions for the plugin and pipeline tests: items, settings, jobs, users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app import create_app
from app.extensions import db
from app.models.audit import AuditEvent
from app.models.item import Item
from app.models.job import Job, JobStatus
from app.models.plugin import PluginConfig
from app.models.scan import ScanResult
from app.models.source import Source
from app.models.types import new_id, utcnow
from app.services import accounts, jobs, pipeline, sources
from app.services.audit import Actor
from app.services.hashing import compute_hashes
from app.services.ingest import original_store
from tests.imagegen import encode, scene

TEST_PLUGINS = {"PLUGINS_MODULES": ["tests.fixtures.scanners"]}
PASSWORD = "correct horse battery staple"


def image_bytes(seed: int = 1) -> bytes:
    """A small synthetic JPEG."""
    return encode(scene(160, 120, seed=seed), "JPEG", quality=85)


def make_source(name: str = "Forum") -> Source:
    """A source (in an app context), with its credentials thrown away."""
    source, _, _ = sources.create_source(name, "generic", Actor.system("test"))
    return source


def make_item(
    app: Flask, seed: int = 1, source_name: str = "Forum", status: str = "received", **fields: Any
) -> str:
    """An item whose image is in the media store, as ingest leaves it; returns its id."""
    data = image_bytes(seed)
    with app.app_context():
        source = db.session.scalar(select(Source).where(Source.name == source_name))
        source = source or make_source(source_name)
        hashes = compute_hashes(data)
        original_store().put(data)
        item = Item(
            id=new_id(),
            source_id=source.id,
            external_id=new_id(),
            status=status,
            sha256=hashes.sha256,
            md5=hashes.md5,
            pdq=hashes.pdq,
            pdq_quality=hashes.pdq_quality,
            mime="image/jpeg",
            bytes=len(data),
            **fields,
        )
        db.session.add(item)
        db.session.commit()
        return item.id


def configure(app: Flask, name: str, enabled: bool = True, **settings: Any) -> None:
    """Switch a plugin on or off with these (non-secret) settings, as a saved form would."""
    with app.app_context():
        config = db.session.get(PluginConfig, name) or PluginConfig(name=name, kind="scanner")
        config.enabled, config.settings = enabled, {**(config.settings or {}), **settings}
        db.session.add(config)
        db.session.commit()


def only_scanners(app: Flask, **scanners: dict[str, Any]) -> None:
    """Switch on exactly these test scanners (with settings) and switch the hash banks off."""
    configure(app, "hashbank", enabled=False)
    for name, settings in scanners.items():
        configure(app, name, **settings)


def scan(app: Flask, item_id: str) -> None:
    """Start the item's scan as ingest's job does (jobs run inline when Huey is immediate)."""
    with app.app_context():
        item = db.session.get(Item, item_id)
        assert item is not None
        pipeline.start_scan(item, Actor.system("test"))
        db.session.commit()


def item_state(app: Flask, item_id: str) -> tuple[str, str | None, int]:
    """The item's status, status reason and priority."""
    with app.app_context():
        item = db.session.get(Item, item_id)
        assert item is not None
        return item.status, item.status_reason, item.priority


def results(app: Flask, item_id: str) -> dict[str, dict[str, Any]]:
    """The latest round's results as the API reports them, by scanner."""
    with app.app_context():
        item = db.session.get(Item, item_id)
        return {result["scanner"]: result for result in pipeline.scan_results_for(item)}


def result_rows(app: Flask, item_id: str) -> list[ScanResult]:
    """Every scan result row of the item, all rounds, detached."""
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(ScanResult)
                .where(ScanResult.item_id == item_id)
                .order_by(ScanResult.scan_round, ScanResult.scanner)
            )
        )
        db.session.expunge_all()
        return rows


def queued_jobs(app: Flask, name: str) -> list[Job]:
    """Jobs called ``name`` still waiting to run, oldest first, detached."""
    with app.app_context():
        found = list(
            db.session.scalars(
                select(Job)
                .where(Job.name == name, Job.status == JobStatus.QUEUED)
                .order_by(Job.created_at)
            )
        )
        db.session.expunge_all()
        return found


def run_job_now(app: Flask, job_id: str, owner: str = "test-worker") -> str:
    """Run a queued job as if its backoff had passed (immediate mode does not wait for it)."""
    with app.app_context():
        db.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        return jobs.run(job_id, owner)


def retry_until_settled(app: Flask, name: str = pipeline.SCANNER_JOB, limit: int = 10) -> int:
    """Run due retries of ``name`` jobs until none is queued; returns how many runs it took."""
    runs = 0
    while (waiting := queued_jobs(app, name)) and runs < limit:
        run_job_now(app, waiting[0].id)
        runs += 1
    return runs


def status_events(app: Flask, item_id: str) -> list[dict[str, Any]]:
    """The details of every ``item.status`` audit event of the item, oldest first."""
    with app.app_context():
        return [
            event.details
            for event in db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "item.status", AuditEvent.target_id == item_id)
                .order_by(AuditEvent.seq)
            )
        ]


def audit_details(app: Flask, action: str) -> list[dict[str, Any]]:
    """The details of every audit event with ``action``, oldest first."""
    with app.app_context():
        return [
            event.details
            for event in db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        ]


def log_in_as(app: Flask, client: FlaskClient, role: str, email: str | None = None) -> int:
    """Create a user with ``role`` and make ``client`` their logged-in browser; returns the id."""
    with app.app_context():
        user = accounts.add_user(email or f"{role}@example.org", PASSWORD, role, role.title())
        db.session.commit()
        user_id, session_id = user.id, user.get_id()
    with client.session_transaction() as session:
        session["_user_id"] = session_id
        session["_fresh"] = True
    return user_id


@contextmanager
def app_without_consumer(instance_path: Path, tmp_path: Path, **config: Any) -> Iterator[Flask]:
    """An app whose Huey queue is on disk with nobody consuming it: jobs wait for the test."""
    from tests.conftest import make_test_config

    app = create_app(
        make_test_config(
            instance_path,
            **config,
            HUEY_IMMEDIATE=False,
            HUEY_URL=f"sqlite:///{tmp_path / 'huey.db'}",
        )
    )
    with app.app_context():
        db.create_all()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

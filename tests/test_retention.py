"""Retention: decided items lose their media after the configured days; held evidence never does."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app.extensions import db
from app.models.action import ItemHold
from app.models.item import Item
from app.models.types import utcnow
from app.services import retention
from app.services.ingest import derived_store, original_store
from app.services.reports import EVIDENCE_HOLD_DAYS, hold_evidence
from tests.helpers_review import login_as, make_item, make_source, make_user


def aged(app: Flask, status: str, days: float, seed: int, **fields) -> str:
    """An item with media, decided ``days`` ago with outcome ``status``."""
    source_id = make_source(app)
    decided = utcnow() - timedelta(days=days)
    return make_item(
        app,
        source_id,
        status=status,
        seed=seed,
        with_media=True,
        decided_at=decided,
        scanned_at=decided,
        **fields,
    )


def media_kept(app: Flask, item_id: str) -> bool:
    with app.app_context():
        sha256 = db.session.get(Item, item_id).sha256
        return original_store().exists(sha256) and derived_store().exists(sha256)


def test_media_goes_after_its_outcomes_days_and_the_record_stays(app: Flask) -> None:
    old_cleared = aged(app, "cleared", 31, seed=1)
    old_approved = aged(app, "approved", 31, seed=2)
    young_removed = aged(app, "removed", 31, seed=3)
    old_removed = aged(app, "removed", 91, seed=4)
    waiting = aged(app, "queued", 400, seed=5)
    with app.app_context():
        run, plan = retention.purge()
        assert {item_id for item_id, _ in plan.items} == {old_cleared, old_approved, old_removed}
        assert run.items_purged == 3 and run.blobs_deleted == 3
        item = db.session.get(Item, old_cleared)
        assert item.sha256 and item.pdq  # hashes stay: the image can still be matched
        assert retention.purged_at(old_cleared) is not None
        assert retention.purged_at(young_removed) is None
    assert not media_kept(app, old_cleared) and not media_kept(app, old_removed)
    assert media_kept(app, young_removed) and media_kept(app, waiting)
    with app.app_context():  # a second run finds nothing more to do
        assert retention.purge()[1].items == []


def test_reported_media_is_held_for_a_year(app: Flask) -> None:
    reported = aged(app, "removed", 200, seed=6)
    with app.app_context():
        hold_evidence([reported], EVIDENCE_HOLD_DAYS, "CyberTipline report 1")
        db.session.commit()
        plan = retention.purge()[1]
        assert plan.held == [reported] and plan.items == []
    assert media_kept(app, reported)
    # A year later the hold is over (its end moved to the past, as time would) and the media goes.
    with app.app_context():
        hold_row = db.session.get(ItemHold, reported)
        assert hold_row.evidence_hold_until > utcnow() + timedelta(days=EVIDENCE_HOLD_DAYS - 1)
        hold_row.evidence_hold_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
        plan = retention.purge()[1]
        assert [item_id for item_id, _ in plan.items] == [reported]
    assert not media_kept(app, reported)


def test_a_shared_blob_stays_while_another_item_needs_it(app: Flask) -> None:
    old = aged(app, "approved", 40, seed=7)
    newer = aged(app, "queued", 1, seed=7)  # the same bytes, content-addressed: one blob
    with app.app_context():
        plan = retention.purge()[1]
        assert [item_id for item_id, _ in plan.items] == [old]
        assert plan.blobs == [] and len(plan.shared) == 1
    assert media_kept(app, newer)


def test_dry_run_lists_and_changes_nothing(app: Flask, runner: FlaskCliRunner) -> None:
    old = aged(app, "cleared", 45, seed=8)
    result = runner.invoke(args=["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert old in result.output and "would purge 1 item" in result.output
    assert media_kept(app, old)
    result = runner.invoke(args=["purge"])
    assert "purged 1 item" in result.output
    assert not media_kept(app, old)


def test_admin_page_shows_settings_and_the_last_purge(app: Flask, client: FlaskClient) -> None:
    aged(app, "cleared", 45, seed=9)
    with app.app_context():
        retention.purge()
    login_as(client, make_user(app, "admin"))
    html = client.get("/admin/retention").get_data(as_text=True)
    assert "Cleared" in html and "30 days" in html and "90 days" in html
    assert "Next purge" in html and "1 item" in html
    login_as(client, make_user(app, "lead"))
    assert client.get("/admin/retention").status_code == 403

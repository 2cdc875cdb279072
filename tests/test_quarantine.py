"""Quarantine and add-to-bank: their effects, their failures, and no double effect after a crash."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models.action import ActionRun, ItemHold, QuarantinedMedia
from app.models.bank import BankEntry
from app.services import actions, banks, decisions
from app.services.audit import Actor
from app.services.ingest import derived_store, original_store
from plugins.quarantine.store import held, quarantine_store
from tests.helpers_review import attach, load, make_item, make_source, make_user


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"UNDO_SECONDS": 0}


def remove(app: Flask, item_id: str, category: str = "csam") -> None:
    lead = make_user(app, "lead")
    with app.app_context():
        decisions.decide(item_id, attach(lead), "remove", Actor.system("test"), category=category)


def run_of(app: Flask, item_id: str, action: str) -> ActionRun:
    with app.app_context():
        run = db.session.scalar(
            select(ActionRun).where(ActionRun.item_id == item_id, ActionRun.action == action)
        )
        assert run is not None
        db.session.expunge(run)
        return run


def test_removing_csam_moves_the_original_to_quarantine(app: Flask, client: Any):
    item_id = make_item(app, make_source(app), with_media=True)
    sha256 = load(app, item_id).sha256
    remove(app, item_id)
    run = run_of(app, item_id, "quarantine")
    assert run.status == "succeeded"
    with app.app_context():
        assert not original_store().exists(sha256)
        assert quarantine_store().exists(sha256)
        assert derived_store().exists(sha256), "previews stay for review"
        assert db.session.get(QuarantinedMedia, sha256) is not None
        assert db.session.get(ItemHold, item_id) is not None and held(item_id)
    from tests.helpers_review import login_as

    login_as(client, make_user(app, "moderator"))
    assert client.get(f"/media/items/{item_id}/original").status_code in (403, 404)


def test_quarantine_again_after_a_crash_changes_nothing(app: Flask):
    item_id = make_item(app, make_source(app), with_media=True)
    sha256 = load(app, item_id).sha256
    remove(app, item_id)
    run = run_of(app, item_id, "quarantine")
    with app.app_context():
        db.session.get(ActionRun, run.id).status = "running"
        db.session.commit()
        actions.run_action(run.id)
        assert db.session.get(ActionRun, run.id).status == "succeeded"
        assert "Already in quarantine" in db.session.get(ActionRun, run.id).response_summary
        assert quarantine_store().exists(sha256)
        assert db.session.scalar(select(func.count()).select_from(QuarantinedMedia)) == 1


def test_quarantine_fails_for_good_when_the_original_is_gone(app: Flask):
    item_id = make_item(app, make_source(app), with_media=True)
    with app.app_context():
        original_store().delete(load(app, item_id).sha256)
    remove(app, item_id)
    run = run_of(app, item_id, "quarantine")
    assert run.status == "failed" and "neither" in run.error and run.attempts == 1


def bank(app: Flask, name: str = "Removed spam") -> int:
    with app.app_context():
        made = banks.create_bank(name, Actor.system("test"), labels=["spam"])
        db.session.commit()
        return made.id


def test_add_to_bank_adds_every_hash_once_even_when_repeated(app: Flask):
    bank_id = bank(app)
    app.config["BANK_FOR_CATEGORY"] = {"spam": "Removed spam"}
    from app.services import actions_config

    with app.app_context():
        actions_config.save({("remove", "spam"): ["add_to_bank"]}, Actor.system("test"))
    item_id = make_item(app, make_source(app), with_media=True)
    remove(app, item_id, "spam")
    run = run_of(app, item_id, "add_to_bank")
    assert run.status == "succeeded" and run.external_ref == str(bank_id)
    with app.app_context():
        db.session.get(ActionRun, run.id).status = "running"
        db.session.commit()
        actions.run_action(run.id)
        count = db.session.scalar(
            select(func.count()).select_from(BankEntry).where(BankEntry.bank_id == bank_id)
        )
    assert count == 3  # sha256, md5, pdq: once each


def test_add_to_bank_without_a_bank_fails_and_says_how_to_fix(app: Flask):
    from app.services import actions_config

    with app.app_context():
        actions_config.save({("remove", "*"): ["add_to_bank"]}, Actor.system("test"))
    item_id = make_item(app, make_source(app), with_media=True)
    remove(app, item_id, "spam")
    run = run_of(app, item_id, "add_to_bank")
    assert run.status == "failed" and "BANK_FOR_CATEGORY" in run.error


def test_only_a_lead_can_reveal_a_quarantined_original(app: Flask, client: Any) -> None:
    from tests.helpers_review import login_as
    from tests.test_reveal import image_url, reveal_post

    item_id = make_item(app, make_source(app), with_media=True)
    sha256 = load(app, item_id).sha256
    with app.app_context():
        original = original_store().get(sha256)
    remove(app, item_id)

    login_as(client, make_user(app, "moderator"))
    refused = client.get(image_url(reveal_post(client, item_id, "full")))
    assert refused.status_code == 403
    assert "quarantined" in refused.get_data(as_text=True)

    login_as(client, make_user(app, "lead"))
    revealed = client.get(image_url(reveal_post(client, item_id, "full")))
    assert revealed.status_code == 200
    assert revealed.data == original

"""Claims: one holder per item, "next" in priority order, expiry, renewal, release, take-over."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.item import Item
from app.models.types import utcnow
from app.services import claims
from app.services.audit import Actor
from tests.helpers_review import attach, load, make_item, make_source, make_user


def expire_claims(app: Flask) -> None:
    """Make every claim run out, as if CLAIM_MINUTES had passed."""
    with app.app_context():
        db.session.execute(
            update(Item)
            .where(Item.claimed_by_id.is_not(None))
            .values(claim_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()


def test_next_claims_the_highest_priority_then_the_oldest(app: Flask) -> None:
    source = make_source(app)
    low_old = make_item(app, source, priority=0, age_minutes=60)
    high_new = make_item(app, source, priority=100, age_minutes=1)
    high_old = make_item(app, source, priority=100, age_minutes=30)
    make_item(app, source, status="cleared", priority=500)  # not waiting for review
    moderator = make_user(app)
    with app.app_context():
        user = attach(moderator)
        order = [claims.claim_next(user) for _ in range(4)]
    assert order == [high_old, high_new, low_old, None]
    assert load(app, high_old).claimed_by_id == moderator.id


def test_an_item_held_by_someone_is_not_handed_out_until_the_claim_expires(app: Flask) -> None:
    source = make_source(app)
    item_id = make_item(app, source)
    alice, bob = make_user(app), make_user(app)
    with app.app_context():
        assert claims.claim(item_id, attach(alice))
        assert not claims.claim(item_id, attach(bob))
        assert claims.claim_next(attach(bob)) is None
    expire_claims(app)
    with app.app_context():
        assert claims.claim_next(attach(bob)) == item_id
    assert load(app, item_id).claimed_by_id == bob.id


def test_claims_last_claim_minutes_and_renewal_pushes_the_expiry(app: Flask) -> None:
    app.config["CLAIM_MINUTES"] = 3
    item_id = make_item(app, make_source(app))
    moderator = make_user(app)
    with app.app_context():
        claims.claim(item_id, attach(moderator))
    first = load(app, item_id).claim_expires_at
    assert first is not None
    assert timedelta(minutes=2.9) < first - utcnow() <= timedelta(minutes=3)
    expire_claims(app)
    with app.app_context():  # expired, but nobody else took it: still the holder's to renew
        assert claims.renew(item_id, attach(moderator))
    renewed = load(app, item_id).claim_expires_at
    assert renewed is not None and renewed > utcnow() + timedelta(minutes=2.9)


def test_release_gives_the_item_back_and_only_the_holder_can(app: Flask) -> None:
    item_id = make_item(app, make_source(app))
    alice, bob = make_user(app), make_user(app)
    with app.app_context():
        claims.claim(item_id, attach(alice))
        assert not claims.release(item_id, attach(bob))
        assert claims.release(item_id, attach(alice))
        assert claims.claim_next(attach(bob)) == item_id


def test_moderators_cannot_claim_escalated_items_but_leads_can(app: Flask) -> None:
    item_id = make_item(app, make_source(app), status="escalated")
    moderator, lead = make_user(app), make_user(app, "lead")
    with app.app_context():
        assert not claims.claim(item_id, attach(moderator))
        assert claims.claim_next(attach(moderator), ("escalated",)) is None
        assert claims.claim_next(attach(lead), ("escalated",)) == item_id


def test_a_lead_takes_over_a_claim_and_it_is_audited(app: Flask) -> None:
    item_id = make_item(app, make_source(app))
    moderator, lead = make_user(app), make_user(app, "lead")
    with app.app_context():
        claims.claim(item_id, attach(moderator))
        with pytest.raises(claims.ClaimRefused):
            claims.take_over(item_id, attach(make_user(app)), Actor.system())
        previous = claims.take_over(item_id, attach(lead), Actor.for_user(attach(lead)))
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "item.claim_taken_over")
        ).all()
        assert previous == moderator.id
        assert [event.details["from_user_id"] for event in events] == [moderator.id]
    assert load(app, item_id).claimed_by_id == lead.id


def test_next_honours_the_queue_filters(app: Flask) -> None:
    forum, chat = make_source(app, "Forum"), make_source(app, "Chat")
    make_item(app, forum, priority=100)
    wanted = make_item(app, chat, priority=1)
    with app.app_context():
        assert (
            claims.claim_next(attach(make_user(app)), conditions=[Item.source_id == chat]) == wanted
        )


@pytest.mark.slow
def test_moderators_pressing_next_at_once_never_get_the_same_item(app: Flask) -> None:
    """8 threads on a real SQLite file, each with its own connection, claim 200 items."""
    source = make_source(app)
    with app.app_context():
        db.session.add_all(
            Item(source_id=source, external_id=f"race-{n}", status="queued", priority=n % 5)
            for n in range(200)
        )
        db.session.commit()
    users = [make_user(app) for _ in range(8)]
    claimed: dict[int, list[str]] = {user.id: [] for user in users}
    errors: list[BaseException] = []
    start = threading.Barrier(len(users))

    def work(user_id: int) -> None:
        try:
            with app.app_context():
                from app.models.user import User

                user = db.session.get(User, user_id)
                start.wait()
                while (item_id := claims.claim_next(user)) is not None:
                    claimed[user_id].append(item_id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(user.id,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    everything = [item_id for ids in claimed.values() for item_id in ids]
    assert len(everything) == 200
    assert len(set(everything)) == 200  # nobody got an item twice, no item went to two people
    assert sum(1 for ids in claimed.values() if ids) > 1  # the work really was shared
    with app.app_context():
        holders = dict(db.session.execute(select(Item.id, Item.claimed_by_id)).all())
    for user_id, ids in claimed.items():
        assert all(holders[item_id] == user_id for item_id in ids)

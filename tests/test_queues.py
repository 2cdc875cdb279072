"""Queues: membership, priority order, keyset pages that never skip or repeat, filters, counts."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from app.extensions import db
from app.models.item import Item
from app.models.types import utcnow
from app.services import claims, decisions, queues
from app.services.audit import Actor
from app.services.queue_filters import Filters
from app.services.queues import Queue
from tests.helpers_review import add_scan, attach, make_item, make_source, make_user


def page_ids(app: Flask, queue: Queue, user: object, **options: object) -> list[str]:
    with app.app_context():
        return [item.id for item in queues.list_page(queue, attach(user), **options).items]


def every_page(
    app: Flask, queue: Queue, user: object, limit: int, conditions: list | None = None
) -> list[list[str]]:
    pages, cursor = [], None
    with app.app_context():
        while True:
            page = queues.list_page(
                queue, attach(user), conditions or [], after=cursor, limit=limit
            )
            pages.append([item.id for item in page.items])
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor


def test_to_review_is_in_priority_order_and_hides_items_held_by_others(app: Flask) -> None:
    source = make_source(app)
    me, colleague = make_user(app), make_user(app)
    urgent = make_item(app, source, priority=100, age_minutes=5)
    old = make_item(app, source, priority=0, age_minutes=50)
    new = make_item(app, source, priority=0, age_minutes=1)
    held = make_item(app, source, priority=100, age_minutes=50)
    mine = make_item(app, source, priority=50)
    make_item(app, source, status="cleared")
    with app.app_context():
        claims.claim(held, attach(colleague))
        claims.claim(mine, attach(me))
    assert page_ids(app, Queue.REVIEW, me) == [urgent, mine, old, new]
    assert page_ids(app, Queue.MINE, me) == [mine]
    assert page_ids(app, Queue.MINE, colleague) == [held]
    with app.app_context():  # an expired claim puts the item back in everyone's queue
        db.session.execute(
            update(Item)
            .where(Item.id == held)
            .values(claim_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert page_ids(app, Queue.REVIEW, me)[0] == held


def test_pages_cover_the_queue_exactly_once_across_ties(app: Flask) -> None:
    source = make_source(app)
    same_time = utcnow() - timedelta(hours=1)
    expected = []
    with app.app_context():
        for priority in (100, 50, 0):
            rows = [
                Item(
                    source_id=source,
                    external_id=f"{priority}-{n}",
                    status="queued",
                    priority=priority,
                    created_at=same_time + timedelta(minutes=n // 4),
                )
                for n in range(23)
            ]
            db.session.add_all(rows)
            db.session.commit()
            expected += [row.id for row in sorted(rows, key=lambda r: (r.created_at, r.id))]
    user = make_user(app)
    pages = every_page(app, Queue.REVIEW, user, limit=10)
    assert [len(page) for page in pages] == [10] * 6 + [9]
    assert [item_id for page in pages for item_id in page] == expected


def test_backwards_pages_mirror_forwards_ones(app: Flask) -> None:
    source = make_source(app)
    for n in range(25):
        make_item(app, source, priority=n % 3, age_minutes=n)
    user = make_user(app)
    with app.app_context():
        first = queues.list_page(Queue.REVIEW, attach(user), limit=10)
        second = queues.list_page(Queue.REVIEW, attach(user), after=first.next_cursor, limit=10)
        back = queues.list_page(Queue.REVIEW, attach(user), before=second.prev_cursor, limit=10)
        assert [item.id for item in back.items] == [item.id for item in first.items]
        assert first.prev_cursor is None and back.prev_cursor is None
        assert second.prev_cursor is not None
        # An unreadable cursor is the first page, not an error.
        junk = queues.list_page(Queue.REVIEW, attach(user), after="%%not-a-cursor", limit=10)
        assert [item.id for item in junk.items] == [item.id for item in first.items]


def test_all_is_newest_first_and_decided_lists_decisions(app: Flask) -> None:
    source = make_source(app)
    lead = make_user(app, "lead")
    older = make_item(app, source, age_minutes=10)
    newer = make_item(app, source, age_minutes=1)
    assert page_ids(app, Queue.ALL, lead) == [newer, older]
    with app.app_context():
        user = attach(lead)
        decisions.decide(older, user, "approve", Actor.system())
        decisions.decide(newer, user, "remove", Actor.system(), category="spam")
        page = queues.list_page(Queue.DECIDED, user)
        assert [item.id for item in page.items] == [newer, older]
        assert page.decisions[newer].outcome == "remove"
        assert queues.counts(user)[Queue.DECIDED] == 2
        assert queues.decided_today(lead.id) == 2


def test_filters_combine(app: Flask) -> None:
    forum, chat = make_source(app, "Forum"), make_source(app, "Chat")
    spam = make_item(
        app,
        forum,
        uploader_id="u-9",
        uploader_name="Deals4You",
        context_text="Cheap watches, click here",
    )
    add_scan(
        app,
        spam,
        labels=[{"name": "spam", "score": 0.95}],
        matches=[{"bank_id": 7, "bank_name": "Spam", "labels": ["spam"], "distance": 3}],
    )
    nude = make_item(app, chat, context_text="holiday")
    add_scan(
        app, nude, scanner="nudenet", verdict="flag", labels=[{"name": "Nudity", "score": 0.6}]
    )
    plain = make_item(app, forum, age_minutes=3 * 24 * 60)
    add_scan(app, plain, scanner="nudenet", verdict="clear")
    user = make_user(app)

    def matching(**values: str) -> set[str]:
        with app.app_context():
            conditions, errors = Filters(**values).conditions()
            assert errors == []
            return {item.id for item in queues.list_page(Queue.ALL, attach(user), conditions).items}

    assert matching(source=str(forum)) == {spam, plain}
    assert matching(label="nudity") == {nude}
    assert matching(label="nudity", score="0.7") == set()
    assert matching(score="0.9") == {spam}
    assert matching(bank="any") == {spam}
    assert matching(bank="7") == {spam}
    assert matching(bank="8") == set()
    assert matching(scanner="nudenet") == {nude}  # flagged, not merely scanned
    assert matching(uploader="deals4") == {spam}
    assert matching(uploader="u-9", text="WATCHES") == {spam}
    assert matching(source=str(forum), text="holiday") == set()
    today = utcnow().date().isoformat()
    assert matching(date_from=today) == {spam, nude}
    assert matching(date_to=(utcnow() - timedelta(days=2)).date().isoformat()) == {plain}


def test_unreadable_filters_are_ignored_with_a_message(app: Flask) -> None:
    with app.app_context():
        conditions, errors = Filters(
            score="lots", date_from="yesterday", status="gone", source="forum"
        ).conditions()
    assert conditions == []
    assert len(errors) == 4
    assert any("0 to 1" in error for error in errors)
    assert any("2025-01-31" in error for error in errors)


def test_counts(app: Flask) -> None:
    source = make_source(app)
    me, colleague, lead = make_user(app), make_user(app), make_user(app, "lead")
    items = [make_item(app, source) for _ in range(5)]
    make_item(app, source, status="escalated")
    make_item(app, source, status="cleared")
    with app.app_context():
        claims.claim(items[0], attach(me))
        claims.claim(items[1], attach(colleague))
        mine = queues.counts(attach(me))
        assert mine == {Queue.REVIEW: 4, Queue.MINE: 1, Queue.DECIDED: 0, Queue.ALL: 7}
        assert queues.counts(attach(lead))[Queue.ESCALATED] == 1
        assert queues.oldest_waiting() is not None


def test_moderators_may_not_view_the_escalated_queue(app: Flask) -> None:
    with app.app_context():
        assert not queues.may_view(Queue.ESCALATED, attach(make_user(app)))
        assert queues.may_view(Queue.ESCALATED, attach(make_user(app, "lead")))
        assert Queue.ESCALATED not in queues.visible_queues(attach(make_user(app)))


def test_similar_images_are_exact_and_follow_new_and_deleted_items(app: Flask) -> None:
    from sqlalchemy import delete

    from app.services import similar

    app.config["SIMILAR_REFRESH_SECONDS"] = 0
    source = make_source(app)
    first = make_item(app, source, with_media=True, seed=11)
    twin = make_item(app, source, with_media=True, seed=11)
    make_item(app, source, with_media=True, seed=12)  # a different picture
    with app.app_context():
        item = db.session.get(Item, first)
        assert [(other.id, distance) for other, distance in similar.similar_items(item)] == [
            (twin, 0)
        ]
    late = make_item(app, source, with_media=True, seed=11)  # after the index was built
    with app.app_context():
        item = db.session.get(Item, first)
        assert {other.id for other, _ in similar.similar_items(item)} == {twin, late}
        db.session.execute(delete(Item).where(Item.id == twin))
        db.session.commit()
        assert [other.id for other, _ in similar.similar_items(item)] == [late]
        # Brute force agrees with the index for every stored item: nothing within 31 is missed.
        rows = db.session.execute(select(Item.id, Item.pdq)).all()
        for item_id, pdq in rows:
            expected = {
                other
                for other, other_pdq in rows
                if other != item_id and bin(int(pdq, 16) ^ int(other_pdq, 16)).count("1") <= 31
            }
            found = {other.id for other, _ in similar.similar_items(db.session.get(Item, item_id))}
            assert found == expected

"""The daily prune: old webhook ids, receipts, bank changes and login attempts go, recent ones stay,
and a process whose bank index was behind the pruned changes rebuilds rather than miss one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app.extensions import db
from app.models.bank import Bank, BankChange
from app.models.job import Job, JobStatus
from app.models.source import Source
from app.models.types import utcnow
from app.models.user import LoginAttempt
from app.models.webhook import ReceivedWebhook, WebhookReceipt
from app.services import bank_matching, banks, housekeeping
from app.services.audit import Actor
from app.services.banks import match_hashes
from app.services.pdq_index import PdqIndex
from app.services.webhooks import replay
from tests.api_helpers import make_source

ADMIN = Actor("user", "1", "admin@example.org")
PDQ = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"


@pytest.fixture
def app_config() -> dict[str, int]:
    return {"HOOK_REPLAY_RETENTION_DAYS": 30, "HOOK_RECEIPT_RETENTION_DAYS": 7}


def far_pdq(number: int) -> str:
    """A PDQ hash far (about 128 bits) from every other ``far_pdq`` and from ``PDQ``."""
    return f"{(int(PDQ, 16) ^ ((1 << 255) - 1) ^ (number * 0x9E3779B97F4A7C15)):064x}"


def matched(pdq: str) -> bool:
    return bool(match_hashes(sha256=None, md5=None, pdq=pdq, pdq_quality=100))


def add_pdq(bank: Bank, pdq: str) -> int:
    entry = banks.add_entry(bank, "pdq", pdq, ADMIN)
    db.session.commit()
    return entry.id


def age_bank_changes(days: float) -> None:
    """Make every change so far ``days`` old."""
    db.session.execute(update(BankChange).values(created_at=utcnow() - timedelta(days=days)))
    db.session.commit()


def change_ids() -> list[int]:
    return list(db.session.scalars(select(BankChange.id).order_by(BankChange.id)))


def test_old_webhook_ids_and_receipts_go_and_recent_ones_stay(app: Flask) -> None:
    source_id, _ = make_source(app)
    now = utcnow()
    with app.app_context():
        for delivery, age in (("old", 31.5), ("edge", 30.5), ("new", 1)):
            db.session.add(
                ReceivedWebhook(
                    source_id=source_id, delivery_id=delivery, received_at=now - timedelta(age)
                )
            )
        for event, age in (("old", 8), ("new", 6)):
            db.session.add(
                WebhookReceipt(
                    source_id=source_id,
                    event=event,
                    status="accepted",
                    http_status=202,
                    created_at=now - timedelta(age),
                )
            )
        db.session.commit()

        result = housekeeping.prune()

        assert (result.replay_ids, result.receipts) == (1, 1)
        source = db.session.get(Source, source_id)
        assert source is not None
        # Inside the 30-day window (plus a day's margin) a redelivery is still recognised.
        assert [replay.seen(source, d) for d in ("old", "edge", "new")] == [False, True, True]
        assert [r.event for r in replay.recent_receipts(source)] == ["new"]


def test_old_login_attempts_go_even_when_nobody_logs_in(app: Flask) -> None:
    with app.app_context():
        now = utcnow()
        for age in (timedelta(days=2), timedelta(minutes=5)):
            db.session.add(
                LoginAttempt(email="guess@example.org", ip="192.0.2.1", created_at=now - age)
            )
        db.session.commit()
        assert housekeeping.prune().login_attempts == 1
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 1


def test_old_bank_changes_go_but_recent_ones_and_the_newest_stay(app: Flask) -> None:
    with app.app_context():
        bank = banks.create_bank("CSAM", ADMIN, labels=["csam"])
        db.session.commit()
        for number in range(3):
            add_pdq(bank, far_pdq(number))
        age_bank_changes(2)
        recent = add_pdq(bank, far_pdq(10))
        before = change_ids()

        assert housekeeping.prune().bank_changes == len(before) - 1
        assert change_ids() == before[-1:]  # the recent row stays
        assert db.session.scalar(
            select(BankChange.entry_id).where(BankChange.id == before[-1])
        ) == (recent)

        age_bank_changes(2)  # now everything is old: the newest row still stays
        assert housekeeping.prune().bank_changes == 0
        assert change_ids() == before[-1:]
        assert matched(far_pdq(0)) and matched(far_pdq(10))


def test_a_matcher_behind_the_pruned_changes_rebuilds_and_sees_every_change(app: Flask) -> None:
    with app.app_context():
        bank = banks.create_bank("CSAM", ADMIN, labels=["csam"])
        db.session.commit()
        gone = add_pdq(bank, PDQ)
        assert matched(PDQ)  # this process's index is built; its cursor is the newest change
        behind = bank_matching.matcher().cursor

        add_pdq(bank, far_pdq(1))
        add_pdq(bank, far_pdq(2))
        banks.remove_entry(bank, gone, ADMIN)
        db.session.commit()
        age_bank_changes(2)
        assert housekeeping.prune().bank_changes > 0
        assert min(change_ids()) > behind + 1  # the changes this process needs are gone

        assert matched(far_pdq(1)) and matched(far_pdq(2))
        assert not matched(PDQ)
        assert bank_matching.matcher().cursor == max(change_ids())


def test_pruning_while_a_matcher_reads_the_log_misses_nothing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        bank = banks.create_bank("CSAM", ADMIN, labels=["csam"])
        db.session.commit()
        add_pdq(bank, PDQ)
        assert matched(PDQ)
        for number in range(1, 5):
            add_pdq(bank, far_pdq(number))
        # The matcher reads one change at a time; another process prunes after its first.
        monkeypatch.setattr(bank_matching, "CHANGE_BATCH", 1)
        real_add_many = PdqIndex.add_many
        pruned: list[int] = []

        def add_then_prune(self: PdqIndex, *args: object, **kwargs: object) -> object:
            added = real_add_many(self, *args, **kwargs)
            if not pruned:
                pruned.append(bank_matching.prune_changes(utcnow() + timedelta(days=2)))
            return added

        monkeypatch.setattr(PdqIndex, "add_many", add_then_prune)
        assert all(matched(far_pdq(number)) for number in range(1, 5))
        assert pruned and pruned[0] > 0


def test_the_daily_task_queues_one_job_however_many_consumers_run_it(app: Flask) -> None:
    housekeeping.schedule_prune()
    housekeeping.schedule_prune()  # a second consumer's schedule, minutes later
    with app.app_context():
        runs = db.session.scalars(select(Job).where(Job.name == housekeeping.PRUNE_JOB)).all()
        assert [job.status for job in runs] == [JobStatus.DONE]

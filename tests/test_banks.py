"""Banks and matching: what a scanner gets back from ``match_hashes`` for an image's hashes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask
from huey.consumer import Worker
from sqlalchemy import select

from app import create_app
from app.extensions import db, huey
from app.models.audit import AuditEvent
from app.models.bank import Bank, BankChange
from app.services import bank_matching, banks
from app.services.audit import Actor
from app.services.bank_matching import BankMatcher, matcher
from app.services.banks import BankError, match_hashes
from app.services.hashing import compute_hashes
from app.services.pdq_index import PdqIndex
from tests.conftest import make_test_config
from tests.imagegen import TESTDATA

ADMIN = Actor("user", "1", "admin@example.org")
PDQ_A = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"


def flip(pdq: str, bits: int, offset: int = 0) -> str:
    """``pdq`` with ``bits`` bits flipped, starting at bit ``offset``: at distance ``bits``."""
    value = int(pdq, 16)
    for bit in range(offset, offset + bits):
        value ^= 1 << bit
    return f"{value:064x}"


def make_bank(name: str = "CSAM", **options) -> Bank:
    bank = banks.create_bank(name, ADMIN, labels=options.pop("labels", ["csam"]), **options)
    db.session.commit()
    return bank


def add(bank: Bank, signal_type: str, signal: str, note: str = "") -> int:
    entry = banks.add_entry(bank, signal_type, signal, ADMIN, note=note)
    db.session.commit()
    return entry.id


def pdq_match(pdq: str, quality: int | None = 100) -> list[tuple[str, int]]:
    return [
        (m.bank_name, m.distance)
        for m in match_hashes(sha256=None, md5=None, pdq=pdq, pdq_quality=quality)
    ]


def test_a_pdq_within_the_threshold_matches_with_labels_and_note(app: Flask) -> None:
    with app.app_context():
        bank = make_bank(labels=["csam", "Known-Series"])
        entry_id = add(bank, "pdq", PDQ_A.upper(), note="case 17")
        [found] = match_hashes(sha256=None, md5=None, pdq=flip(PDQ_A, 12), pdq_quality=90)
        assert found.bank_name == "CSAM"
        assert found.labels == ("csam", "known-series")
        assert (found.signal_type, found.signal, found.distance) == ("pdq", PDQ_A, 12)
        assert (found.entry_id, found.note) == (entry_id, "case 17")
        assert pdq_match(flip(PDQ_A, 31)) == [("CSAM", 31)]
        assert pdq_match(flip(PDQ_A, 32)) == []


def test_sha256_and_md5_match_exactly_and_results_are_closest_first(app: Flask) -> None:
    with app.app_context():
        bank = make_bank()
        other = make_bank("Spam", labels=["spam"])
        add(bank, "sha256", "ab" * 32)
        add(other, "md5", "CD" * 16)
        add(other, "pdq", flip(PDQ_A, 3))
        found = match_hashes(sha256="AB" * 32, md5="cd" * 16, pdq=PDQ_A, pdq_quality=100)
        assert [(m.bank_name, m.signal_type, m.distance) for m in found] == [
            ("CSAM", "sha256", 0),
            ("Spam", "md5", 0),
            ("Spam", "pdq", 3),
        ]
        assert match_hashes(sha256="ab" * 31 + "ac", md5=None, pdq=None, pdq_quality=None) == []


def test_each_bank_applies_its_own_pdq_threshold(app: Flask) -> None:
    with app.app_context():
        strict = make_bank("Strict", pdq_threshold=10)
        loose = make_bank("Loose")
        add(strict, "pdq", PDQ_A)
        add(loose, "pdq", PDQ_A)
        assert pdq_match(flip(PDQ_A, 10)) == [("Loose", 10), ("Strict", 10)]
        assert pdq_match(flip(PDQ_A, 20)) == [("Loose", 20)]
        banks.update_bank(strict, ADMIN, pdq_threshold=25)
        db.session.commit()
        assert pdq_match(flip(PDQ_A, 20)) == [("Loose", 20), ("Strict", 20)]


def test_a_disabled_bank_matches_nothing_until_enabled(app: Flask) -> None:
    with app.app_context():
        bank = make_bank()
        add(bank, "pdq", PDQ_A)
        add(bank, "sha256", "ab" * 32)
        banks.update_bank(bank, ADMIN, enabled=False)
        db.session.commit()
        assert match_hashes(sha256="ab" * 32, md5=None, pdq=PDQ_A, pdq_quality=100) == []
        banks.update_bank(bank, ADMIN, enabled=True)
        db.session.commit()
        assert len(match_hashes(sha256="ab" * 32, md5=None, pdq=PDQ_A, pdq_quality=100)) == 2


def test_pdq_hashes_of_quality_below_50_are_not_matched(app: Flask) -> None:
    with app.app_context():
        bank = make_bank()
        add(bank, "pdq", PDQ_A)
        add(bank, "md5", "cd" * 16)
        assert pdq_match(PDQ_A, quality=49) == []
        assert pdq_match(PDQ_A, quality=50) == [("CSAM", 0)]
        assert pdq_match(PDQ_A, quality=None) == [("CSAM", 0)]  # unknown: the caller vouches
        found = match_hashes(sha256=None, md5="cd" * 16, pdq=PDQ_A, pdq_quality=10)
        assert [m.signal_type for m in found] == ["md5"]  # file hashes do not need quality


def test_a_negative_bank_match_suppresses_every_match(app: Flask) -> None:
    with app.app_context():
        positive = make_bank()
        spam = make_bank("Spam", labels=["spam"])
        negative = make_bank("Known false positives", labels=[], negative=True, pdq_threshold=8)
        add(positive, "pdq", PDQ_A)
        add(spam, "sha256", "ab" * 32)
        add(negative, "pdq", flip(PDQ_A, 5, offset=100))
        # Within the negative bank's own threshold (8): the item is known benign.
        assert match_hashes(sha256="ab" * 32, md5=None, pdq=PDQ_A, pdq_quality=100) == []
        # 5 + 9 = 14 bits from the negative entry: beyond 8, so the positives stand.
        item = flip(PDQ_A, 9, offset=200)
        assert pdq_match(item) == [("CSAM", 9)]
        # An exact negative hash suppresses too, whatever the PDQ.
        add(negative, "md5", "ef" * 16)
        assert match_hashes(sha256=None, md5="ef" * 16, pdq=item, pdq_quality=100) == []
        banks.update_bank(negative, ADMIN, enabled=False)
        db.session.commit()
        assert pdq_match(PDQ_A) == [("CSAM", 0)]


def test_added_and_removed_entries_are_matched_from_the_next_lookup(app: Flask) -> None:
    with app.app_context():
        bank = make_bank()
        assert pdq_match(PDQ_A) == []  # builds the (empty) index
        entry_id = add(bank, "pdq", PDQ_A)
        assert pdq_match(PDQ_A) == [("CSAM", 0)]
        assert banks.remove_entry(bank, entry_id, ADMIN) is not None
        db.session.commit()
        assert pdq_match(PDQ_A) == []
        assert db.session.get(Bank, bank.id).pdq_count == 0


def test_another_process_sees_changes_without_a_restart(app: Flask, instance_path: Path) -> None:
    """Two app instances on one database file: as the web server and a worker would be."""
    worker = create_app(make_test_config(instance_path))
    with app.app_context():
        bank_id = make_bank().id
    with worker.app_context():
        assert pdq_match(PDQ_A) == []  # the worker's index is built, empty
    with app.app_context():
        entry_id = add(db.session.get(Bank, bank_id), "pdq", PDQ_A)
    with worker.app_context():
        assert pdq_match(flip(PDQ_A, 7)) == [("CSAM", 7)]
        banks.remove_entry(db.session.get(Bank, bank_id), entry_id, ADMIN)
        add(db.session.get(Bank, bank_id), "pdq", flip(PDQ_A, 30, offset=20))
        db.session.commit()
    with app.app_context():
        assert pdq_match(PDQ_A) == [("CSAM", 30)]
        banks.update_bank(db.session.get(Bank, bank_id), ADMIN, enabled=False)
        db.session.commit()
    with worker.app_context():
        assert pdq_match(PDQ_A) == []
        assert matcher().cursor == db.session.scalar(
            select(BankChange.id).order_by(BankChange.id.desc()).limit(1)
        )
    with worker.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_bridge_photo_edits_match_and_unrelated_images_do_not(app: Flask) -> None:
    def hashes(path: str):
        return compute_hashes((TESTDATA / path).read_bytes())

    with app.app_context():
        bank = make_bank()
        original = hashes("bridge-mods/aaa-orig.jpg")
        add(bank, "pdq", original.pdq)
        for path in sorted((TESTDATA / "bridge-mods").glob("*.jpg")):
            found = hashes(f"bridge-mods/{path.name}")
            assert [
                (m.bank_name, m.signal)
                for m in match_hashes(
                    sha256=found.sha256, md5=found.md5, pdq=found.pdq, pdq_quality=found.pdq_quality
                )
            ] == [("CSAM", original.pdq)], path.name
        unrelated = [
            *(TESTDATA / "reg-test-input" / "labelme-subset").glob("*.jpg"),
            *(p for p in (TESTDATA / "misc-images").iterdir() if p.is_file()),
        ]
        assert len(unrelated) >= 10
        for path in unrelated:
            found = compute_hashes(path.read_bytes())
            assert (
                match_hashes(
                    sha256=found.sha256, md5=found.md5, pdq=found.pdq, pdq_quality=found.pdq_quality
                )
                == []
            ), path.name


def test_bad_names_labels_thresholds_and_hashes_are_refused_with_a_reason(app: Flask) -> None:
    with app.app_context():
        bank = make_bank()
        with pytest.raises(BankError, match="already exists"):
            make_bank("csam")
        with pytest.raises(BankError, match="from 0 to 31"):
            make_bank("Other", pdq_threshold=32)
        with pytest.raises(BankError, match="Label"):
            make_bank("Other", labels=["two words"])
        with pytest.raises(BankError, match="64 hexadecimal"):
            add(bank, "pdq", "ab" * 31)
        with pytest.raises(BankError, match="32 hexadecimal"):
            add(bank, "md5", "zz" * 16)
        with pytest.raises(BankError, match="Unknown hash type"):
            add(bank, "photodna", "ab" * 32)
        db.session.rollback()
        add(bank, "pdq", PDQ_A)
        with pytest.raises(BankError, match="already in CSAM"):
            add(bank, "pdq", PDQ_A.upper())


def test_changes_are_audited_without_hashes_and_logged_in_order(app: Flask) -> None:
    with app.app_context():
        bank = make_bank()
        entry_id = add(bank, "pdq", PDQ_A)
        banks.remove_entry(bank, entry_id, ADMIN)
        db.session.commit()
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert [e.action for e in events] == [
            "bank.created",
            "bank.entry_added",
            "bank.entry_removed",
        ]
        assert all(PDQ_A not in str(e.details) for e in events)
        changes = db.session.scalars(select(BankChange).order_by(BankChange.id)).all()
        assert [c.op for c in changes] == ["bank_update", "add", "remove"]
        assert changes[2].signal == PDQ_A


def test_lookups_in_threads_stay_consistent_while_entries_change(app: Flask) -> None:
    """Web threads and Huey workers share one matcher; lookups race with changes."""
    with app.app_context():
        bank_id = make_bank().id
        add(db.session.get(Bank, bank_id), "pdq", PDQ_A)
    failures: list[str] = []
    stop = threading.Event()

    def looker() -> None:
        with app.app_context():
            while not stop.is_set():
                if pdq_match(PDQ_A) != [("CSAM", 0)]:
                    failures.append("stable entry not matched")
            db.session.remove()

    def changer() -> None:
        with app.app_context():
            bank = db.session.get(Bank, bank_id)
            for k in range(15):
                pdq = flip(PDQ_A, 40 + k, offset=8)  # far from PDQ_A
                entry_id = add(bank, "pdq", pdq)
                if ("CSAM", 0) not in pdq_match(pdq):
                    failures.append(f"entry {entry_id} not matched after adding")
                banks.remove_entry(bank, entry_id, ADMIN)
                db.session.commit()
                if pdq_match(pdq):
                    failures.append(f"entry {entry_id} matched after removing")
            db.session.remove()

    threads = [threading.Thread(target=looker) for _ in range(2)]
    for thread in threads:
        thread.start()
    changer_thread = threading.Thread(target=changer)
    changer_thread.start()
    changer_thread.join()
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_starting_consumer_builds_the_index_so_the_first_lookup_does_not(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python wsgi.py and flask worker: the index is built as the consumer starts, not later."""
    with app.app_context():
        add(make_bank(), "pdq", PDQ_A)
    Worker(huey, threading.Event(), 0.1, 1.0, 1.15).initialize()  # what each consumer thread does
    Worker(huey, threading.Event(), 0.1, 1.0, 1.15).initialize()  # a second thread: no 2nd build
    app.extensions[bank_matching.WARM_UP_KEY].join(30)

    def no_second_build(*args: object) -> None:
        raise AssertionError("the first lookup rebuilt the index")

    monkeypatch.setattr(BankMatcher, "_load", no_second_build)
    with app.app_context():
        assert pdq_match(flip(PDQ_A, 3)) == [("CSAM", 3)]


def test_a_failed_start_up_build_leaves_the_build_to_the_first_lookup(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with app.app_context():
        add(make_bank(), "pdq", PDQ_A)
    real_build = PdqIndex.build
    calls = []

    def failing_once(*args: object, **kwargs: object) -> PdqIndex:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk on fire")
        return real_build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PdqIndex, "build", failing_once)
    thread = bank_matching.build_in_background(app)
    assert thread is not None
    thread.join(30)
    assert "could not build the PDQ index at start-up (disk on fire)" in caplog.text
    with app.app_context():
        assert pdq_match(PDQ_A) == [("CSAM", 0)]
    assert len(calls) == 2


def test_a_web_only_server_builds_the_index_as_it_starts(app: Flask) -> None:
    """EMBEDDED_WORKER=false (scale-out web processes): no consumer there to build it."""
    from app.runner import start_background_work

    with app.app_context():
        add(make_bank(), "pdq", PDQ_A)
    app.config["EMBEDDED_WORKER"] = False
    assert start_background_work(app) is None
    app.extensions[bank_matching.WARM_UP_KEY].join(30)
    index = bank_matching.matcher(app).index
    assert index is not None and len(index) == 1

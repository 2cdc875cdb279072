"""Hash exchanges fill banks from their (fake, loopback) servers through threatexchange's clients.

Every hash here is synthetic: PDQ hashes of generated pictures, or random hex.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from app import create_app
from app.extensions import db
from app.models.audit import AuditEvent
from app.models.bank import BankChange, BankEntry
from app.models.exchange import Exchange
from app.models.job import Job
from app.models.types import utcnow
from app.services import banks, exchange_fetch, exchange_schedule, exchanges
from app.services.audit import Actor
from app.services.banks import match_hashes
from app.services.hashing import compute_hashes
from tests.conftest import make_test_config
from tests.fakes import FakeService, running, stopncii
from tests.fakes import ncmec_hashsharing as ncmec
from tests.fakes import tech_against_terrorism as tat
from tests.fakes import threatexchange_api as te
from tests.imagegen import encode, scene

ADMIN = Actor("user", "1", "admin@example.org")
LOOPBACK = ["127.0.0.0/8"]


def picture_pdq(seed: int) -> str:
    """The PDQ hash of a generated picture."""
    pdq = compute_hashes(encode(scene(seed=seed))).pdq
    assert pdq is not None
    return pdq


def random_hex(characters: int) -> str:
    return secrets.token_hex(characters // 2)


def setup_exchange(
    app: Flask, kind: str, settings: dict[str, Any], credentials: dict[str, str], **extra: Any
) -> int:
    """A bank and an exchange that fills it; returns the exchange's id."""
    with app.app_context():
        bank = banks.create_bank(f"{kind} bank", ADMIN, labels=["test"])
        exchange = exchanges.create_exchange(
            f"{kind} exchange",
            kind,
            bank.id,
            ADMIN,
            settings=settings,
            credentials=credentials,
            **extra,
        )
        db.session.commit()
        return exchange.id


def fetch(app: Flask, exchange_id: int) -> dict[str, Any]:
    """Fetch once, in this process; what the run and the exchange say afterwards."""
    with app.app_context():
        exchange = db.session.get(Exchange, exchange_id)
        assert exchange is not None
        run = exchange_fetch.fetch_now(exchange, ADMIN, "cli")
        return {
            "status": run.status,
            "added": run.added,
            "removed": run.removed,
            "skipped": run.skipped,
            "error": run.error,
            "total": exchange.total_count,
            "last_error": exchange.last_error,
        }


def bank_hashes(app: Flask, exchange_id: int) -> list[tuple[str, str]]:
    """Every (type, hash) in the exchange's bank, sorted."""
    with app.app_context():
        bank_id = db.session.get(Exchange, exchange_id).bank_id  # type: ignore[union-attr]
        rows = db.session.execute(
            select(BankEntry.signal_type, BankEntry.signal).where(BankEntry.bank_id == bank_id)
        )
        return sorted(tuple(row) for row in rows)  # type: ignore[misc]


def matching_banks(app: Flask, pdq: str) -> list[str]:
    with app.app_context():
        found = match_hashes(sha256=None, md5=None, pdq=pdq, pdq_quality=100)
        return [match.bank_name for match in found]


def test_stopncii_fills_a_bank_that_matches_and_a_withdrawal_takes_the_hash_out(
    app: Flask,
) -> None:
    pdq = picture_pdq(1)
    others = [random_hex(64) for _ in range(2)]
    with running(stopncii.FakeStopNCII()) as fake:
        for value in [pdq, *others]:
            fake.publish(value)
        fake.publish(random_hex(32), "VideoMD5")
        exchange_id = setup_exchange(
            app,
            "stopncii",
            {"base_url": f"{fake.url}/v1"},
            {
                "fetch_function_key": stopncii.FETCH_KEY,
                "subscription_key": stopncii.SUBSCRIPTION_KEY,
            },
        )
        first = fetch(app, exchange_id)
        assert (first["status"], first["added"], first["skipped"], first["total"]) == (
            "succeeded",
            3,
            1,
            3,
        )
        assert matching_banks(app, pdq) == ["stopncii bank"]

        fake.withdraw(pdq)
        second = fetch(app, exchange_id)
    assert (second["added"], second["removed"], second["total"]) == (0, 1, 2)
    assert matching_banks(app, pdq) == []
    assert bank_hashes(app, exchange_id) == sorted(("pdq", value) for value in others)


def test_an_interrupted_fetch_resumes_from_its_checkpoint_without_duplicates(app: Flask) -> None:
    values = sorted(random_hex(64) for _ in range(6))
    with running(stopncii.FakeStopNCII(page_size=2)) as fake:
        for value in values:
            fake.publish(value)
        exchange_id = setup_exchange(
            app,
            "stopncii",
            {"base_url": f"{fake.url}/v1"},
            {
                "fetch_function_key": stopncii.FETCH_KEY,
                "subscription_key": stopncii.SUBSCRIPTION_KEY,
            },
        )
        fake.upcoming = ["ok", "ok", "malformed"]  # the third page is garbage
        first = fetch(app, exchange_id)
        assert first["status"] == "failed" and first["added"] == 4
        assert "could not read" in first["last_error"]
        assert len(bank_hashes(app, exchange_id)) == 4
        asked_before = len(fake.requests)

        second = fetch(app, exchange_id)
        resumed_at = int(fake.requests[asked_before].args["startTimestamp"])
    assert second["status"] == "succeeded" and second["last_error"] is None
    assert resumed_at > 10  # from the stored checkpoint, not from the beginning
    assert bank_hashes(app, exchange_id) == [("pdq", value) for value in values]
    with app.app_context():
        adds = db.session.scalar(
            select(func.count()).select_from(BankChange).where(BankChange.op == "add")
        )
    assert adds == 6  # every hash added once, none twice


def test_ncmec_images_fill_the_bank_and_deleted_entries_leave_it(app: Flask) -> None:
    pdq, md5, shared = picture_pdq(2), random_hex(32), random_hex(64)
    day_ago = int(time.time()) - 86400
    with running(ncmec.FakeNCMEC(page_size=2)) as fake:
        fake.publish(
            ncmec.Entry("img-1", day_ago, {"pdq": pdq, "md5": md5, "sha1": random_hex(40)})
        )
        fake.publish(ncmec.Entry("img-2", day_ago + 600, {"pdq": shared}, member_id=42))
        fake.publish(ncmec.Entry("img-3", day_ago + 1200, {"pdq": shared}, member_id=43))
        fake.publish(ncmec.Entry("img-4", day_ago + 1800, {"pdna": "ab" * 20}))
        fake.publish(ncmec.Entry("vid-1", day_ago + 2400, {"md5": random_hex(32)}, kind="video"))
        exchange_id = setup_exchange(
            app,
            "ncmec",
            {"environment": "test_NGO", "base_url": fake.url},
            {"user": ncmec.USER, "password": ncmec.PASSWORD},
        )
        first = fetch(app, exchange_id)
        assert (first["status"], first["added"], first["skipped"]) == ("succeeded", 3, 2)
        assert matching_banks(app, pdq) == ["ncmec bank"]

        seen_up_to = fake.windows[-1][1]  # the next fetch starts where this one ended
        for entry_id in ("img-1", "img-2"):
            fake.publish(ncmec.Entry(entry_id, seen_up_to, deleted=True))
        time.sleep(1.1)  # NCMEC's time windows are whole seconds
        second = fetch(app, exchange_id)
    assert (second["status"], second["removed"]) == ("succeeded", 2)
    assert matching_banks(app, pdq) == []
    assert bank_hashes(app, exchange_id) == [("pdq", shared)]  # img-3 still has it


def test_tech_against_terrorism_keeps_image_hashes_and_follows_deletions(app: Flask) -> None:
    pdq, md5, sha256 = picture_pdq(3), random_hex(32), random_hex(64)
    with running(tat.FakeTAT(page_size=2)) as fake:
        pdq_id = fake.publish(pdq, "PDQ", "jpg")
        fake.publish(md5, "MD5", "png")
        fake.publish(sha256, "SHA256", "jpeg")
        fake.publish(random_hex(32), "MD5", "mp4")  # a video
        exchange_id = setup_exchange(
            app, "tat", {"base_url": fake.url}, {"username": tat.USERNAME, "password": tat.PASSWORD}
        )
        first = fetch(app, exchange_id)
        assert (first["status"], first["added"], first["skipped"]) == ("succeeded", 3, 1)
        assert matching_banks(app, pdq) == ["tat bank"]

        fake.publish(pdq, "PDQ", "jpg", deleted=True, entry_id=pdq_id)
        second = fetch(app, exchange_id)
    assert (second["added"], second["removed"]) == (0, 1)
    assert bank_hashes(app, exchange_id) == sorted([("md5", md5), ("sha256", sha256)])


def test_threatexchange_privacy_group_fills_the_bank_and_tombstones_empty_it(app: Flask) -> None:
    pdq, md5 = picture_pdq(4), random_hex(32)
    with running(te.FakeThreatExchange(page_size=2)) as fake:
        pdq_id = fake.publish(pdq, "HASH_PDQ")
        fake.publish(md5, "HASH_MD5", tags=("media_type_photo",))
        fake.publish(random_hex(32), "HASH_MD5", tags=("media_type_video",))
        fake.publish("https://example.com/x", "URI")
        fake.publish(random_hex(64), "HASH_PDQ", status="NON_MALICIOUS")  # a false positive
        exchange_id = setup_exchange(
            app,
            "threatexchange",
            {"privacy_group": str(te.PRIVACY_GROUP), "base_url": f"{fake.url}/{te.VERSION}"},
            {"api_token": te.TOKEN},
        )
        first = fetch(app, exchange_id)
        assert (first["status"], first["added"], first["skipped"]) == ("succeeded", 2, 3)
        assert matching_banks(app, pdq) == ["threatexchange bank"]

        nothing_new = fetch(app, exchange_id)  # an empty page is no error
        assert (nothing_new["status"], nothing_new["added"]) == ("succeeded", 0)

        fake.delete(pdq_id)
        second = fetch(app, exchange_id)
    assert (second["removed"], second["total"]) == (1, 1)
    assert matching_banks(app, pdq) == []


class ListHost(FakeService):
    """Serves one hash list at /list.txt."""

    def __init__(self) -> None:
        super().__init__()
        self.body = ""

    def answer(self, request: Request) -> Response:
        return Response(self.body, 200, content_type="text/plain")


def test_a_hash_list_at_a_url_is_read_in_full_and_lines_removed_leave_the_bank(
    app: Flask,
) -> None:
    app.config["FETCH_ALLOW_NETWORKS"] = LOOPBACK
    pdq, md5 = picture_pdq(5), random_hex(32)
    with running(ListHost()) as host:
        host.body = f"# synthetic\npdq {pdq}\nmd5 {md5}\nvideo_md5 {random_hex(32)}\n"
        exchange_id = setup_exchange(app, "hash_list", {"location": f"{host.url}/list.txt"}, {})
        first = fetch(app, exchange_id)
        assert (first["status"], first["added"], first["skipped"]) == ("succeeded", 2, 1)
        assert matching_banks(app, pdq) == ["hash_list bank"]

        host.body = f"md5 {md5}\n"
        second = fetch(app, exchange_id)
    assert (second["added"], second["removed"], second["total"]) == (0, 1, 1)
    assert matching_banks(app, pdq) == []


def test_a_hash_list_file_is_read_from_the_hash_lists_folder_only(app: Flask) -> None:
    folder = Path(app.instance_path) / "hash-lists"
    folder.mkdir()
    md5 = random_hex(32)
    (folder / "list.csv").write_text(f"signal_type,signal,note\nmd5,{md5},synthetic\n")
    exchange_id = setup_exchange(app, "hash_list", {"location": "list.csv"}, {})
    assert fetch(app, exchange_id)["added"] == 1
    assert bank_hashes(app, exchange_id) == [("md5", md5)]
    with app.app_context():
        try:
            exchanges.update_exchange(
                db.session.get(Exchange, exchange_id), ADMIN, settings={"location": "../secret"}
            )
        except exchanges.ExchangeError as error:
            assert "file name" in error.errors["location"]
        else:
            raise AssertionError("a path out of the hash-lists folder was accepted")


def test_moving_an_exchange_to_another_bank_moves_its_hashes(app: Flask) -> None:
    folder = Path(app.instance_path) / "hash-lists"
    folder.mkdir()
    md5 = random_hex(32)
    (folder / "list.txt").write_text(f"md5 {md5}\n")
    exchange_id = setup_exchange(app, "hash_list", {"location": "list.txt"}, {})
    fetch(app, exchange_id)
    with app.app_context():
        exchange = db.session.get(Exchange, exchange_id)
        old_bank = banks.find_bank(exchange.bank_id)  # type: ignore[union-attr]
        new_bank = banks.create_bank("other", ADMIN)
        exchanges.update_exchange(exchange, ADMIN, bank=new_bank.id)  # type: ignore[arg-type]
        db.session.commit()
        assert old_bank is not None and old_bank.md5_count == 0
    assert fetch(app, exchange_id)["added"] == 1
    assert bank_hashes(app, exchange_id) == [("md5", md5)]  # in the new bank


def test_bad_credentials_are_reported_without_the_secret(app: Flask) -> None:
    wrong_token = f"{te.APP_ID}|wrong-secret-0123456789abcdef"
    with running(te.FakeThreatExchange()) as fake:
        exchange_id = setup_exchange(
            app,
            "threatexchange",
            {"privacy_group": str(te.PRIVACY_GROUP), "base_url": f"{fake.url}/{te.VERSION}"},
            {"api_token": wrong_token},
        )
        result = fetch(app, exchange_id)
    assert result["status"] == "failed"
    assert "refused the credentials" in result["last_error"]
    assert "OAuthException" in result["last_error"]
    assert "wrong-secret" not in result["last_error"]
    with app.app_context():
        events = db.session.scalars(select(AuditEvent)).all()
        assert all("wrong-secret" not in json.dumps(event.details) for event in events)
        assert [e.action for e in events][-1] == "exchange.fetch_failed"


def test_wrong_keys_server_errors_and_garbage_are_each_explained(app: Flask) -> None:
    with running(tat.FakeTAT()) as fake:
        fake.publish(random_hex(64))
        exchange_id = setup_exchange(
            app, "tat", {"base_url": fake.url}, {"username": tat.USERNAME, "password": "nope"}
        )
        refused = fetch(app, exchange_id)["last_error"]
        assert "refused the request: HTTP 400" in refused and "Unable to log in" in refused
    with running(te.FakeThreatExchange()) as fake:
        fake.publish(random_hex(64))
        exchange_id = setup_exchange(
            app,
            "threatexchange",
            {"privacy_group": str(te.PRIVACY_GROUP), "base_url": f"{fake.url}/{te.VERSION}"},
            {"api_token": te.TOKEN},
        )
        fake.upcoming = ["500"]
        assert "server error (HTTP 500)" in fetch(app, exchange_id)["last_error"]
        assert fetch(app, exchange_id)["last_error"] is None  # the next fetch recovers
    with running(ncmec.FakeNCMEC()) as fake:
        fake.upcoming = ["malformed"]
        with app.app_context():
            exchange = exchanges.create_exchange(
                "garbled",
                "ncmec",
                "tat bank",
                ADMIN,
                settings={"environment": "NGO", "base_url": fake.url},
                credentials={"user": ncmec.USER, "password": ncmec.PASSWORD},
            )
            db.session.commit()
            exchange_id = exchange.id
        assert "could not read (ParseError)" in fetch(app, exchange_id)["last_error"]


def test_the_schedule_queues_only_exchanges_that_are_due(instance_path: Path) -> None:
    app = create_app(make_test_config(instance_path, HUEY_IMMEDIATE=False))
    with app.app_context():
        db.create_all()
    try:
        ids = {
            name: setup_exchange_named(app, name, **extra)
            for name, extra in {
                "never fetched": {},
                "fetched recently": {"last_run_at": utcnow()},
                "fetched long ago": {"last_run_at": utcnow() - timedelta(minutes=61)},
                "more to fetch": {"last_run_at": utcnow(), "more_to_fetch": True},
                "disabled": {"enabled": False},
                "being fetched": {"fetch_claimed_at": utcnow()},
            }.items()
        }
        with app.app_context():
            queued = exchange_schedule.enqueue_due()
            again = exchange_schedule.enqueue_due()  # the next minute: those are still queued
            jobs = db.session.scalars(select(Job).where(Job.name == "exchange.fetch")).all()
        expected = {ids["never fetched"], ids["fetched long ago"], ids["more to fetch"]}
        assert set(queued) == expected and again == []
        assert {job.args[0] for job in jobs} == expected
        assert all(job.args[1] == "schedule" and job.status == "queued" for job in jobs)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def setup_exchange_named(app: Flask, name: str, **columns: Any) -> int:
    """An exchange of a hash list (nothing is fetched here) with some columns set directly."""
    with app.app_context():
        bank = banks.find_bank("scheduled") or banks.create_bank("scheduled", ADMIN)
        exchange = exchanges.create_exchange(
            name,
            "hash_list",
            bank.id,
            ADMIN,
            settings={"location": "list.txt"},
            credentials={},
            enabled=columns.pop("enabled", True),
        )
        for column, value in columns.items():
            setattr(exchange, column, value)
        db.session.commit()
        return exchange.id


def test_a_hash_a_person_added_stays_when_the_exchange_drops_it(app: Flask) -> None:
    app.config["FETCH_ALLOW_NETWORKS"] = LOOPBACK
    by_hand, listed = random_hex(64), random_hex(64)
    with running(ListHost()) as host:
        host.body = f"pdq {by_hand}\npdq {listed}\n"
        exchange_id = setup_exchange(app, "hash_list", {"location": f"{host.url}/list.txt"}, {})
        with app.app_context():
            bank_id = db.session.get(Exchange, exchange_id).bank_id  # type: ignore[union-attr]
            banks.add_entry(banks.find_bank(bank_id), "pdq", by_hand, ADMIN)  # type: ignore[arg-type]
            db.session.commit()
        assert fetch(app, exchange_id)["added"] == 1  # the other one was there already
        host.body = ""
        assert fetch(app, exchange_id)["removed"] == 1
    assert bank_hashes(app, exchange_id) == [("pdq", by_hand)]

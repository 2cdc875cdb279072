"""The audit log: its hash chain shows tampering, and admins can read, filter and verify it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, text

from app.extensions import db
from app.models.audit import AuditEvent, AuditVerification
from app.models.job import Job, JobStatus
from app.services import audit, audit_verification
from app.services.audit import Actor, record, verify_chain
from tests.conftest import csrf_token
from tests.helpers_ui import create_user, login_as

ALICE = Actor("user", "1", "alice@example.org", "192.0.2.10")
BOB = Actor("user", "2", "bob@example.org", "198.51.100.7")
SOURCE = Actor("source", "5", "forum", "203.0.113.9")


def record_events(app: Flask, count: int = 5) -> None:
    """``count`` events from a few actors, committed."""
    with app.app_context():
        for number in range(1, count + 1):
            actor = (ALICE, BOB, SOURCE)[number % 3]
            record(
                f"test.event{number}",
                actor,
                target_type="item",
                target_id=f"item-{number}",
                details={"number": number},
            )
        db.session.commit()


def record_mixed(app: Flask) -> None:
    """Events of different kinds, for the filters."""
    with app.app_context():
        record("user.invited", ALICE, target_type="user", target_id="9", details={"role": "lead"})
        record(
            "item.decided", BOB, target_type="item", target_id="abc", details={"decision": "remove"}
        )
        record("item.revealed", BOB, target_type="item", target_id="def", details={})
        record("source.created", ALICE, target_type="source", target_id="5", details={})
        record("item.received", SOURCE, target_type="item", target_id="abc", details={})
        db.session.commit()


def tamper(app: Flask, sql: str) -> None:
    with app.app_context():
        db.session.execute(text(sql))
        db.session.commit()


def breaks(app: Flask) -> list[tuple[int, str]]:
    with app.app_context():
        return [(found.seq, found.reason) for found in verify_chain()]


def shown_seqs(html: str) -> list[int]:
    """The event numbers in the table, top to bottom."""
    return [int(seq) for seq in re.findall(r'<td class="num">(\d+)</td>', html)]


def admin_client(app: Flask, client: FlaskClient) -> FlaskClient:
    login_as(client, create_user(app, "admin", email="root@example.org"))
    return client


# ------------------------------------------------------------------ the chain


def test_an_untouched_log_verifies(app: Flask) -> None:
    record_events(app, 5)
    assert breaks(app) == []


def test_editing_an_event_is_detected(app: Flask) -> None:
    record_events(app, 5)
    tamper(app, "UPDATE audit_events SET details = '{\"number\": 99}' WHERE seq = 3")
    assert breaks(app) == [(3, "content was changed after it was written")]


def test_deleting_an_event_in_the_middle_is_detected(app: Flask) -> None:
    record_events(app, 5)
    tamper(app, "DELETE FROM audit_events WHERE seq = 3")
    found = breaks(app)
    assert (3, "events 3–3 are missing") in found
    assert (4, "does not link to the event before it") in found


def test_deleting_the_last_event_is_detected(app: Flask) -> None:
    record_events(app, 5)
    tamper(app, "DELETE FROM audit_events WHERE seq = 5")
    assert breaks(app) == [(5, "the log ends at 4 but was written up to 5")]


def test_cli_verify_passes_then_names_the_broken_event(app: Flask, runner: FlaskCliRunner) -> None:
    record_events(app, 5)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0
    assert "intact: 5 events" in result.output

    tamper(app, "UPDATE audit_events SET actor_label = 'someone else' WHERE seq = 2")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code != 0
    assert "event 2: content was changed" in result.output


def test_secrets_in_details_are_redacted_before_they_reach_the_page(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        record(
            "user.updated",
            ALICE,
            target_type="user",
            target_id="1",
            details={
                "password": "hunter2",
                "api_token": "tok_live_123",
                "nested": {"totp_secret": "JBSWY3DP"},
                "token_count": 3,
            },
        )
        db.session.commit()
    html = admin_client(app, client).get("/admin/audit").get_data(as_text=True)
    for secret in ("hunter2", "tok_live_123", "JBSWY3DP"):
        assert secret not in html
    assert "password=[redacted]" in html
    assert "token_count=3" in html


# ------------------------------------------------------------------ the page


def test_admin_reads_events_newest_first(app: Flask, client: FlaskClient) -> None:
    record_mixed(app)
    html = admin_client(app, client).get("/admin/audit").get_data(as_text=True)
    assert shown_seqs(html) == [5, 4, 3, 2, 1]
    assert "item.decided" in html
    assert "bob@example.org" in html
    assert "198.51.100.7" in html
    assert "decision=remove" in html
    stamp = re.search(r'<time datetime="([^"]+)">', html)
    assert stamp and stamp.group(1).endswith("Z")
    assert abs(datetime.fromisoformat(stamp.group(1)) - datetime.now(UTC)) < timedelta(minutes=5)


def test_filters_narrow_the_list_and_combine(app: Flask, client: FlaskClient) -> None:
    record_mixed(app)
    admin_client(app, client)

    def seqs(query: str) -> list[int]:
        return shown_seqs(client.get(f"/admin/audit?{query}").get_data(as_text=True))

    assert seqs("action=item.") == [5, 3, 2]
    assert seqs("actor=bob") == [3, 2]
    assert seqs("actor=bob&action=item.rev") == [3]
    assert seqs("target_type=item&target_id=abc") == [5, 2]
    assert seqs("actor=source") == [5]  # by actor type
    assert seqs("action=%25") == []  # "%" is a character, not a wildcard
    today = datetime.now(UTC).date()
    assert seqs(f"date_from={today}&date_to={today}") == [5, 4, 3, 2, 1]
    assert seqs(f"date_to={today - timedelta(days=1)}") == []


def test_a_bad_date_is_explained_not_an_error(app: Flask, client: FlaskClient) -> None:
    record_mixed(app)
    response = admin_client(app, client).get("/admin/audit?date_from=yesterday&actor=alice")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "use a date like 2025-01-31" in html
    assert shown_seqs(html) == [4, 1]  # the other filter still applies


def test_pages_of_fifty_by_cursor(app: Flask, client: FlaskClient) -> None:
    record_events(app, 120)
    admin_client(app, client)
    first = client.get("/admin/audit?action=test.").get_data(as_text=True)
    assert shown_seqs(first) == list(range(120, 70, -1))
    older = re.search(r'<a class="button" rel="next" href="([^"]+)"', first)
    assert older and "before=71" in older.group(1) and "action=test." in older.group(1)
    assert 'rel="prev"' not in first

    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert shown_seqs(second) == list(range(70, 20, -1))
    newer = re.search(r'<a class="button" rel="prev" href="([^"]+)"', second)
    assert newer and "before" not in newer.group(1)

    third = client.get("/admin/audit?action=test.&before=21").get_data(as_text=True)
    assert shown_seqs(third) == list(range(20, 0, -1))
    assert 'rel="next"' not in third
    newer = re.search(r'<a class="button" rel="prev" href="([^"]+)"', third)
    assert newer and "before=71" in newer.group(1)


def test_htmx_gets_only_the_rows(app: Flask, client: FlaskClient) -> None:
    record_mixed(app)
    response = admin_client(app, client).get(
        "/admin/audit?actor=alice", headers={"HX-Request": "true"}
    )
    html = response.get_data(as_text=True)
    assert "<html" not in html and "site-nav" not in html and "<form" not in html
    assert shown_seqs(html) == [4, 1]
    assert "HX-Request" in response.headers["Vary"]


def test_moderators_and_leads_may_not_read_the_log(app: Flask, client: FlaskClient) -> None:
    for role in ("moderator", "lead"):
        login_as(client, create_user(app, role))
        assert client.get("/admin/audit").status_code == 403
        assert client.get("/admin/audit.csv").status_code == 403
        token = csrf_token(client, "/")
        assert client.post("/admin/audit/verify", data={"csrf_token": token}).status_code == 403


def test_strangers_are_sent_to_log_in(client: FlaskClient) -> None:
    response = client.get("/admin/audit")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_verify_button_reports_an_intact_log_and_is_itself_audited(
    app: Flask, client: FlaskClient
) -> None:
    record_events(app, 4)
    admin_client(app, client)
    token = csrf_token(client, "/admin/audit")
    response = client.post("/admin/audit/verify", data={"csrf_token": token})
    assert response.status_code == 303
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Audit log intact: 4 events verified." in html
    with app.app_context():
        last = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last is not None
        assert (last.action, last.actor_label) == ("audit.verified", "root@example.org")
        assert last.details["intact"] is True


def test_verify_button_lists_each_break(app: Flask, client: FlaskClient) -> None:
    record_events(app, 6)
    tamper(app, "UPDATE audit_events SET target_id = 'other' WHERE seq = 2")
    tamper(app, "DELETE FROM audit_events WHERE seq = 4")
    admin_client(app, client)
    token = csrf_token(client, "/admin/audit")
    response = client.post("/admin/audit/verify", headers={"X-CSRFToken": token})
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The audit log does not verify: 3 breaks found." in html
    assert "Event 2: content was changed after it was written." in html
    assert "Event 4: events 4–4 are missing." in html
    assert "Event 5: does not link to the event before it." in html


def test_verify_needs_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    record_events(app, 2)
    response = admin_client(app, client).post("/admin/audit/verify")
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit.verified"))
            is None
        )


def test_verify_runs_as_a_durable_job_and_htmx_gets_its_result(
    app: Flask, client: FlaskClient
) -> None:
    record_events(app, 3)
    admin_client(app, client)
    token = csrf_token(client, "/admin/audit")
    response = client.post(
        "/admin/audit/verify", headers={"X-CSRFToken": token, "HX-Request": "true"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert 'id="audit-verification"' in html
    assert "Audit log intact: 3 events verified." in html
    assert "hx-trigger" not in html  # finished: nothing to poll
    with app.app_context():
        job = db.session.scalars(select(Job).where(Job.name == "audit.verify")).one()
        assert job.status == JobStatus.DONE
        verification = db.session.scalars(select(AuditVerification)).one()
        assert (verification.status, verification.events_checked) == ("intact", 3)
        assert verification.job_id == job.id


def start_check(app: Flask, status: str = "running", checked: int = 0, total: int = 0) -> int:
    """A check in progress, as a worker would have left it mid-walk."""
    with app.app_context():
        verification = AuditVerification(
            status=status,
            actor_type="user",
            actor_label="root@example.org",
            events_checked=checked,
            events_total=total,
        )
        db.session.add(verification)
        db.session.commit()
        return verification.id


def test_a_running_check_shows_its_progress_until_it_finishes(
    app: Flask, client: FlaskClient
) -> None:
    record_events(app, 4)
    check = start_check(app, checked=2, total=4)
    admin_client(app, client)
    assert "Checked 2 of 4 events (50 %)" in client.get("/admin/audit").get_data(as_text=True)
    url = f"/admin/audit/verifications/{check}"
    polled = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f'hx-get="{url}"' in polled and 'hx-trigger="every 2s"' in polled
    assert "<html" not in polled

    with app.app_context():
        audit_verification.verify(check)  # the worker finishes the walk
    polled = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Audit log intact: 4 events verified." in polled
    assert "hx-trigger" not in polled
    page = client.get(url).get_data(as_text=True)  # without htmx: a page of its own
    assert "<html" in page and "Audit log intact: 4 events verified." in page
    assert client.get("/admin/audit/verifications/999").status_code == 404


def test_a_second_click_while_a_check_runs_starts_no_other(app: Flask, client: FlaskClient) -> None:
    record_events(app, 2)
    start_check(app, status="queued")
    admin_client(app, client)
    token = csrf_token(client, "/admin/audit")
    response = client.post("/admin/audit/verify", data={"csrf_token": token})
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "A check of the chain is already running" in html
    assert "Waiting for a worker to start the check." in html
    again = client.post(
        "/admin/audit/verify", headers={"X-CSRFToken": token, "HX-Request": "true"}
    ).get_data(as_text=True)
    assert "A check of the chain is already running" in again and "hx-swap-oob" in again
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditVerification)) == 1
        assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_check_whose_job_gave_up_says_so_and_can_be_started_again(
    app: Flask, client: FlaskClient
) -> None:
    record_events(app, 2)
    check = start_check(app)
    with app.app_context():
        job = Job(name="audit.verify", args=[check], status=JobStatus.FAILED)
        job.error = "OperationalError: database is locked"
        db.session.add(job)
        db.session.flush()
        db.session.get(AuditVerification, check).job_id = job.id
        db.session.commit()
    admin_client(app, client)
    html = client.get(f"/admin/audit/verifications/{check}").get_data(as_text=True)
    assert "could not finish" in html and "database is locked" in html
    assert "hx-trigger" not in html
    token = csrf_token(client, "/admin/audit")
    client.post("/admin/audit/verify", data={"csrf_token": token})
    assert "Audit log intact: 2 events verified." in client.get("/admin/audit").get_data(
        as_text=True
    )


def test_verify_reports_progress_and_checks_events_written_meanwhile(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_events(app, 5)
    real_batches = audit._batches_in_order
    written: list[int] = []

    def batches_then_someone_acts(after: int, batch: int) -> Iterator[list[Any]]:
        yield from real_batches(after, batch)
        if not written:  # an event lands after the last batch, before the head is read
            written.append(after)
            record("test.meanwhile", ALICE)
            db.session.commit()

    monkeypatch.setattr(audit, "_batches_in_order", batches_then_someone_acts)
    seen: list[int] = []
    with app.app_context():
        assert audit.verify_chain(batch=2, progress=seen.append) == []
    assert seen == [2, 4, 5, 6]


def test_csv_export_follows_the_filters_and_defuses_formulas(
    app: Flask, client: FlaskClient
) -> None:
    record_mixed(app)
    with app.app_context():
        record(
            "item.decided",
            Actor("source", "6", '=HYPERLINK("http://x")', None),
            target_type="item",
            target_id="zzz",
            details={},
        )
        db.session.commit()
    response = admin_client(app, client).get("/admin/audit.csv?action=item.decided")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["seq"] for row in rows] == ["6", "2"]
    assert rows[0]["actor_label"].startswith("'=")
    assert rows[1]["details"] == '{"decision": "remove"}'
    with app.app_context():
        exported = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "audit.exported")
        ).one()
        assert exported.details == {"filters": {"action": "item.decided"}}

"""The scan pipeline through the real plugin manager, jobs and SQLite: results, retries, routing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, update

from app import create_app
from app.extensions import db
from app.models.item import Item
from app.models.job import Job
from app.models.scan import ScannerBucket
from app.models.source import Source
from app.models.types import utcnow
from app.plugins import ScanOutcome
from app.services import banks, jobs, pipeline, plugin_settings, scanning, sources
from app.services.audit import Actor
from app.services.ingest import original_store
from app.services.states import IllegalTransition
from tests.conftest import csrf_token, make_test_config
from tests.fixtures.scanners import SCANNED_KEY
from tests.pipeline_helpers import (
    TEST_PLUGINS,
    app_without_consumer,
    configure,
    item_state,
    log_in_as,
    make_item,
    only_scanners,
    queued_jobs,
    result_rows,
    results,
    retry_until_settled,
    run_job_now,
    scan,
    status_events,
)


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(TEST_PLUGINS)


def scanned_events(app: Flask) -> list[tuple[str, str, list[str]]]:
    return app.extensions.get(SCANNED_KEY, [])


def test_an_item_every_scanner_clears_is_cleared_with_its_results_recorded(app: Flask) -> None:
    only_scanners(app, test_verdict={"verdict": "clear"}, test_flaky={})
    item_id = make_item(app)
    scan(app, item_id)

    status, reason, _ = item_state(app, item_id)
    assert status == "cleared"
    assert reason == "cleared by every scanner"
    found = results(app, item_id)
    assert set(found) == {"test_verdict", "test_flaky"}
    verdict = found["test_verdict"]
    assert verdict["status"] == "done" and verdict["verdict"] == "clear"
    assert verdict["duration_ms"] is not None and verdict["finished_at"].endswith("Z")
    assert "raw" not in verdict  # the vendor's answer stays in the database
    rows = result_rows(app, item_id)
    assert rows[1].raw == {"bytes_seen": len(_stored_bytes(app, item_id))}  # ctx.data() worked
    assert scanned_events(app) == [(item_id, "cleared", ["test_flaky", "test_verdict"])]


def test_matches_and_flags_are_queued_and_matches_first(app: Flask) -> None:
    only_scanners(app, test_verdict={"verdict": "flag", "label": "nudity"})
    flagged = make_item(app, seed=1)
    scan(app, flagged)
    configure(app, "test_verdict", verdict="match", label="csam")
    matched = make_item(app, seed=2)
    scan(app, matched)

    flag_state, match_state = item_state(app, flagged), item_state(app, matched)
    assert flag_state[0] == match_state[0] == "queued"
    assert match_state[2] > flag_state[2]
    assert match_state[1] == "match by test_verdict (csam)"
    assert results(app, matched)["test_verdict"]["labels"] == [{"name": "csam", "score": 0.9}]


def test_clear_items_can_be_routed_to_the_queue(app: Flask) -> None:
    app.config["PIPELINE_ROUTE_ON_CLEAR"] = "queued"
    only_scanners(app, test_verdict={"verdict": "clear"})
    item_id = make_item(app)
    scan(app, item_id)
    assert item_state(app, item_id)[0] == "queued"


def test_no_switched_on_scanner_routes_at_once(app: Flask) -> None:
    only_scanners(app)
    item_id = make_item(app)
    scan(app, item_id)
    assert item_state(app, item_id)[:2] == ("cleared", "no scanner is switched on")


def test_a_scanner_that_stays_down_fails_without_blocking_the_others(app: Flask) -> None:
    only_scanners(app, test_verdict={"verdict": "clear"}, test_flaky={"fail_times": 99})
    item_id = make_item(app)
    scan(app, item_id)

    # The first attempt failed: the item waits, the failure is visible, the other scanner is done.
    assert item_state(app, item_id)[0] == "scanning"
    waiting = results(app, item_id)
    assert waiting["test_verdict"]["verdict"] == "clear"
    assert waiting["test_flaky"]["status"] == "pending"
    assert waiting["test_flaky"]["error"] == "ConnectionError: vendor down (attempt 1)"

    assert retry_until_settled(app) == 2  # FlakyScanner.max_attempts is 3
    failed = results(app, item_id)["test_flaky"]
    assert failed["status"] == "failed" and failed["verdict"] == "error"
    assert failed["attempts"] == 3
    assert failed["error"] == "ConnectionError: vendor down (attempt 3)"
    status, reason, _ = item_state(app, item_id)
    assert status == "queued"  # PIPELINE_ROUTE_ON_ERROR: never silently cleared
    assert reason == "scanner failed: test_flaky"
    assert len(status_events(app, item_id)) == 2  # received → scanning → queued, once


def test_a_scanner_that_recovers_after_retries_backs_off_exponentially(app: Flask) -> None:
    only_scanners(app, test_flaky={"fail_times": 2})
    item_id = make_item(app)
    scan(app, item_id)

    delays = []
    for _ in range(2):
        (job,) = queued_jobs(app, pipeline.SCANNER_JOB)
        delays.append((job.next_attempt_at - utcnow()).total_seconds())
        run_job_now(app, job.id)
    # Jitter between half and the whole step: 1–2 s after the first failure, 2–4 s after the next.
    assert 0.4 < delays[0] <= 2.0
    assert 0.9 < delays[1] <= 4.0
    done = results(app, item_id)["test_flaky"]
    assert (done["status"], done["verdict"], done["attempts"], done["error"]) == (
        "done",
        "clear",
        3,
        None,
    )
    assert item_state(app, item_id)[0] == "cleared"


def test_a_scanner_that_times_out_is_cut_off_and_then_failed(app: Flask) -> None:
    only_scanners(app, test_slow={"sleep": 1.5})
    item_id = make_item(app)
    started = time.perf_counter()
    scan(app, item_id)
    assert time.perf_counter() - started < 1.2  # the 0.2 s timeout was enforced

    first = results(app, item_id)["test_slow"]
    assert first["status"] == "pending" and first["error"].startswith("Timed out")
    retry_until_settled(app)
    failed = results(app, item_id)["test_slow"]
    assert (failed["status"], failed["verdict"], failed["attempts"]) == ("failed", "error", 2)
    assert item_state(app, item_id)[0] == "queued"


def test_a_rate_limited_scanner_waits_for_its_bucket_without_spending_attempts(app: Flask) -> None:
    only_scanners(app, test_limited={})
    first, second = make_item(app, seed=1), make_item(app, seed=2)
    scan(app, first)
    scan(app, second)
    assert item_state(app, first)[0] == "queued"

    waiting = results(app, second)["test_limited"]
    assert waiting["status"] == "pending" and waiting["attempts"] == 0
    assert waiting["error"].startswith("Waiting ") and "rate limit" in waiting["error"]
    (job,) = queued_jobs(app, pipeline.SCANNER_JOB)
    assert 50 < (job.next_attempt_at - utcnow()).total_seconds() <= 61  # one call a minute

    run_job_now(app, job.id)  # too early: the bucket is still empty, so it waits again
    assert results(app, second)["test_limited"]["attempts"] == 0
    with app.app_context():
        db.session.execute(
            update(ScannerBucket).values(refreshed_at=utcnow() - timedelta(seconds=61))
        )
        db.session.commit()
    (job,) = queued_jobs(app, pipeline.SCANNER_JOB)
    run_job_now(app, job.id)
    done = results(app, second)["test_limited"]
    assert (done["status"], done["attempts"], done["error"]) == ("done", 1, None)
    assert item_state(app, second)[0] == "queued"


def test_the_rate_limit_bucket_is_shared_by_concurrent_workers(app: Flask) -> None:
    granted = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            granted.append(scanning.take_token("shared", 6) == 0.0)  # a bucket of one call

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(granted) == [False] * 7 + [True]


def test_two_scanner_jobs_finishing_together_route_the_item_once(
    instance_path: Path, tmp_path: Path
) -> None:
    with app_without_consumer(instance_path, tmp_path, **TEST_PLUGINS) as app:
        only_scanners(app, test_verdict={"verdict": "flag"}, test_flaky={})
        item_ids = [make_item(app, seed=seed) for seed in range(6)]
        for item_id in item_ids:
            scan(app, item_id)
            (round_job,) = queued_jobs(app, pipeline.ROUND_JOB)
            run_job_now(app, round_job.id)
            scanner_jobs = [job.id for job in queued_jobs(app, pipeline.SCANNER_JOB)]
            assert len(scanner_jobs) == 2
            assert run_together(app, scanner_jobs) == ["done", "done"]
        for item_id in item_ids:
            routed = [e for e in status_events(app, item_id) if e["from"] == "scanning"]
            assert len(routed) == 1, routed
            assert item_state(app, item_id)[0] == "queued"
        assert sorted(event[0] for event in scanned_events(app)) == sorted(item_ids)


def test_routing_is_exactly_once_when_both_finishers_see_the_round_complete(
    instance_path: Path, tmp_path: Path
) -> None:
    # The sharpest race: both results are committed before either finisher looks, so both see
    # a complete round and both try to route. The conditional UPDATE lets exactly one through.
    with app_without_consumer(instance_path, tmp_path, **TEST_PLUGINS) as app:
        only_scanners(app, test_verdict={}, test_flaky={})
        for seed in range(10):
            item_id = make_item(app, seed=seed)
            scan(app, item_id)  # rows pending; the round job waits in Huey
            row_ids = [row.id for row in result_rows(app, item_id)]
            barrier = threading.Barrier(2)
            routes: list[str | None] = []

            def finish(
                row_id: int,
                item_id: str = item_id,
                barrier: Any = barrier,
                routes: list[str | None] = routes,
            ) -> None:
                with app.app_context():
                    scanning.record_outcome(row_id, ScanOutcome("clear"), 1)
                    db.session.commit()
                    barrier.wait()
                    routes.append(pipeline.route_when_complete(item_id, 1))
                    db.session.commit()

            threads = [threading.Thread(target=finish, args=(row_id,)) for row_id in row_ids]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(routes, key=str) == [None, "cleared"]
            assert len([e for e in status_events(app, item_id) if e["from"] == "scanning"]) == 1


def test_a_rescan_opens_a_new_round_and_routes_again(app: Flask) -> None:
    only_scanners(app, test_verdict={"verdict": "clear"})
    item_id = make_item(app)
    scan(app, item_id)
    assert item_state(app, item_id)[0] == "cleared"

    configure(app, "test_verdict", verdict="flag", label="spam")
    with app.app_context():
        pipeline.rescan(db.session.get(Item, item_id), Actor.system("test"))
    assert item_state(app, item_id)[0] == "queued"
    assert [(r.scan_round, r.verdict) for r in result_rows(app, item_id)] == [
        (1, "clear"),
        (2, "flag"),
    ]
    latest = results(app, item_id)["test_verdict"]
    assert (latest["scan_round"], latest["verdict"]) == (2, "flag")
    assert [e["reason"] for e in status_events(app, item_id)][-2] == "re-scan requested"


def test_a_rescan_supersedes_a_round_still_waiting_for_a_retry(app: Flask) -> None:
    only_scanners(app, test_flaky={"fail_times": 1})
    item_id = make_item(app)
    scan(app, item_id)
    (stale_job,) = queued_jobs(app, pipeline.SCANNER_JOB)

    configure(app, "test_flaky", fail_times=0)
    with app.app_context():
        pipeline.rescan(db.session.get(Item, item_id), Actor.system("test"))
    old, new = result_rows(app, item_id)
    assert (old.status, old.error) == ("failed", pipeline.SUPERSEDED)
    assert (new.scan_round, new.status) == (2, "done")
    routed_before = len(status_events(app, item_id))
    assert run_job_now(app, stale_job.id) == "done"  # the old attempt finds its row superseded
    assert len(status_events(app, item_id)) == routed_before
    assert item_state(app, item_id)[0] == "cleared"


def test_removed_items_cannot_be_rescanned(app: Flask) -> None:
    only_scanners(app)
    item_id = make_item(app, status="removed")
    with app.app_context(), pytest.raises(IllegalTransition):
        pipeline.rescan(db.session.get(Item, item_id), Actor.system("test"))


def test_secret_settings_are_masked_in_errors_and_records(app: Flask) -> None:
    only_scanners(app)
    with app.app_context():
        plugin_settings.save_settings(
            "test_keyed",
            {"api_key": "wrong-key-4411", "endpoint": "https://vendor.test/v1"},
            set(),
            Actor.system("test"),
        )
        plugin_settings.set_enabled("test_keyed", True, Actor.system("test"))
    item_id = make_item(app)
    scan(app, item_id)
    error = results(app, item_id)["test_keyed"]["error"]
    assert error == "PermissionError: 401 for key [secret]"


def test_item_received_fires_once_and_a_broken_event_hook_stops_nothing(
    instance_path: Path,
) -> None:
    modules = [*TEST_PLUGINS["PLUGINS_MODULES"], "tests.fixtures.bad_plugins.broken_events"]
    app = create_app(make_test_config(instance_path, PLUGINS_MODULES=modules))
    with app.app_context():
        db.create_all()
    try:
        only_scanners(app, test_verdict={"verdict": "clear"})
        item_id = make_item(app)
        scan(app, item_id)
        assert item_state(app, item_id)[0] == "cleared"
        assert [event[0] for event in scanned_events(app)] == [item_id]  # the other plugin ran
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_cli_rescans_a_filtered_set(app: Flask, runner: FlaskCliRunner) -> None:
    only_scanners(app, test_verdict={"verdict": "clear"})
    forum = [make_item(app, seed=n, source_name="Forum") for n in range(2)]
    chat = make_item(app, seed=5, source_name="Chat")
    for item_id in [*forum, chat]:
        scan(app, item_id)
    with app.app_context():
        slug = db.session.scalar(select(Source.slug).where(Source.name == "Forum"))

    dry = runner.invoke(
        args=["items", "rescan", "--status", "cleared", "--source", slug, "--dry-run"]
    )
    assert dry.exit_code == 0 and "2 items match" in dry.output
    outcome = runner.invoke(
        args=["items", "rescan", "--status", "cleared", "--source", slug, "--since", "2000-01-01"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "Re-scanning 2 of 2" in outcome.output
    assert {r.scan_round for i in forum for r in result_rows(app, i)} == {1, 2}
    assert {r.scan_round for r in result_rows(app, chat)} == {1}

    wrong = runner.invoke(args=["items", "rescan", "--status", "pending"])
    assert wrong.exit_code != 0 and "'pending' is not a state" in wrong.output


def run_together(app: Flask, job_ids: list[str]) -> list[str]:
    """Run the jobs on one thread each, released at the same instant; their end states."""
    barrier = threading.Barrier(len(job_ids))
    outcomes: list[str] = []

    def finish(job_id: str, owner: str) -> None:
        with app.app_context():
            barrier.wait()
            outcomes.append(jobs.run(job_id, owner))

    threads = [
        threading.Thread(target=finish, args=(job_id, f"worker-{n}"))
        for n, job_id in enumerate(job_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _stored_bytes(app: Flask, item_id: str) -> bytes:
    with app.app_context():
        item = db.session.get(Item, item_id)
        return original_store().get(item.sha256)


def test_the_scan_results_page_polls_while_scanning_and_stops_when_done(
    app: Flask, client: FlaskClient
) -> None:
    log_in_as(app, client, "moderator")
    only_scanners(
        app, test_verdict={"verdict": "match", "label": "csam"}, test_flaky={"fail_times": 99}
    )
    item_id = make_item(app)
    scan(app, item_id)

    page = client.get(f"/items/{item_id}/scans")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert 'hx-trigger="every 2s"' in html and "Scanning…" in html
    assert "Attempt 1 failed: ConnectionError: vendor down (attempt 1) Trying again." in html
    assert "csam 0.90" in html and ">match<" in html

    retry_until_settled(app)
    fragment = client.get(f"/items/{item_id}/scans", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert "<html" not in html and "Vary" in fragment.headers
    assert "hx-trigger" not in html  # done: the polling stops
    assert ">failed<" in html and "ConnectionError: vendor down (attempt 3)" in html
    assert "(3 attempts)" in html
    assert "Scan again" not in client.get(f"/items/{item_id}/scans").get_data(as_text=True)


def test_only_leads_can_rescan_from_the_page(app: Flask, client: FlaskClient) -> None:
    only_scanners(app, test_verdict={"verdict": "clear"})
    item_id = make_item(app)
    scan(app, item_id)
    log_in_as(app, client, "moderator")
    token = csrf_token(client, f"/items/{item_id}/scans")
    assert client.post(f"/items/{item_id}/rescan", data={"csrf_token": token}).status_code == 403

    lead = app.test_client()
    log_in_as(app, lead, "lead")
    token = csrf_token(lead, f"/items/{item_id}/scans")
    answer = lead.post(f"/items/{item_id}/rescan", data={"csrf_token": token})
    assert answer.status_code == 303
    assert {row.scan_round for row in result_rows(app, item_id)} == {1, 2}
    assert "Scanning again" in lead.get(answer.headers["Location"]).get_data(as_text=True)


def test_the_api_says_which_scanner_failed(app: Flask, client: FlaskClient) -> None:
    only_scanners(app, test_verdict={"verdict": "clear"}, test_flaky={"fail_times": 99})
    item_id = make_item(app)
    scan(app, item_id)
    retry_until_settled(app)
    with app.app_context():
        item = db.session.get(Item, item_id)
        _, token = sources.issue_token(item.source, Actor.system("test"))
    body = client.get(f"/api/v1/items/{item_id}", headers={"Authorization": f"Bearer {token}"})
    assert body.status_code == 200, body.get_data(as_text=True)
    found = {result["scanner"]: result for result in body.get_json()["scan_results"]}
    assert found["test_flaky"]["status"] == "failed"
    assert found["test_flaky"]["verdict"] == "error"
    assert found["test_flaky"]["error"] == "ConnectionError: vendor down (attempt 3)"
    assert found["test_verdict"]["verdict"] == "clear"
    assert body.get_json()["status"] == "queued"


def test_the_hash_bank_scanner_matches_a_bank_entry(app: Flask) -> None:
    item_id = make_item(app, seed=3)
    with app.app_context():
        item = db.session.get(Item, item_id)
        bank = banks.create_bank("StopNCII", Actor.system("test"), labels=["ncii"])
        banks.add_entry(bank, "pdq", item.pdq, Actor.system("test"), note="case 9")
        db.session.commit()
    scan(app, item_id)  # the hash banks are on by default

    found = results(app, item_id)["hashbank"]
    assert (found["status"], found["verdict"]) == ("done", "match")
    assert found["labels"] == [{"name": "ncii", "score": 1.0}]
    (match,) = found["matches"]
    assert (match["bank_name"], match["signal_type"], match["distance"]) == ("StopNCII", "pdq", 0)
    assert "note" not in match  # kept for moderators, not sent to the platform
    (row,) = result_rows(app, item_id)
    assert row.matches[0]["note"] == "case 9"
    assert item_state(app, item_id)[:2] == ("queued", "match by hashbank (ncii)")


def test_a_scanner_that_needs_a_url_fails_at_once_for_an_item_sent_inline(app: Flask) -> None:
    only_scanners(app, test_url={})
    inline, by_url = make_item(app, seed=1), make_item(app, seed=2, image_url="https://cdn.test/a")
    scan(app, inline)
    scan(app, by_url)
    failed = results(app, inline)["test_url"]
    assert (failed["status"], failed["attempts"]) == ("failed", 1)  # no retry: it cannot help
    assert (
        failed["error"]
        == "The scanner test_url needs the image's URL, and this item was sent without one."
    )
    assert results(app, by_url)["test_url"]["verdict"] == "clear"
    assert queued_jobs(app, pipeline.SCANNER_JOB) == []


def test_the_worker_scans_with_fast_local_scanners_and_routes_in_the_same_job(
    app: Flask,
) -> None:
    only_scanners(app, test_fast_list={"label": "spam"})
    item_id = make_item(app, seed=5)
    with app.app_context():
        item = db.session.get(Item, item_id)
        pipeline.start_scan(item, Actor.system("test"), inline=True)
    assert queued_jobs(app, pipeline.ROUND_JOB) == []
    with app.app_context():
        assert db.session.scalar(select(func.count(Job.id))) == 0  # no round job was made at all
    found = results(app, item_id)["test_fast_list"]
    assert (found["status"], found["verdict"], found["attempts"]) == ("done", "match", 1)
    assert item_state(app, item_id)[:2] == ("queued", "match by test_fast_list (spam)")
    assert [e["to"] for e in status_events(app, item_id)] == ["scanning", "queued"]


def test_a_fast_scanner_that_fails_inline_is_left_to_the_round_job(app: Flask) -> None:
    only_scanners(app, test_fast_broken={})
    item_id = make_item(app, seed=6)
    with app.app_context():
        item = db.session.get(Item, item_id)
        pipeline.start_scan(item, Actor.system("test"), inline=True)
    retry_until_settled(app, pipeline.ROUND_JOB)
    found = results(app, item_id)["test_fast_broken"]
    assert (found["status"], found["verdict"]) == ("failed", "error")
    assert "index file missing" in found["error"]
    assert item_state(app, item_id)[0] == "queued"  # a scanner that failed is seen by a person

"""No accepted item is lost: ``process_item`` is idempotent, a fetch that fails for the last time
leaves a visible ``fetch_failed``, and a ``kill -9`` right after a 202 loses nothing."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.item import Item
from app.models.job import Job
from app.models.types import utcnow
from app.services import hashing, jobs
from app.services.ingest import derived_store
from app.services.processing import process_item
from app.tasks import PROCESS
from tests.api_helpers import (
    IN_PIPELINE,
    ApiServer,
    bearer,
    image_host,
    item_body,
    jpeg,
    load_item,
    make_source,
)
from tests.test_runtime import free_port


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {
        "FETCH_ALLOW_NETWORKS": ["127.0.0.0/8"],
        "FETCH_CONNECT_TIMEOUT": 1.0,
        "FETCH_TOTAL_TIMEOUT": 2.0,
    }


def audit_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent))


def test_process_item_twice_changes_nothing_the_second_time(app: Flask, client) -> None:
    _, token = make_source(app)
    response = client.post("/api/v1/items", json=item_body("i-1", jpeg()), headers=bearer(token))
    item_id = response.get_json()["id"]
    before, events = load_item(app, item_id), audit_count(app)
    with app.app_context():
        process_item(item_id)  # as after a crash between the job's effect and its "done" mark
    after = load_item(app, item_id)
    assert (after.status, after.has_derivatives, after.sha256) == (
        before.status,
        True,
        before.sha256,
    )
    assert audit_count(app) == events


def test_the_worker_hashes_and_previews_what_ingest_only_checked(app: Flask, client) -> None:
    _, token = make_source(app)
    image = jpeg(1)
    response = client.post("/api/v1/items", json=item_body("p-1", image), headers=bearer(token))
    assert response.status_code == 202
    stored = hashing.compute_hashes(image)  # the colour decode the worker shares with previews
    expected = (stored.pdq, stored.pdq_quality)
    with app.app_context():
        item = db.session.get(Item, response.get_json()["id"])
        assert (item.pdq, item.pdq_quality) == expected
        assert item.has_derivatives and item.status == "cleared"
        # A run that stopped after the hash (a crash, a retry) finishes the rest from the store.
        item.has_derivatives, item.status = False, "received"
        db.session.commit()
        process_item(item.id)
        item = db.session.get(Item, item.id)
        assert item.has_derivatives and (item.pdq, item.pdq_quality) == expected
        assert derived_store().exists(item.sha256)


def test_a_failing_fetch_is_retried_then_ends_fetch_failed_on_the_last_attempt(
    app: Flask, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.config["FETCH_MAX_ATTEMPTS"] = 2
    monkeypatch.setattr(jobs, "backoff_seconds", lambda attempt: 60.0)
    _, token = make_source(app)
    closed = f"http://127.0.0.1:{free_port()}/gone.jpg"  # nothing listens: a transient failure
    item_id = client.post(
        "/api/v1/items", json=item_body("r-1", url=closed), headers=bearer(token)
    ).get_json()["id"]
    with app.app_context():
        job = db.session.scalars(select(Job).where(Job.name == "process_item")).one()
        assert (job.status, job.attempts) == ("queued", 1)  # waiting for its backoff
    assert load_item(app, item_id).status == "received"

    with app.app_context():  # the backoff has passed: the worker runs the second attempt
        db.session.get(Job, job.id).next_attempt_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert jobs.run(job.id, PROCESS["worker_id"]) == "failed"
    item = load_item(app, item_id)
    assert item.status == "fetch_failed"
    assert item.status_reason.startswith(
        "The image could not be fetched: The server could not be reached"
    )


# --- a real server, killed -----------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(
        tmp_path / "instance",
        {
            "MODTOOLS_FETCH_ALLOW_NETWORKS": '["127.0.0.0/8"]',
            "MODTOOLS_FETCH_TOTAL_TIMEOUT": "3",
            "MODTOOLS_FETCH_MAX_ATTEMPTS": "1",
            "MODTOOLS_WORKER_STALE_SECONDS": "5",
        },
    )
    yield server
    server.close()


@pytest.mark.slow
def test_kill_9_right_after_202_loses_nothing(api: ApiServer) -> None:
    api.start()
    image = jpeg(seed=31)
    with image_host({"/a.jpg": (image, "image/jpeg")}) as host:
        # The URL item's fetch takes two seconds, so the kill finds its job running.
        url_item = api.request(
            "POST", "/api/v1/items", json=item_body("k-url", url=host.url("/delayed/a.jpg"))
        )
        ids = [url_item.json()["id"]]
        for n in range(10):
            response = api.request("POST", "/api/v1/items", json=item_body(f"k-{n}", jpeg(n)))
            assert response.status_code == 202
            ids.append(response.json()["id"])
        api.server.stop(signal.SIGKILL)  # at once after the last 202

        api.start()
        items = [api.wait_processed(item_id) for item_id in ids]
    assert "queued again" in api.server.output()  # the interrupted job was found and re-run
    assert all(item["status"] in IN_PIPELINE for item in items), [i["status"] for i in items]
    assert all(item["hashes"]["sha256"] for item in items)
    assert items[0]["bytes"] == len(image)
    listed = api.request("GET", "/api/v1/items?limit=100").json()["items"]
    assert sorted(item["id"] for item in listed) == sorted(ids)  # and no duplicates
    api.server.stop()


@pytest.mark.slow
def test_fetch_through_the_real_server(api: ApiServer) -> None:
    api.start()
    image = jpeg(seed=32)
    with image_host({"/b.jpg": (image, "image/jpeg")}) as host:
        fetched = api.request(
            "POST", "/api/v1/items", json=item_body("f-1", url=host.url("/b.jpg"))
        )
        slow = api.request("POST", "/api/v1/items", json=item_body("f-2", url=host.url("/slow")))
        item = api.wait_processed(fetched.json()["id"])
        stalled = api.wait_processed(slow.json()["id"])
    assert item["status"] in IN_PIPELINE and item["bytes"] == len(image)
    assert len(item["hashes"]["pdq"]) == 64 and item["mime"] == "image/jpeg"
    assert stalled["status"] == "fetch_failed"
    assert "did not send the image within 3 seconds" in stalled["status_reason"]
    api.server.stop()

"""The item API through the Flask test client: send, re-send, batch, read, list, fetch by URL.

Jobs run inline here (``HUEY_IMMEDIATE``), so by the time a POST answers, ``process_item`` has
run: the derived images exist and the item has been routed.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from urllib3 import encode_multipart_formdata

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.types import utcnow
from app.services.ingest import derived_store, original_store
from tests.api_helpers import (
    IN_PIPELINE,
    bearer,
    image_host,
    item_body,
    item_count,
    jpeg,
    load_item,
    loopback_only,
    make_source,
)
from tests.imagegen import TESTDATA, encode, scene

LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"FETCH_TOTAL_TIMEOUT": 2.0, "FETCH_CONNECT_TIMEOUT": 1.0, "FETCH_MAX_ATTEMPTS": 1}


def post(client, token: str, body: Any):
    return client.post("/api/v1/items", json=body, headers=bearer(token))


def test_inline_item_is_stored_hashed_routed_and_readable(app: Flask, client) -> None:
    _, token = make_source(app)
    image = jpeg(seed=7)
    body = item_body(
        "post-1",
        image,
        uploader={"id": 42, "name": "alice", "ip": "203.0.113.7"},
        context={
            "url": "https://forum.example.org/t/1",
            "text": "look",
            "created_at": "2024-05-01T12:00:00+02:00",
        },
        metadata={"board": "general", "tags": ["a", "b"]},
        callback_url="https://forum.example.org/cb",
    )
    response = post(client, token, body)

    assert response.status_code == 202
    accepted = response.get_json()
    assert set(accepted) == {"id", "status", "url"}
    assert response.headers["Location"] == accepted["url"]
    assert accepted["url"].endswith(f"/api/v1/items/{accepted['id']}")

    item = client.get(accepted["url"], headers=bearer(token)).get_json()
    assert item["status"] in IN_PIPELINE  # process_item ran: derived images made, scan started
    assert item["external_id"] == "post-1"
    assert item["mime"] == "image/jpeg" and (item["width"], item["height"]) == (320, 240)
    assert item["bytes"] == len(image) and item["frames"] == 1
    assert len(item["hashes"]["sha256"]) == 64 and len(item["hashes"]["md5"]) == 32
    assert len(item["hashes"]["pdq"]) == 64 and item["hashes"]["pdq_quality"] >= 50
    assert item["uploader"] == {"id": "42", "name": "alice", "ip": "203.0.113.7"}
    assert item["context"] == {
        "url": "https://forum.example.org/t/1",
        "text": "look",
        "created_at": "2024-05-01T10:00:00Z",
    }
    assert item["metadata"] == {"board": "general", "tags": ["a", "b"]}
    assert item["callback_url"] == "https://forum.example.org/cb"
    assert isinstance(item["scan_results"], list)  # filled by the pipeline's scanners
    assert item["decision"] is None
    # The item.scanned callback to forum.example.org: the test suite resolves no outside names.
    assert [(run["action"], run["status"]) for run in item["actions"]] == [("webhook", "failed")]

    with app.app_context():
        assert original_store().get(item["hashes"]["sha256"]) == image
        assert derived_store().exists(item["hashes"]["sha256"])
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "item.received")
        ).one()
    assert (event.actor_type, event.actor_label, event.target_id) == (
        "source",
        "forum",
        accepted["id"],
    )
    assert len(str(event.details)) < 300  # small: no metadata, no image


def test_multipart_upload_gives_the_same_item_as_json(app: Flask, client) -> None:
    _, token = make_source(app)
    image = encode(scene(200, 150, seed=4), "PNG")
    body, content_type = encode_multipart_formdata(
        {
            # The part's type is wrong on purpose: the bytes decide, and they say PNG.
            "image": ("photo.jpg", image, "image/jpeg"),
            "item": ('{"external_id": "m-1", "uploader": {"name": "bob"}}'),
        }
    )
    response = client.post(
        "/api/v1/items", data=body, content_type=content_type, headers=bearer(token)
    )
    assert response.status_code == 202
    item = client.get(response.get_json()["url"], headers=bearer(token)).get_json()
    assert item["mime"] == "image/png" and item["uploader"]["name"] == "bob"
    json_twin = post(client, token, item_body("m-2", image))
    twin = client.get(json_twin.get_json()["url"], headers=bearer(token)).get_json()
    assert twin["hashes"] == item["hashes"]


def test_redelivery_returns_the_existing_item_without_looking_at_the_image(app, client) -> None:
    _, token = make_source(app)
    first = post(client, token, item_body("dup", jpeg(seed=1)))
    again = post(client, token, item_body("dup", jpeg(seed=2)))
    garbage = post(client, token, item_body("dup", b"not an image"))
    assert first.status_code == 202
    assert again.status_code == 200 and garbage.status_code == 200
    assert again.get_json()["id"] == garbage.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["external_id"] == "dup" and "hashes" in again.get_json()
    assert item_count(app) == 1
    # An integer id is its decimal text: 7 and "7" are the same item.
    assert post(client, token, item_body(7, jpeg())).status_code == 202
    assert post(client, token, item_body("7", jpeg())).status_code == 200


def test_concurrent_duplicates_make_exactly_one_item(app: Flask) -> None:
    _, token = make_source(app)
    body = item_body("race", jpeg(seed=5))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(post(client, token, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [202]
    assert item_count(app) == 1


def test_batch_reports_each_item_and_one_bad_item_fails_alone(app: Flask, client) -> None:
    _, token = make_source(app)
    post(client, token, item_body("known", jpeg(seed=1)))
    batch = {
        "items": [
            item_body("b-0", jpeg(seed=2)),
            {"external_id": "b-1", "image": {"data": "!!!"}},
            item_body("known", jpeg(seed=3)),
            item_body("b-3", b"GIF89a\x01\x00"),
            item_body("b-4", url="https://cdn.example.org/x.jpg", uploader={"ip": "nope"}),
        ]
    }
    response = client.post("/api/v1/items/batch", json=batch, headers=bearer(token))
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 202),
        (1, 400),
        (2, 200),
        (3, 422),
        (4, 400),
    ]
    assert results[1]["error"]["field"] == "items[1].image.data"
    assert results[3]["error"]["code"] == "corrupt_image"
    assert results[4]["error"]["field"] == "items[4].uploader.ip"
    assert results[0]["url"].endswith(results[0]["id"]) and results[0]["item_status"] == "received"
    assert item_count(app) == 2


def test_a_source_never_sees_another_sources_items(app: Flask, client) -> None:
    _, mine = make_source(app, "Forum")
    _, theirs = make_source(app, "Chat")
    item_id = post(client, mine, item_body("shared-id", jpeg())).get_json()["id"]

    response = client.get(f"/api/v1/items/{item_id}", headers=bearer(theirs))
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == "No item with this id belongs to your source."
    assert client.get("/api/v1/items", headers=bearer(theirs)).get_json()["items"] == []
    # External ids are unique per source: the other source's "shared-id" is its own item.
    assert post(client, theirs, item_body("shared-id", jpeg())).status_code == 202
    assert item_count(app) == 2


def test_listing_pages_newest_first_with_filters(app: Flask, client) -> None:
    _, token = make_source(app)
    ids = [
        post(client, token, item_body(f"l-{n}", jpeg(seed=n))).get_json()["id"] for n in range(5)
    ]
    seen, cursor = [], None
    while True:
        query = "/api/v1/items?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=bearer(token)).get_json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    def listed(query: str) -> list[str]:
        response = client.get(f"/api/v1/items?{query}", headers=bearer(token))
        return [item["external_id"] for item in response.get_json()["items"]]

    assert listed("external_id=l-3") == ["l-3"]
    assert listed("status=fetch_failed") == []
    post(client, token, item_body("refused", url="http://169.254.169.254/"))  # never connects
    assert listed("status=fetch_failed") == ["refused"]
    assert listed("status=received") == []  # the inline job has processed them all
    future = (utcnow() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert listed(f"since={future}") == []


def test_url_item_is_fetched_from_an_allowed_host_and_hashed(app: Flask, client) -> None:
    app.config["FETCH_ALLOW_NETWORKS"] = LOOPBACK
    _, token = make_source(app)
    image = jpeg(seed=11)
    with image_host({"/a.jpg": (image, "image/jpeg")}) as host:
        response = post(client, token, item_body("u-1", url=host.url("/a.jpg")))
    assert response.status_code == 202
    item = client.get(response.get_json()["url"], headers=bearer(token)).get_json()
    assert item["status"] in IN_PIPELINE and item["image_url"] == host.url("/a.jpg")
    assert item["bytes"] == len(image) and len(item["hashes"]["pdq"]) == 64
    with app.app_context():
        assert original_store().get(item["hashes"]["sha256"]) == image
        assert derived_store().exists(item["hashes"]["sha256"])


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        ("/missing.jpg", None, "The image could not be fetched: The server answered 404"),
        (
            "/page.jpg",
            (b"<html>hello</html>", "image/jpeg"),
            "The image at the URL was refused: This file is not an image we accept",
        ),
    ],
)
def test_url_item_that_cannot_be_used_ends_fetch_failed(app, client, path, content, reason) -> None:
    app.config["FETCH_ALLOW_NETWORKS"] = LOOPBACK
    _, token = make_source(app)
    with image_host({path: content} if content else {}) as host:
        response = post(client, token, item_body("u-2", url=host.url(path)))
    assert response.status_code == 202
    item = client.get(response.get_json()["url"], headers=bearer(token)).get_json()
    assert item["status"] == "fetch_failed"
    assert item["status_reason"].startswith(reason)
    assert item["hashes"]["sha256"] is None


def test_ssrf_loopback_and_metadata_addresses_are_refused(app: Flask, client) -> None:
    _, token = make_source(app)  # no FETCH_ALLOW_NETWORKS: loopback is not public
    with image_host({"/a.jpg": (jpeg(), "image/jpeg")}) as host, loopback_only() as escaped:
        urls = [
            host.url("/a.jpg"),
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]:1/x.jpg",
            "http://0.0.0.0:80/x.jpg",
        ]
        ids = [
            post(client, token, item_body(f"s-{n}", url=url)).get_json()["id"]
            for n, url in enumerate(urls)
        ]
    assert host.requests == [] and escaped == []  # nothing was ever connected to
    for item_id, address in zip(
        ids, ["127.0.0.1", "169.254.169.254", "127.0.0.1", "0.0.0.0"], strict=True
    ):
        item = load_item(app, item_id)
        assert item.status == "fetch_failed"
        assert "which is not a public internet address" in item.status_reason
        assert address in item.status_reason


def test_slow_loris_host_times_out_into_fetch_failed(app: Flask, client) -> None:
    app.config.update(FETCH_ALLOW_NETWORKS=LOOPBACK, FETCH_TOTAL_TIMEOUT=1.0)
    _, token = make_source(app)
    with image_host({}) as host:
        response = post(client, token, item_body("slow", url=host.url("/slow")))
    item = load_item(app, response.get_json()["id"])
    assert item.status == "fetch_failed"
    assert "did not send the image within 1 seconds" in item.status_reason


REFERENCE_IMAGES = sorted(
    p for p in TESTDATA.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".webp")
)


def test_every_pdq_reference_image_ingests_and_hashes(app: Flask, client) -> None:
    assert len(REFERENCE_IMAGES) >= 40, "the PDQ reference images are missing"
    app.config["MAX_IMAGE_BYTES"] = 30 * 1024 * 1024
    _, token = make_source(app)
    for path in REFERENCE_IMAGES:
        name = str(path.relative_to(TESTDATA))
        response = post(client, token, item_body(name, Path(path).read_bytes()))
        assert response.status_code == 202, (name, response.get_json())
        item = load_item(app, response.get_json()["id"])
        assert item.sha256 and item.md5 and item.pdq_quality is not None, name
        assert item.width and item.height and item.has_derivatives, name
        assert item.status in IN_PIPELINE, name


def test_the_item_shows_its_decision_and_the_actions_taken(app: Flask, client) -> None:
    """After a lead removes the item, the platform reads the decision and the queued callback."""
    from app.models.item import Item
    from app.models.user import User
    from app.services import decisions
    from app.services.audit import Actor
    from tests.helpers_review import make_user

    _, token = make_source(app)
    # A loopback callback that is not allow-listed: refused before any connection is made.
    body = item_body("post-9", jpeg(seed=9), callback_url="http://127.0.0.1:9/cb")
    accepted = post(client, token, body).get_json()
    before = client.get(accepted["url"], headers=bearer(token)).get_json()
    assert before["decision"] is None
    scanned_callback = before["actions"]  # the item.scanned callback, refused by the SSRF rules
    assert [(run["action"], run["status"]) for run in scanned_callback] == [("webhook", "failed")]
    assert [result["scanner"] for result in before["scan_results"]] == ["hashbank"]
    assert before["scan_results"][0]["verdict"] == "clear"

    lead = make_user(app, "lead")
    with app.app_context():
        item = db.session.get(Item, accepted["id"])
        item.status = "queued"  # as a flagging scanner would have routed it
        db.session.commit()
        user = db.session.get(User, lead.id)
        decisions.decide(accepted["id"], user, "remove", Actor.for_user(user), category="spam")

    after = client.get(accepted["url"], headers=bearer(token)).get_json()
    assert after["status"] == "removed"
    assert after["decision"]["outcome"] == "remove"
    assert after["decision"]["category"] == "spam"
    assert after["decision"]["automated"] is False
    assert after["decision"]["decided_at"].endswith("Z")
    # The decision's callback waits out the undo period before it runs.
    assert [(run["action"], run["status"]) for run in after["actions"]] == [
        ("webhook", "failed"),
        ("webhook", "queued"),
    ]

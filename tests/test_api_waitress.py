"""The item API over real HTTP: the one-process server (waitress, SQLite, Huey) in a subprocess.

The same refusals as ``test_api_errors.py``, byte for byte, plus what only a real server shows:
concurrent duplicate deliveries on waitress threads, the background job finishing on its own,
and the fetcher refusing loopback when no allow-list opens it. Sources and tokens are made with
the ``flask sources`` commands, as an operator would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.api_helpers import IN_PIPELINE, ApiServer, flask_cli, image_host, item_body, jpeg
from tests.test_api_errors import CASES, LIMITS, Case, Reply, check_reply, headers_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    instance = tmp_path_factory.mktemp("waitress") / "instance"
    env = {f"MODTOOLS_{key}": str(value) for key, value in LIMITS.items()}
    # Room for the whole module on one token; the 429 test drains a token of its own.
    env.update(MODTOOLS_API_RATE_LIMIT_PER_MINUTE="6000", MODTOOLS_API_RATE_LIMIT_BURST="100")
    server = ApiServer(instance, env)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tokens(api: ApiServer) -> dict[str, str]:
    """The transport's tokens, made with the CLI: valid, disabled source, revoked, bogus."""
    instance = api.server.instance
    disabled = json.loads(flask_cli(instance, "sources", "create", "Old forum", "--json"))
    flask_cli(instance, "sources", "disable", disabled["slug"])
    revoked = flask_cli(instance, "sources", "token", "forum", "--name", "leaked").strip()
    listed = json.loads(flask_cli(instance, "sources", "list", "--json"))
    leaked = next(t for s in listed for t in s["tokens"] if t["name"] == "leaked")
    flask_cli(instance, "sources", "revoke-token", str(leaked["id"]))
    return {
        "valid": api.token,
        "disabled": disabled["token"],
        "revoked": revoked,
        "bogus": "mti_" + "x" * 43,
    }


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_refusals_over_http(api: ApiServer, tokens: dict[str, str], case: Case) -> None:
    raw = case.request()
    response = api.http.request(
        raw.method, api.url(raw.path), data=raw.body, timeout=30, headers=headers_for(raw, tokens)
    )
    body = response.json()
    check_reply(case, Reply(response.status_code, dict(response.headers), body))


def test_rate_limit_over_http(api: ApiServer) -> None:
    token = flask_cli(api.server.instance, "sources", "token", "forum", "--name", "burst").strip()
    batch = {"items": [{"external_id": str(n)} for n in range(100)]}
    first = api.request("POST", "/api/v1/items/batch", token=token, json=batch)
    second = api.request("POST", "/api/v1/items/batch", token=token, json=batch)
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert second.json()["error"]["code"] == "rate_limited"


def test_item_is_accepted_then_processed_in_the_background(api: ApiServer) -> None:
    response = api.request("POST", "/api/v1/items", json=item_body("bg-1", jpeg(seed=21)))
    assert response.status_code == 202
    assert response.json()["status"] == "received"  # the answer does not wait for the job
    item = api.wait_processed(response.json()["id"])
    assert item["status"] in IN_PIPELINE and len(item["hashes"]["pdq"]) == 64
    again = api.request("POST", "/api/v1/items", json=item_body("bg-1", jpeg(seed=22)))
    assert again.status_code == 200 and again.json()["id"] == item["id"]


def test_eight_concurrent_duplicates_make_one_item(api: ApiServer) -> None:
    body = json.dumps(item_body("race-1", jpeg(seed=23))).encode()
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def deliver() -> None:
        barrier.wait()
        response = api.request(
            "POST", "/api/v1/items", data=body, headers={"Content-Type": "application/json"}
        )
        answers.append((response.status_code, response.json()["id"]))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200] * 7 + [202]
    assert len({item_id for _, item_id in answers}) == 1
    listed = api.request("GET", "/api/v1/items?external_id=race-1").json()["items"]
    assert len(listed) == 1


def test_batch_with_partial_failure_over_http(api: ApiServer) -> None:
    batch = {
        "items": [
            item_body("hb-0", jpeg(seed=24)),
            item_body("hb-1", b"\xff\xd8\xff\xe0truncated"),
            {"external_id": "hb-2"},
        ]
    }
    response = api.request("POST", "/api/v1/items/batch", json=batch)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 422, 400]
    assert results[2]["error"] == {
        "code": "missing_field",
        "field": "items[2].image",
        "message": results[2]["error"]["message"],
    }
    assert api.wait_processed(results[0]["id"])["status"] in IN_PIPELINE


def test_another_sources_item_is_not_found_over_http(api: ApiServer) -> None:
    other = json.loads(flask_cli(api.server.instance, "sources", "create", "Chat", "--json"))
    item_id = api.request("POST", "/api/v1/items", json=item_body("mine", jpeg(seed=25))).json()[
        "id"
    ]
    response = api.request("GET", f"/api/v1/items/{item_id}", token=other["token"])
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api.request("GET", f"/api/v1/items/{item_id}").status_code == 200


def test_loopback_url_is_refused_without_an_allow_list(api: ApiServer) -> None:
    with image_host({"/a.jpg": (jpeg(), "image/jpeg")}) as host:
        response = api.request(
            "POST", "/api/v1/items", json=item_body("ssrf-1", url=host.url("/a.jpg"))
        )
        assert response.status_code == 202
        item = api.wait_processed(response.json()["id"])
    assert host.requests == []  # the server never connected
    assert item["status"] == "fetch_failed"
    assert "127.0.0.1, which is not a public internet address" in item["status_reason"]


def test_openapi_document_is_served_without_a_token(api: ApiServer) -> None:
    response = api.http.get(api.url("/api/v1/openapi.json"), timeout=10)
    assert response.status_code == 200 and response.json()["openapi"].startswith("3.1")

"""Rocket.Chat's fileUploaded event: the token field, relative file URLs, protected fetches."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.services import fetch
from tests.api_helpers import jpeg
from tests.helpers_hooks import ROCKETCHAT_FILE_UPLOADED as FILE_UPLOADED
from tests.helpers_hooks import body_bytes, items, make_hook_source, receipts


class FileServer:
    """A loopback Rocket.Chat file route: records each request's path and headers."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append((self.path, dict(self.headers)))
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.end_headers()
                    return
                body = jpeg(seed=3)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"FETCH_ALLOW_NETWORKS": ["127.0.0.1/32"]}  # the worker runs inline and fetches


def send(client, slug: str, payload: dict[str, Any]):
    return client.post(f"/hooks/{slug}", data=body_bytes(payload), content_type="application/json")


def signed(secret: str) -> dict[str, Any]:
    payload = copy.deepcopy(FILE_UPLOADED)
    payload["token"] = secret
    return payload


def test_file_is_fetched_from_the_server_with_the_bot_credentials(app, client, files) -> None:
    slug, secret = make_hook_source(
        app,
        "rocketchat",
        {"base_url": files.base, "rocketchat_user_id": "botid", "rocketchat_auth_token": "pat"},
    )
    answer = send(client, slug, signed(secret))
    assert answer.status_code == 200 and answer.json == {}  # nothing posted into the room
    (item,) = items(app, slug)
    assert item.external_id == "rocketchat:file:uredcLri4GdehDQnD"
    assert item.image_url == f"{files.base}/file-upload/uredcLri4GdehDQnD/globe.png"
    assert (item.uploader_id, item.uploader_name) == ("6410766605957d866e0fcf37", "james")
    assert item.context_url == f"{files.base}/channel/general?msg=CeswhhAKTQMsnEbc8"
    assert item.context_text == "Here is the file"
    assert item.sha256 is not None and "pat" not in str(item.item_metadata)
    path, headers = files.seen[0]
    assert path == "/file-upload/uredcLri4GdehDQnD/globe.png"
    assert (headers["X-User-Id"], headers["X-Auth-Token"]) == ("botid", "pat")


def test_credentials_never_follow_a_redirect_elsewhere(app, files) -> None:
    hop = FileServer(redirect_to=f"{files.base}/elsewhere.jpg")
    try:
        with app.app_context():
            fetch.fetch_image(
                f"{hop.base}/file-upload/x/a.png",
                max_bytes=10**6,
                allow_networks=["127.0.0.1/32"],
                headers={"X-Auth-Token": "pat"},
            )
    finally:
        hop.close()
    assert hop.seen[0][1]["X-Auth-Token"] == "pat"
    assert "X-Auth-Token" not in files.seen[0][1]


def test_wrong_or_missing_token_and_replay(app, client, files) -> None:
    slug, secret = make_hook_source(app, "rocketchat", {"base_url": files.base})
    assert send(client, slug, FILE_UPLOADED).status_code == 401
    unsigned = copy.deepcopy(FILE_UPLOADED)
    del unsigned["token"]
    assert send(client, slug, unsigned).status_code == 401
    assert send(client, slug, signed(secret)).status_code == 200
    assert send(client, slug, signed(secret)).status_code == 200
    assert [r[0] for r in receipts(app, slug)] == ["refused", "refused", "accepted", "duplicate"]
    assert files.seen and "X-Auth-Token" not in files.seen[0][1]  # no credentials configured

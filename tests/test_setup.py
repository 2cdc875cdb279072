"""The first admin: a one-time setup link, printed at start, working only on an empty database."""

from __future__ import annotations

import hashlib
import stat
import threading
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models.user import Invitation, User
from app.services.accounts import create_setup_link
from tests.conftest import csrf_token
from tests.factories import PASSWORD, audit_events, make_user, post_form

BASE = "http://mod.example.org"


def new_link(app: Flask) -> str:
    with app.app_context():
        url = create_setup_link(BASE, app.instance_path)
    assert url is not None
    return url.removeprefix(BASE)


def admin_form(email: str = "Admin@Example.org", password: str = PASSWORD) -> dict[str, str]:
    return {"email": email, "display_name": "Ada", "password": password, "password_again": password}


def test_link_is_written_to_a_private_file_and_stored_only_as_a_hash(app: Flask) -> None:
    with app.app_context():
        url = create_setup_link(BASE, app.instance_path)
        stored = db.session.scalars(select(Invitation.token_hash)).all()
    assert url is not None and url.startswith(f"{BASE}/setup/")
    token = url.rsplit("/", 1)[1]
    url_file = Path(app.instance_path) / "setup-url.txt"
    assert url_file.read_text().strip() == url
    assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_setup_link_creates_the_first_admin_once(app: Flask, client: FlaskClient) -> None:
    path = new_link(app)
    page = client.get(path)
    assert page.status_code == 200 and "Create the first admin" in page.get_data(as_text=True)

    response = post_form(client, path, admin_form(), token_from=path)

    assert response.status_code == 303 and response.location.endswith("/admin/users")
    assert "admin@example.org" in client.get("/admin/users").get_data(as_text=True)
    assert not (Path(app.instance_path) / "setup-url.txt").exists()
    events = audit_events(app, "setup.first_admin")
    assert [event.details["email"] for event in events] == ["admin@example.org"]
    # Used: the link is gone for everyone, even with a valid CSRF token.
    other = app.test_client()
    assert other.get(path).status_code == 404
    assert post_form(other, path, admin_form("second@example.org")).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_setup_link_dies_as_soon_as_any_user_exists(app: Flask, client: FlaskClient) -> None:
    path = new_link(app)
    make_user(app, "cli-admin@example.org", role="admin")  # e.g. made with `flask users create`
    assert client.get(path).status_code == 404
    assert post_form(client, path, admin_form()).status_code == 404
    with app.app_context():
        assert create_setup_link(BASE, app.instance_path) is None
    assert not (Path(app.instance_path) / "setup-url.txt").exists()


def test_each_start_makes_a_new_link_and_the_old_one_dies(app: Flask, client: FlaskClient) -> None:
    first = new_link(app)
    second = new_link(app)
    assert first != second
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    assert (Path(app.instance_path) / "setup-url.txt").read_text().strip() == BASE + second


def test_a_wrong_token_is_not_found(app: Flask, client: FlaskClient) -> None:
    new_link(app)
    assert client.get("/setup/not-the-token").status_code == 404


def test_a_form_mistake_keeps_the_link_working(app: Flask, client: FlaskClient) -> None:
    path = new_link(app)
    response = post_form(client, path, admin_form(password="short"), token_from=path)
    assert response.status_code == 400
    assert "at least 12 characters" in response.get_data(as_text=True)
    assert client.get(path).status_code == 200
    assert post_form(client, path, admin_form(), token_from=path).status_code == 303


def test_two_simultaneous_posts_make_one_admin(app: Flask) -> None:
    path = new_link(app)
    clients = [app.test_client() for _ in range(4)]
    tokens = [csrf_token(c, path) for c in clients]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def submit(index: int) -> None:
        start.wait()
        data = {"csrf_token": tokens[index], **admin_form(f"admin{index}@example.org")}
        statuses.append(clients[index].post(path, data=data).status_code)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [303, 404, 404, 404]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1

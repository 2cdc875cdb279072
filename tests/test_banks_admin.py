"""The admin's bank pages: list, create, edit, entries, import, export, and who may use them."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.bank import Bank, BankEntry
from app.services import banks
from app.services.audit import Actor
from app.services.banks import match_hashes
from tests.conftest import csrf_token
from tests.helpers_ui import create_user, inline_code, login_as, main_nav_labels

PDQ = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> FlaskClient:
    login_as(client, create_user(app, "admin"))
    return client


def post(client: FlaskClient, path: str, data: dict, **kwargs) -> object:
    token = csrf_token(client, "/admin/banks")
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def make_bank(app: Flask, name: str = "CSAM", entries: int = 0) -> int:
    with app.app_context():
        bank = banks.create_bank(name, Actor.system(), labels=["csam"])
        for k in range(entries):
            banks.add_entry(bank, "pdq", f"{k:064x}", Actor.system(), note=f"case {k}")
        db.session.commit()
        return bank.id


def test_create_a_bank_and_see_it_listed(app: Flask, admin: FlaskClient) -> None:
    page = admin.get("/admin/banks").get_data(as_text=True)
    assert "No banks yet" in page and "Banks" in main_nav_labels(page)
    response = post(
        admin,
        "/admin/banks/new",
        {"name": "NCII", "labels": "ncii, StopNCII", "pdq_threshold": "24", "description": "x"},
    )
    assert response.status_code == 303
    with app.app_context():
        bank = db.session.scalar(select(Bank))
        assert (bank.name, bank.labels, bank.pdq_threshold, bank.negative) == (
            "NCII",
            ["ncii", "stopncii"],
            24,
            False,
        )
        assert response.headers["Location"].endswith(f"/admin/banks/{bank.id}")
    listing = admin.get("/admin/banks").get_data(as_text=True)
    assert "NCII" in listing and "stopncii" in listing and "≤ 24" in listing
    assert inline_code(listing) == []


def test_form_errors_are_shown_next_to_their_fields(app: Flask, admin: FlaskClient) -> None:
    make_bank(app, "Taken")
    response = post(
        admin, "/admin/banks/new", {"name": "taken", "labels": "two words", "pdq_threshold": "99"}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "already exists" in page and "Label" in page and "from 0 to 31" in page
    assert 'aria-invalid="true"' in page


def test_edit_disable_and_enable_a_bank(app: Flask, admin: FlaskClient) -> None:
    bank_id = make_bank(app, entries=1)
    form = admin.get(f"/admin/banks/{bank_id}/edit").get_data(as_text=True)
    assert 'value="CSAM"' in form
    response = post(
        admin,
        f"/admin/banks/{bank_id}/edit",
        {
            "name": "Known benign",
            "labels": "",
            "pdq_threshold": "8",
            "negative": "on",
            "description": "",
        },
    )
    assert response.status_code == 303
    post(admin, f"/admin/banks/{bank_id}/enabled", {"enabled": "0"})
    with app.app_context():
        bank = db.session.get(Bank, bank_id)
        assert (bank.name, bank.negative, bank.pdq_threshold, bank.enabled) == (
            "Known benign",
            True,
            8,
            False,
        )
    page = admin.get(f"/admin/banks/{bank_id}").get_data(as_text=True)
    assert "disabled" in page and "negative" in page and ">Enable<" in page


def test_add_an_entry_and_it_matches(app: Flask, admin: FlaskClient) -> None:
    bank_id = make_bank(app)
    response = post(
        admin,
        f"/admin/banks/{bank_id}/entries",
        {"signal_type": "pdq", "signal": PDQ.upper(), "note": "case 9"},
    )
    assert response.status_code == 303
    page = admin.get(f"/admin/banks/{bank_id}").get_data(as_text=True)
    assert PDQ in page and "case 9" in page
    assert inline_code(page) == []
    with app.app_context():
        [found] = match_hashes(sha256=None, md5=None, pdq=PDQ, pdq_quality=100)
        assert found.note == "case 9"
    bad = post(admin, f"/admin/banks/{bank_id}/entries", {"signal_type": "md5", "signal": PDQ})
    assert bad.status_code == 422
    assert "32 hexadecimal characters" in bad.get_data(as_text=True)


def test_remove_an_entry_with_htmx_swaps_out_its_row(app: Flask, admin: FlaskClient) -> None:
    bank_id = make_bank(app, entries=2)
    with app.app_context():
        first, second = db.session.scalars(select(BankEntry.id).order_by(BankEntry.id)).all()
    page = admin.get(f"/admin/banks/{bank_id}").get_data(as_text=True)
    assert f'hx-target="#entry-{first}"' in page
    response = post(
        admin, f"/admin/banks/{bank_id}/entries/{first}/remove", {}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<tr" not in body and f"Removed entry {first}" in body
    plain = post(admin, f"/admin/banks/{bank_id}/entries/{second}/remove", {})
    assert plain.status_code == 303
    assert post(admin, f"/admin/banks/{bank_id}/entries/{second}/remove", {}).status_code == 404
    with app.app_context():
        assert db.session.scalars(select(BankEntry)).all() == []
        assert db.session.get(Bank, bank_id).pdq_count == 0


def test_removing_needs_the_csrf_token(app: Flask, admin: FlaskClient) -> None:
    bank_id = make_bank(app, entries=1)
    with app.app_context():
        entry_id = db.session.scalar(select(BankEntry.id))
    response = admin.post(f"/admin/banks/{bank_id}/entries/{entry_id}/remove")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(BankEntry, entry_id) is not None


def test_entries_page_by_cursor_and_search_by_prefix_or_note(
    app: Flask, admin: FlaskClient
) -> None:
    bank_id = make_bank(app, entries=60)
    page = admin.get(f"/admin/banks/{bank_id}").get_data(as_text=True)
    assert "case 59<" in page and "case 10<" in page and "case 9<" not in page
    older = re.search(r'href="([^"]*before=\d+[^"]*)"', page).group(1).replace("&amp;", "&")
    fragment = admin.get(older, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "case 9<" in fragment and "case 10<" not in fragment
    exact = admin.get(f"/admin/banks/{bank_id}?q={3:064x}").get_data(as_text=True)
    assert "case 3<" in exact and "case 4<" not in exact
    prefix = admin.get(f"/admin/banks/{bank_id}?q={0x3B:064x}"[:-1]).get_data(as_text=True)
    assert "case 48<" in prefix and "case 59<" in prefix and "case 47<" not in prefix
    by_note = admin.get(f"/admin/banks/{bank_id}?q=case+42").get_data(as_text=True)
    assert "case 42<" in by_note and "case 41<" not in by_note
    nothing = admin.get(f"/admin/banks/{bank_id}?q=zzz").get_data(as_text=True)
    assert "No entry matches" in nothing


def test_import_a_file_and_read_the_report(app: Flask, admin: FlaskClient) -> None:
    bank_id = make_bank(app)
    upload = f"pdq {PDQ}\nmd5 {'ab' * 16}\nvideo_md5 {'ab' * 16}\n".encode()
    response = post(
        admin,
        f"/admin/banks/{bank_id}/import",
        {"file": (io.BytesIO(upload), "list.txt"), "format": ""},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "2 added" in page and "1 error" in page and "video hash" in page
    assert inline_code(page) == []
    assert re.search(r'<td class="num">3</td>', page)
    missing = post(
        admin,
        f"/admin/banks/{bank_id}/import",
        {"format": "csv"},
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "Choose a file" in missing.get_data(as_text=True)


def test_export_downloads_every_entry_and_is_audited(app: Flask, admin: FlaskClient) -> None:
    bank_id = make_bank(app, entries=3)
    response = admin.get(f"/admin/banks/{bank_id}/export?format=te")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.get_data(as_text=True).splitlines() == [f"pdq {k:064x}" for k in range(3)]
    assert admin.get(f"/admin/banks/{bank_id}/export?format=xml").status_code == 404
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "bank.exported"))
        assert event.details == {"format": "te", "entries": 3}


@pytest.mark.parametrize("role", ["moderator", "lead"])
def test_moderators_and_leads_get_403(app: Flask, client: FlaskClient, role: str) -> None:
    bank_id = make_bank(app, entries=1)
    login_as(client, create_user(app, role))
    for path in (
        "/admin/banks",
        "/admin/banks/new",
        f"/admin/banks/{bank_id}",
        f"/admin/banks/{bank_id}/edit",
        f"/admin/banks/{bank_id}/import",
        f"/admin/banks/{bank_id}/export?format=csv",
    ):
        assert client.get(path).status_code == 403, path
    page = client.get("/").get_data(as_text=True)
    assert "Banks" not in main_nav_labels(page)
    token = csrf_token(client, "/")
    for path in (
        f"/admin/banks/{bank_id}/enabled",
        f"/admin/banks/{bank_id}/entries",
        f"/admin/banks/{bank_id}/entries/1/remove",
    ):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path

"""The reports pages: leads only, CSRF on every change, linked from the item page, clean markup."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers_review import csrf_of, login_as, make_item, make_source, make_user
from tests.helpers_ui import inline_code


def test_moderators_get_403_on_report_pages(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), status="removed")
    login_as(client, make_user(app, "moderator"))
    token = csrf_of(client)
    assert client.get("/reports/").status_code == 403
    assert client.get(f"/reports/items/{item_id}").status_code == 403
    assert client.post(f"/reports/ncmec/{item_id}", data={"csrf_token": token}).status_code == 403
    assert client.post("/reports/dsa/pending", data={"csrf_token": token}).status_code == 403


def test_changes_need_a_csrf_token(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), status="removed")
    login_as(client, make_user(app, "lead"))
    assert client.post(f"/reports/ncmec/{item_id}").status_code == 400


def test_the_item_page_offers_reports_to_leads_only(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), status="removed", with_media=True)
    login_as(client, make_user(app, "lead"))
    page = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert f"/reports/items/{item_id}" in page
    card = client.get(f"/reports/items/{item_id}", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert "Prepare a CyberTipline report" in card and "<html" not in card
    assert (
        inline_code(card) == []
        and inline_code(client.get("/reports/").get_data(as_text=True)) == []
    )
    other = FlaskClient(app, app.response_class, use_cookies=True)
    login_as(other, make_user(app, "moderator"))
    assert f"/reports/items/{item_id}" not in other.get(f"/review/items/{item_id}").get_data(
        as_text=True
    )


def test_a_draft_form_explains_each_field_and_is_clean(app: Flask, client: FlaskClient) -> None:
    item_id = make_item(app, make_source(app), status="removed", with_media=True, uploader_id="u-1")
    login_as(client, make_user(app, "lead"))
    answer = client.post(f"/reports/ncmec/{item_id}", data={"csrf_token": csrf_of(client)})
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Only if a child is in imminent danger" in page and 'value="u-1"' in page
    assert inline_code(page) == []

"""Plugin settings in the web UI: forms from declared settings, validation, write-only secrets."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.extensions import db
from app.models.plugin import PluginConfig
from app.plugins import Setting, current_plugins
from app.services import plugin_settings
from app.services.crypto import decrypt
from tests.conftest import csrf_token
from tests.pipeline_helpers import TEST_PLUGINS, audit_details, log_in_as

SECRET = "sk-live-4f2a9c81d77e"
PAGE = "/admin/plugins/test_keyed"
VALID = {
    "setting-api_key": SECRET,
    "setting-endpoint": "https://vendor.test/v1",
    "setting-threshold": "0.5",
    "setting-batch": "20",
    "setting-mode": "thorough",
    "setting-verbose": "on",
    "setting-notes": "first line\nsecond line",
}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return dict(TEST_PLUGINS)


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> FlaskClient:
    log_in_as(app, client, "admin")
    return client


def post(client: FlaskClient, path: str, data: dict[str, str], **kwargs: Any) -> TestResponse:
    return client.post(path, data={"csrf_token": csrf_token(client, PAGE), **data}, **kwargs)


def stored(app: Flask) -> PluginConfig:
    with app.app_context():
        config = db.session.get(PluginConfig, "test_keyed")
        assert config is not None
        db.session.expunge(config)
        return config


def stored_secrets(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return json.loads(decrypt(stored(app).secrets_encrypted))


def test_the_form_is_rendered_from_the_declared_settings(admin: FlaskClient) -> None:
    html = admin.get(PAGE).get_data(as_text=True)
    assert re.search(
        r'<input type="password" value="" id="setting-api-key" name="setting-api_key"', html
    )
    assert 'type="url"' in html and 'name="setting-endpoint"' in html
    assert re.search(
        r'type="number" value="0.8"[^>]*min="0"[^>]*max="1"|'
        r'type="number" value="0.8"[^>]*max="1"[^>]*min="0"',
        html,
    )
    assert '<option value="thorough">thorough</option>' in html
    assert 'type="checkbox"' in html and 'name="setting-verbose"' in html
    assert "<textarea" in html and 'name="setting-notes"' in html
    assert "not set" in html and "From the vendor&#39;s console." in html


def test_invalid_settings_get_field_errors_and_nothing_is_stored(
    app: Flask, admin: FlaskClient
) -> None:
    answer = post(
        admin,
        PAGE,
        {
            "setting-endpoint": "ftp://vendor.test",
            "setting-threshold": "2",
            "setting-batch": "ten",
            "setting-mode": "sloppy",
        },
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    for message in (
        "Api key is required.",
        "Enter an http:// or https:// address, such as https://api.example.com/v1.",
        "Enter a number from 0 to 1.",
        "Enter a whole number, such as 10.",
        "Choose one of: fast, thorough.",
    ):
        assert message in html
    assert 'value="ftp://vendor.test"' in html  # what was typed stays in the form
    with app.app_context():
        assert db.session.get(PluginConfig, "test_keyed") is None
    assert audit_details(app, "plugin.settings_changed") == []


def test_secrets_are_write_only_and_encrypted(
    app: Flask, admin: FlaskClient, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = post(admin, PAGE, VALID, follow_redirects=True)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200 and "Saved: " in html
        assert SECRET not in html
        assert re.search(r'id="setting-api-key" name="setting-api_key"', html)
        assert ">set<" in html and "Leave empty to keep the stored value." in html
        test = post(admin, f"{PAGE}/test", {}, headers={"HX-Request": "true"})
    assert SECRET not in caplog.text
    assert SECRET not in test.get_data(as_text=True)

    config = stored(app)
    assert config.settings == {
        "endpoint": "https://vendor.test/v1",
        "threshold": 0.5,
        "batch": 20,
        "mode": "thorough",
        "verbose": True,
        "notes": "first line\nsecond line",
    }
    assert stored_secrets(app) == {"api_key": SECRET}
    raw = (
        sqlite3.connect(instance_path / "modtools.db")
        .execute("SELECT settings, secrets_encrypted FROM plugin_configs")
        .fetchall()
    )
    assert raw and SECRET not in repr(raw)
    assert audit_details(app, "plugin.settings_changed") == [
        {"changed": ["api_key", "batch", "endpoint", "mode", "notes", "threshold", "verbose"]}
    ]
    with app.app_context():
        every_event = repr(audit_details(app, "plugin.connection_tested"))
    assert SECRET not in every_event


def test_an_empty_secret_keeps_the_old_one_and_clear_removes_it(
    app: Flask, admin: FlaskClient
) -> None:
    post(admin, PAGE, VALID)
    post(admin, PAGE, {**VALID, "setting-api_key": "", "setting-batch": "30"})
    assert stored_secrets(app) == {"api_key": SECRET}
    assert audit_details(app, "plugin.settings_changed")[-1] == {"changed": ["batch"]}

    cleared = post(admin, PAGE, {**VALID, "setting-api_key": "", "clear-api_key": "on"})
    assert cleared.status_code == 422  # the key is required: it cannot just be removed
    assert "Api key is required." in cleared.get_data(as_text=True)
    assert stored_secrets(app) == {"api_key": SECRET}

    replaced = post(admin, PAGE, {**VALID, "setting-api_key": "sk-new", "clear-api_key": "on"})
    assert replaced.status_code == 303
    assert stored_secrets(app) == {"api_key": "sk-new"}
    assert audit_details(app, "plugin.settings_changed")[-1] == {"changed": ["api_key", "batch"]}


def test_an_optional_secret_can_be_cleared(app: Flask) -> None:
    optional = Setting("token", "string", secret=True)
    with app.app_context():
        config = PluginConfig(name="x", kind="scanner", settings={})
        _, secrets = plugin_settings._validated(
            _FakePlugin((optional,)), {"token": "t1"}, set(), config
        )
        assert secrets == {"token": "t1"}
        config.secrets_encrypted = plugin_settings.encrypt('{"token": "t1"}')
        _, secrets = plugin_settings._validated(
            _FakePlugin((optional,)), {"token": ""}, {"token"}, config
        )
        assert secrets == {}


def test_a_plugin_is_switched_on_only_once_configured(app: Flask, admin: FlaskClient) -> None:
    refused = post(admin, f"{PAGE}/enabled", {"enabled": "1"}, follow_redirects=True)
    assert "Fill in Api key, Endpoint before switching Test vendor on." in refused.get_data(
        as_text=True
    )
    assert audit_details(app, "plugin.enabled") == []

    post(admin, PAGE, VALID)
    answer = post(admin, f"{PAGE}/enabled", {"enabled": "1"}, follow_redirects=True)
    assert "Test vendor is on." in answer.get_data(as_text=True)
    assert stored(app).enabled
    post(admin, f"{PAGE}/enabled", {"enabled": "0"})
    assert not stored(app).enabled
    assert audit_details(app, "plugin.enabled") == [{"enabled": True}, {"enabled": False}]


def test_test_connection_answers_inline_and_is_remembered(app: Flask, admin: FlaskClient) -> None:
    post(admin, PAGE, {**VALID, "setting-api_key": "wrong"})
    failed = post(admin, f"{PAGE}/test", {}, headers={"HX-Request": "true"})
    html = failed.get_data(as_text=True)
    assert "<html" not in html and "The vendor refused the API key (401)." in html
    # With the form's values: the typed key is tried without being saved.
    works = post(
        admin,
        f"{PAGE}/test",
        {**VALID, "setting-api_key": "right-key", "from_form": "1"},
        headers={"HX-Request": "true"},
    )
    assert "Connected to https://vendor.test/v1." in works.get_data(as_text=True)
    assert stored_secrets(app) == {"api_key": "wrong"}
    listing = admin.get("/admin/plugins").get_data(as_text=True)
    assert ">works<" in listing
    assert audit_details(app, "plugin.connection_tested") == [{"ok": False}, {"ok": True}]

    invalid = post(
        admin,
        f"{PAGE}/test",
        {"setting-endpoint": "nope", "from_form": "1"},
        headers={"HX-Request": "true"},
    )
    assert "Fix the settings before testing" in invalid.get_data(as_text=True)


@pytest.mark.parametrize(
    ("setting", "raw", "expected"),
    [
        (Setting("n", "integer", min=1, max=5), "3", 3),
        (Setting("n", "integer"), " 42 ", 42),
        (Setting("n", "number", min=0), "0.25", 0.25),
        (Setting("n", "boolean"), "on", True),
        (Setting("n", "boolean"), None, False),
        (Setting("n", "choice", choices=[("a", "A"), ("b", "B")]), "b", "b"),
        (Setting("n", "url"), "http://localhost:8080/x", "http://localhost:8080/x"),
        (Setting("n", "string"), "", None),
        (Setting("n", "multiline"), "a\nb", "a\nb"),
    ],
)
def test_values_are_parsed_by_type(setting: Setting, raw: str | None, expected: Any) -> None:
    assert plugin_settings.parse_value(setting, raw) == expected


@pytest.mark.parametrize(
    ("setting", "raw", "message"),
    [
        (Setting("n", "integer", min=1, max=5), "9", "Enter a number from 1 to 5."),
        (Setting("n", "integer", min=1), "0", "Enter a number of at least 1."),
        (Setting("n", "number", max=1), "1.5", "Enter a number of at most 1."),
        (Setting("n", "number"), "nan", "Enter a finite number."),
        (Setting("n", "integer"), "1.5", "Enter a whole number, such as 10."),
        (Setting("n", "url"), "javascript:alert(1)", "Enter an http:// or https:// address"),
        (Setting("n", "url"), "https://", "Enter an http:// or https:// address"),
        (Setting("n", "string", required=True), "  ", "N is required."),
        (Setting("n", "string"), "x" * 2001, "N is too long."),
    ],
)
def test_invalid_values_say_how_to_fix_them(setting: Setting, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        plugin_settings.parse_value(setting, raw)


class _FakePlugin:
    """Just enough of a plugin for the validator: its declared settings."""

    def __init__(self, settings: tuple[Setting, ...]) -> None:
        self.settings = settings


def test_a_change_is_seen_at_once_by_the_same_request_or_job(app: Flask) -> None:
    # Scans read the plugins' settings once per request or job; a change made meanwhile,
    # through this module, must not be answered from that earlier read.
    actor = plugin_settings.Actor.system("test")
    with app.app_context():
        assert "hashbank" in [s.name for s in plugin_settings.switched_on_scanners()]
        plugin_settings.set_enabled("hashbank", False, actor)
        assert "hashbank" not in [s.name for s in plugin_settings.switched_on_scanners()]
        plugin_settings.set_enabled("hashbank", True, actor)
        assert "hashbank" in [s.name for s in plugin_settings.switched_on_scanners()]
        keyed = current_plugins().scanners["test_keyed"]
        assert plugin_settings.settings_for(keyed)["threshold"] != 0.25
        form = {k.removeprefix("setting-"): v for k, v in VALID.items()}
        plugin_settings.save_settings("test_keyed", {**form, "threshold": "0.25"}, set(), actor)
        assert plugin_settings.settings_for(keyed)["threshold"] == 0.25

"""Loading plugins: built-ins through the hooks, entry points behind the allow-list, refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from app.plugins import PluginError, current_plugins, init_plugins
from tests.conftest import make_test_config
from tests.pipeline_helpers import (
    TEST_PLUGINS,
    configure,
    item_state,
    log_in_as,
    make_item,
    only_scanners,
    results,
    scan,
)

PLUGIN_DIST = Path(__file__).parent / "fixtures" / "plugin_dist"


@pytest.fixture
def plugin_dist_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example distribution on sys.path, as if pip had installed it."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIST))


def start(instance_path: Path, **config: Any) -> Flask:
    """Create an app and load its plugins, as start-up does."""
    app = create_app(make_test_config(instance_path, **config))
    init_plugins(app)
    return app


@pytest.fixture
def started(instance_path: Path) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = start(instance_path, **config)
        apps.append(app)
        with app.app_context():
            db.create_all()
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_built_in_plugins_register_through_the_same_hooks(app: Flask) -> None:
    with app.app_context():
        plugins = current_plugins()
        assert "hashbank" in plugins.scanners
        assert plugins.manager.get_plugin("plugins.hashbank") is not None
        assert plugins.scanners["hashbank"].fast and plugins.scanners["hashbank"].local
        assert app.extensions["modtools_plugins"] is plugins  # on the app, not in a global


def test_outside_plugins_load_only_when_allowed(
    plugin_dist_installed: None, started: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.plugins"):
        app = started(PLUGINS_ALLOWED=["example"])
    with app.app_context():
        plugins = current_plugins()
    assert "large_image" in plugins.scanners
    assert "unvetted" not in plugins.scanners
    assert plugins.skipped == ["unvetted"]
    assert "'unvetted'" in caplog.text and "not in PLUGINS_ALLOWED" in caplog.text


def test_no_outside_plugin_loads_by_default(plugin_dist_installed: None, started: Any) -> None:
    app = started()
    with app.app_context():
        plugins = current_plugins()
    assert "large_image" not in plugins.scanners  # the entry point's scanner stayed out
    assert "hashbank" in plugins.scanners  # the built-ins are all there
    assert plugins.skipped == ["example", "unvetted"]


def test_an_allowed_entry_point_plugin_scans_items(
    plugin_dist_installed: None, started: Any
) -> None:
    app = started(PLUGINS_ALLOWED="example", **TEST_PLUGINS)  # a comma list from the environment
    only_scanners(app, large_image={"max_megabytes": 0.001})
    item_id = make_item(app)
    scan(app, item_id)
    assert results(app, item_id)["large_image"]["labels"] == [{"name": "large", "score": 1.0}]
    assert item_state(app, item_id)[0] == "queued"


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            "tests.fixtures.bad_plugins.duplicate",
            "two plugins provide a scanner or action named 'hashbank': plugins.hashbank and "
            "tests.fixtures.bad_plugins.duplicate",
        ),
        ("tests.fixtures.bad_plugins.misspelt", "unknown hook 'register_scaners'"),
        ("tests.fixtures.bad_plugins.bad_class", "ConfusedScanner.needs must be 'bytes' or 'url'"),
    ],
)
def test_a_broken_plugin_stops_start_up_with_a_clear_error(
    instance_path: Path, module: str, message: str
) -> None:
    with pytest.raises(PluginError) as refused:
        start(instance_path, PLUGINS_MODULES=[module])
    assert message in str(refused.value)


def test_admins_see_every_plugin_and_the_ones_not_allowed(
    plugin_dist_installed: None, started: Any
) -> None:
    app = started(**TEST_PLUGINS)
    client = app.test_client()
    log_in_as(app, client, "admin")
    configure(app, "test_flaky", enabled=True)
    html = client.get("/admin/plugins").get_data(as_text=True)
    for expected in (
        "Hash banks",
        "test_flaky",
        "Test vendor",
        "2.1",
        "needs settings",
        "Installed but not allowed",
        "unvetted",
    ):
        assert expected in html
    assert client.get("/admin/plugins/hashbank").status_code == 200
    assert client.get("/admin/plugins/nope").status_code == 404


@pytest.mark.parametrize("role", ["moderator", "lead"])
def test_only_admins_reach_the_plugin_pages(app: Flask, client: FlaskClient, role: str) -> None:
    log_in_as(app, client, role)
    assert client.get("/admin/plugins").status_code == 403
    assert client.get("/admin/plugins/hashbank").status_code == 403

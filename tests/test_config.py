"""Configuration order, the instance folder and generated keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app import create_app


def test_instance_folder_follows_the_environment(instance_path: Path) -> None:
    app = create_app()
    assert Path(app.instance_path) == instance_path
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance_path / 'modtools.db'}"
    assert app.config["HUEY_URL"] == f"sqlite:///{instance_path / 'huey.db'}"


def test_secret_key_is_generated_once_and_kept_private(instance_path: Path) -> None:
    first = create_app().config["SECRET_KEY"]
    second = create_app().config["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 40
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_two_instances_get_different_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(tmp_path / "one"))
    one = create_app().config["SECRET_KEY"]
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(tmp_path / "two"))
    assert create_app().config["SECRET_KEY"] != one


def test_instance_config_file_then_environment(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_path.mkdir(parents=True)
    (instance_path / "config.py").write_text("PORT = 9001\nHUEY_WORKERS = 3\nLOG_LEVEL = 'DEBUG'\n")
    monkeypatch.setenv("MODTOOLS_HUEY_WORKERS", "5")
    monkeypatch.setenv("MODTOOLS_FETCH_ALLOW_NETWORKS", '["127.0.0.0/8"]')
    app = create_app()
    assert app.config["PORT"] == 9001  # from the file
    assert app.config["HUEY_WORKERS"] == 5  # the environment wins over the file
    assert app.config["FETCH_ALLOW_NETWORKS"] == ["127.0.0.0/8"]  # parsed as JSON


def test_database_url_alias_and_heroku_scheme(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://user@127.0.0.1/modtools")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql://user@127.0.0.1/modtools"


def test_secure_cookies_follow_https(instance_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_app().config["SESSION_COOKIE_SECURE"] is False
    monkeypatch.setenv("MODTOOLS_PREFERRED_URL_SCHEME", "https")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True


def test_sqlite_runs_in_wal_mode_with_foreign_keys(app) -> None:
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 15000

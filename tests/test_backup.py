"""Backup and restore: an online copy taken under write load brings back every accepted item."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from app import create_app
from app.extensions import db
from app.models.item import Item
from app.services import backup
from app.services.ingest import original_store
from tests.api_helpers import ROOT, ApiServer, item_body, jpeg
from tests.helpers_review import make_item, make_source


def run_flask(instance: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app wsgi ARGS`` against ``instance``, as an operator types it."""
    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(instance)}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_backup_under_write_load_restores_every_accepted_item(tmp_path: Path, monkeypatch) -> None:
    server = ApiServer(tmp_path / "live")
    server.start()
    accepted: list[tuple[float, str]] = []  # (monotonic time the 202 arrived, item id)
    stop = threading.Event()

    def keep_posting() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            body = item_body(f"load-{number}", jpeg(seed=number))
            response = server.request("POST", "/api/v1/items", json=body)
            while response.status_code == 429:  # past the token's burst: wait as asked, resend
                time.sleep(float(response.headers["Retry-After"]))
                response = server.request("POST", "/api/v1/items", json=body)
            assert response.status_code == 202, response.text
            accepted.append((time.monotonic(), response.json()["id"]))

    writer = threading.Thread(target=keep_posting)
    try:
        writer.start()
        while len(accepted) < 10:  # the load is well under way
            time.sleep(0.05)
        started = time.monotonic()
        done = run_flask(server.server.instance, "backup", str(tmp_path / "backup"))
        assert done.returncode == 0, done.stderr
        assert "secret_key" in done.stderr and "keep" in done.stderr  # the secrets warning
        # Let the writer run past the backup so it was under load the whole time.
        finished = len(accepted)
        while len(accepted) < finished + 5:
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join(30)
        server.close()
    before = [item_id for at, item_id in accepted if at < started]
    assert len(before) >= 10

    restored = tmp_path / "restored"
    done = run_flask(restored, "restore", str(tmp_path / "backup"))
    assert done.returncode == 0, done.stderr
    assert (restored / "secret_key").read_text() == (
        server.server.instance / "secret_key"
    ).read_text()
    assert oct((restored / "secret_key").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(restored))
    app = create_app()
    with app.app_context():
        store = original_store()
        for item_id in before:
            item = db.session.get(Item, item_id)
            assert item is not None, f"item {item_id} accepted before the backup is missing"
            assert store.exists(item.sha256), f"the image of item {item_id} is missing"
        db.engine.dispose()

    again = run_flask(restored, "restore", str(tmp_path / "backup"))
    assert again.returncode != 0 and "--force" in again.stderr
    assert run_flask(restored, "restore", "--force", str(tmp_path / "backup")).returncode == 0


def test_backup_refuses_a_folder_that_is_not_empty(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "something").write_text("x")
    result = runner.invoke(args=["backup", str(tmp_path / "old")])
    assert result.exit_code != 0 and "not empty" in result.output


def test_backup_copies_quarantine_and_skips_half_written_files(app: Flask, tmp_path: Path) -> None:
    make_item(app, make_source(app), with_media=True, seed=3)
    media = Path(app.config["MEDIA_ROOT"])
    (media / "originals" / ".incoming-x").write_bytes(b"partial")
    quarantine = media.parent / "quarantine" / "ab"
    quarantine.mkdir(parents=True)
    (quarantine / "blob").write_bytes(b"evidence")
    with app.app_context():
        instance = backup.Instance.from_config(dict(app.config), app.instance_path)
        manifest = backup.backup(instance, tmp_path / "copy")
    assert (tmp_path / "copy" / "quarantine" / "ab" / "blob").read_bytes() == b"evidence"
    assert not (tmp_path / "copy" / "media" / "originals" / ".incoming-x").exists()
    assert manifest["database"] == "modtools.db" and manifest["files"] == 4  # orig+2 derived+1

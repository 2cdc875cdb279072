"""Demo data: synthetic images with near-duplicates of a demo bank, loaded and removed in a step."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from PIL import Image
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models.bank import Bank
from app.models.item import Item
from app.models.source import Source
from app.services import demo, hashing
from app.services.audit import Actor
from app.services.ingest import derived_store, original_store
from tests.api_helpers import ROOT, wait_until
from tests.conftest import make_test_config
from tests.helpers_review import make_item, make_source
from tests.test_runtime import free_port


def distance(first: str, second: str) -> int:
    return bin(int(first, 16) ^ int(second, 16)).count("1")


def test_demo_images_are_synthetic_and_some_are_near_duplicates_of_the_bank() -> None:
    images = list(demo.demo_images())
    assert len(images) == 50 and len({image.external_id for image in images}) == 50
    cards = [
        hashing.compute_hashes(demo._encode(demo.spam_card(n))).pdq
        for n in range(len(demo.SPAM_WORDS))
    ]
    near = 0
    for image in images:
        with Image.open(io.BytesIO(image.data)) as picture:
            assert picture.format == "JPEG"
        pdq = hashing.compute_hashes(image.data).pdq
        assert pdq is not None
        near += min(distance(pdq, card) for card in cards) <= 31
    assert near == 13  # every fourth image, each within the bank's PDQ threshold
    assert [image.data for image in demo.demo_images(3)] == [image.data for image in images[:3]]


def test_load_in_process_then_remove_everything_in_one_step(app: Flask) -> None:
    with app.app_context():
        created = demo.load_in_process(Actor.system("test"), count=12)
        assert created == 12
        source = demo.demo_sources()[0]
        assert source.settings == {"demo": True}
        bank = demo.demo_bank()
        assert bank is not None and bank.labels == ["spam"] and "Demo data" in bank.description
        statuses = dict(
            db.session.execute(select(Item.status, func.count()).group_by(Item.status)).all()
        )
        assert statuses.get("queued", 0) >= 3  # the near-duplicates matched the demo bank
        hashes = list(db.session.scalars(select(Item.sha256)))
        assert all(original_store().exists(sha256) for sha256 in hashes)
    # A real item that happens to have the same bytes as a demo one keeps its media.
    keeper = make_item(app, make_source(app, "Real"), sha256=hashes[0])
    with app.app_context():
        removed = demo.remove_demo(Actor.system("test"))
        assert (removed.items, removed.sources, removed.banks) == (12, 1, 1)
        assert removed.media == 11
        assert db.session.scalars(select(Item.id)).all() == [keeper]
        assert demo.demo_sources() == [] and demo.demo_bank() is None
        assert db.session.scalar(select(func.count()).select_from(Bank)) == 0
        assert original_store().exists(hashes[0]) and derived_store().exists(hashes[0])
        assert not any(original_store().exists(sha256) for sha256 in hashes[1:])


def test_the_command_says_clearly_when_the_server_is_not_running(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["demo", "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code != 0
    assert "Cannot reach Modtools Image at http://127.0.0.1:" in result.output
    assert "Start the server first" in result.output
    with runner.app.app_context():  # nothing was created for a server that is not there
        assert db.session.scalars(select(Source)).all() == []


@pytest.mark.slow
def test_the_command_sends_the_images_through_the_real_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "demo-instance"
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(instance))
    app = create_app(make_test_config(instance, HUEY_IMMEDIATE=False))
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "MODTOOLS_INSTANCE_PATH": str(instance),
        "MODTOOLS_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.server"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _reachable(url), what="the server")
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "demo", "--url", url, "--count", "8"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Sent 8 demo images" in done.stdout

        def processed() -> bool:
            with app.app_context():
                waiting = db.session.scalar(
                    select(func.count())
                    .select_from(Item)
                    .where(Item.status.in_(["received", "scanning"]))
                )
                total = db.session.scalar(select(func.count()).select_from(Item))
                db.session.remove()
                return total == 8 and waiting == 0

        wait_until(processed, timeout=60, what="the demo items to be scanned")
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "demo", "--remove"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Removed 8 demo items" in done.stdout, done.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
        with app.app_context():
            db.engine.dispose()


def _reachable(url: str) -> bool:
    import requests

    session = requests.Session()
    session.trust_env = False
    try:
        return session.get(url + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False

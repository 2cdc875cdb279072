"""The same code scaled out: PostgreSQL, Redis-backed Huey, two web processes, two consumers.

What must hold when processes run side by side: no accepted item is lost, no scan runs twice to
completion, and no two moderators are handed the same item.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from app import create_app
from app.extensions import db
from app.models.item import Item
from app.models.job import Job
from app.models.scan import ScanResult
from app.models.user import User
from app.services import claims
from tests.api_helpers import item_body, jpeg
from tests.conftest import make_test_config
from tests.fakes.s3 import FakeS3
from tests.helpers_review import make_item, make_source, make_user
from tests.scale.conftest import Cluster, flask_cli

ITEMS = 40
S3_ITEMS = 10
MODERATORS = 12
QUEUED = 60


def test_two_web_processes_and_two_consumers_lose_nothing_and_scan_once(
    cluster: Cluster, tmp_path: Path, monkeypatch
) -> None:
    accepted = []
    for number in range(ITEMS):
        response = cluster.post_item(number, item_body(f"scale-{number}", jpeg(seed=number)))
        assert response.status_code == 202, response.text
        accepted.append(response.json()["id"])

    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(cluster.instance))
    app = create_app(
        make_test_config(
            cluster.instance,
            HUEY_IMMEDIATE=False,
            SQLALCHEMY_DATABASE_URI=cluster.env["DATABASE_URL"],
            SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
            HUEY_URL=cluster.env["HUEY_URL"],
        )
    )
    with app.app_context():
        deadline = time.monotonic() + 120
        while True:
            db.session.expire_all()
            unsettled = db.session.scalar(
                select(func.count())
                .select_from(Item)
                .where(Item.status.in_(["received", "scanning"]))
            )
            if not unsettled:
                break
            assert time.monotonic() < deadline, f"{unsettled} items unsettled\n{cluster.logs()}"
            time.sleep(0.5)
        stored = set(db.session.scalars(select(Item.id)))
        assert set(accepted) <= stored and len(stored) == ITEMS  # none lost, none doubled

        results = db.session.execute(
            select(ScanResult.item_id, ScanResult.scanner, ScanResult.scan_round, ScanResult.status)
        ).all()
        per_round = Counter((item, scanner, round_) for item, scanner, round_, _ in results)
        assert per_round and max(per_round.values()) == 1
        assert {item for item, *_ in results} == set(accepted)  # every item was scanned
        assert all(status == "done" for *_, status in results)

        work = db.session.execute(select(Job.name, Job.args, Job.status, Job.attempts)).all()
        assert all(status == "done" for _, _, status, _ in work), work
        # Each job ran to completion exactly once: one attempt, never claimed by both consumers.
        assert all(attempts == 1 for *_, attempts in work), work
        processed = Counter(tuple(args) for name, args, *_ in work if name == "process_item")
        assert sorted(processed) == sorted((item_id,) for item_id in accepted)
        assert set(processed.values()) == {1}
        db.engine.dispose()


def test_media_on_s3_are_shared_by_the_web_processes_and_the_consumers(
    s3_cluster: tuple[Cluster, FakeS3, str], monkeypatch
) -> None:
    cluster, fake, bucket = s3_cluster
    images = [jpeg(seed=500 + number) for number in range(S3_ITEMS)]
    for number, image in enumerate(images):
        response = cluster.post_item(number, item_body(f"s3-{number}", image))
        assert response.status_code == 202, response.text

    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(cluster.instance))
    app = create_app(
        make_test_config(
            cluster.instance,
            SQLALCHEMY_DATABASE_URI=cluster.env["DATABASE_URL"],
            SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
        )
    )
    with app.app_context():
        deadline = time.monotonic() + 120
        while db.session.scalar(
            select(func.count()).select_from(Item).where(Item.status.in_(["received", "scanning"]))
        ):
            assert time.monotonic() < deadline, f"items unsettled\n{cluster.logs()}"
            time.sleep(0.5)
            db.session.expire_all()
        db.engine.dispose()
    # A consumer made the review images from the original a web process put in the bucket.
    listing = fake.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    keys = {entry["Key"] for entry in listing}
    for image in images:
        sha256 = hashlib.sha256(image).hexdigest()
        folder = f"{sha256[:2]}/{sha256[2:4]}"
        assert f"originals/{folder}/{sha256}" in keys
        assert f"derived/{folder}/{sha256}.preview.webp" in keys, cluster.logs()
    assert not (cluster.instance / "media").exists(), "no process wrote media to its own disk"


def test_claim_next_never_hands_one_item_to_two_moderators(
    tmp_path: Path, pg_url: str, monkeypatch
) -> None:
    instance = tmp_path / "instance"
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(instance))
    # NullPool: each moderator thread's connection closes when it is done, none linger in a pool.
    options = {"poolclass": NullPool}
    app = create_app(
        make_test_config(
            instance, SQLALCHEMY_DATABASE_URI=pg_url, SQLALCHEMY_ENGINE_OPTIONS=options
        )
    )
    with app.app_context():
        db.create_all()
    source_id = make_source(app)
    for _ in range(QUEUED):
        make_item(app, source_id, status="queued")
    moderators = [make_user(app) for _ in range(MODERATORS)]
    handed: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(MODERATORS)

    def take_all(user) -> None:
        try:
            with app.app_context():
                start.wait()
                while (item_id := claims.claim_next(user)) is not None:
                    handed.append(item_id)
                    # Finish the item so the next call must look for another one.
                    db.session.execute(
                        Item.__table__.update().where(Item.id == item_id).values(status="approved")
                    )
                    db.session.commit()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=take_all, args=(user,)) for user in moderators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(handed) == len(set(handed)) == QUEUED
    with app.app_context():
        db.engine.dispose()


def test_copy_database_moves_sqlite_rows_to_postgresql(app, runner, pg_url: str) -> None:
    source_id = make_source(app)
    item_ids = {make_item(app, source_id, status="queued") for _ in range(5)}
    make_user(app, "admin")
    result = runner.invoke(args=["copy-database", "--to", pg_url])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["copy-database", "--to", pg_url])
    assert again.exit_code != 0 and "--force" in again.output

    moved = create_app(
        make_test_config(
            Path(app.instance_path),
            SQLALCHEMY_DATABASE_URI=pg_url,
            SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool},
        )
    )
    with moved.app_context():
        assert set(db.session.scalars(select(Item.id))) == item_ids
        # Ids continue after the copied ones: a new user gets a fresh id, not a collision.
        db.session.add(User(email="new@example.org", display_name="new", password_hash="x"))
        db.session.commit()
        db.session.close()
        db.engine.dispose()


def test_migrations_run_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    import os

    env = {**os.environ, "MODTOOLS_INSTANCE_PATH": str(tmp_path / "i"), "DATABASE_URL": pg_url}
    flask_cli(env, "db", "upgrade")
    assert "(head)" in flask_cli(env, "db", "current")  # every migration applied on PostgreSQL

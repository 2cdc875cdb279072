"""Media in an S3-compatible bucket: stores, ingest, review, retention, backups, bad settings.

Everything talks to moto's S3 server on loopback (``tests/fakes/s3.py``) through real HTTP; each
test gets a bucket of its own. The app's keys carry the prefix ``site-a/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from PIL import Image

from app import create_app
from app.extensions import db
from app.models.item import Item
from app.models.types import utcnow
from app.runner import check_media
from app.services import retention, storage
from app.services.s3_storage import Bucket, S3DerivedStore, S3Settings, S3Store
from app.services.storage import MediaConfigError, MediaUnavailable, MissingMedia
from plugins.quarantine.store import move_to_quarantine
from tests.api_helpers import bearer, item_body, jpeg
from tests.conftest import make_test_config
from tests.fakes.s3 import FakeS3
from tests.helpers_review import csrf_of, login_as, make_item, make_source, make_user

SECRET = "never-show-this-secret-0451"
PREFIX = "site-a/"
ORIGINAL_URL = re.compile(r'src="(/media/items/[^"]+/original\?token=[^"]+)"')


@pytest.fixture(scope="module")
def fake_s3() -> Iterator[FakeS3]:
    server = FakeS3().start()
    yield server
    server.stop()


@pytest.fixture
def bucket_name(fake_s3: FakeS3) -> str:
    return new_bucket(fake_s3)


@pytest.fixture
def app_config(fake_s3: FakeS3, bucket_name: str) -> dict[str, Any]:
    return s3_config(fake_s3, bucket_name)


def s3_config(fake: FakeS3, bucket: str, **overrides: Any) -> dict[str, Any]:
    """The settings of an app whose media live in ``bucket``."""
    return {
        "MEDIA_BACKEND": "s3",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": fake.url,
        "S3_ACCESS_KEY_ID": "modtools",
        "S3_SECRET_ACCESS_KEY": SECRET,
        "S3_PREFIX": "/site-a/",  # slashes are tidied: keys start with "site-a/"
        **overrides,
    }


def new_bucket(fake: FakeS3, **options: Any) -> str:
    name = f"modtools-{secrets.token_hex(6)}"
    client = fake.client()
    client.create_bucket(Bucket=name)
    if options.get("versioning"):
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def objects(fake: FakeS3, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket, by key."""
    client = fake.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        entry["Key"]: client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        for entry in listing
    }


def keys_of(sha256: str) -> dict[str, str]:
    """Where the original and the review images of ``sha256`` are, with the test prefix."""
    folder = f"{sha256[:2]}/{sha256[2:4]}"
    return {
        "original": f"{PREFIX}originals/{folder}/{sha256}",
        "thumb": f"{PREFIX}derived/{folder}/{sha256}.thumb.webp",
        "preview": f"{PREFIX}derived/{folder}/{sha256}.preview.webp",
        "quarantine": f"{PREFIX}quarantine/{folder}/{sha256}",
    }


def bucket_of(fake: FakeS3, bucket: str) -> Bucket:
    return Bucket(S3Settings.from_config(s3_config(fake, bucket)))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_originals_and_review_images_round_trip(fake_s3: FakeS3, bucket_name: str) -> None:
    bucket = bucket_of(fake_s3, bucket_name)
    originals, derived = S3Store(bucket), S3DerivedStore(bucket)
    data = jpeg(seed=1)
    sha256 = originals.put(data)
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert originals.exists(sha256) and originals.get(sha256) == data
    with originals.open(sha256) as stream:
        assert stream.read() == data
    derived.save(sha256, storage.make_derivatives(data))
    assert derived.exists(sha256)
    with Image.open(io.BytesIO(derived.get(sha256, "preview"))) as preview:
        assert preview.format == "WEBP"
    keys = keys_of(sha256)
    assert objects(fake_s3, bucket_name).keys() == {
        keys["original"],
        keys["thumb"],
        keys["preview"],
    }

    assert originals.delete(sha256) and derived.delete(sha256)
    assert not originals.exists(sha256) and not derived.exists(sha256)
    assert not originals.delete(sha256) and not derived.delete(sha256)
    assert objects(fake_s3, bucket_name) == {}


def test_the_same_image_sent_twice_is_stored_once(fake_s3: FakeS3) -> None:
    name = new_bucket(fake_s3, versioning=True)  # a second upload would leave a second version
    store = S3Store(bucket_of(fake_s3, name))
    data = jpeg(seed=2)
    assert store.put(data) == store.put(data)
    versions = fake_s3.client().list_object_versions(Bucket=name)["Versions"]
    assert [version["Key"] for version in versions] == [keys_of(store.put(data))["original"]]


def test_a_missing_object_is_missing_media(fake_s3: FakeS3, bucket_name: str) -> None:
    bucket = bucket_of(fake_s3, bucket_name)
    originals, derived = S3Store(bucket), S3DerivedStore(bucket)
    absent = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(MissingMedia):
        originals.get(absent)
    with pytest.raises(MissingMedia):
        originals.open(absent)
    with pytest.raises(MissingMedia):
        derived.get(absent, "thumb")
    assert not originals.exists(absent) and not originals.delete(absent)
    with pytest.raises(ValueError):
        originals.get("../../etc/passwd")


def test_an_upload_damaged_on_the_way_is_refused_and_nothing_is_stored(
    fake_s3: FakeS3, bucket_name: str
) -> None:
    bucket = bucket_of(fake_s3, bucket_name)

    def flip_a_byte(request: Any, **kwargs: Any) -> None:
        body = request.body.read() if hasattr(request.body, "read") else request.body
        request.body = body[:-1] + bytes([body[-1] ^ 0xFF])

    bucket.client.meta.events.register("before-send.s3.PutObject", flip_a_byte)
    with pytest.raises(MediaUnavailable) as refused:
        S3Store(bucket).put(jpeg(seed=3))
    assert refused.value.state == "upload corrupted" and "BadDigest" in str(refused.value)
    assert objects(fake_s3, bucket_name) == {}


def test_an_item_sent_through_the_api_is_kept_in_the_bucket_and_reviewed_from_it(
    app: Flask, client: FlaskClient, token: str, fake_s3: FakeS3, bucket_name: str
) -> None:
    image = jpeg(seed=4)
    response = client.post("/api/v1/items", json=item_body("s3-1", image), headers=bearer(token))
    assert response.status_code == 202, response.get_json()
    item_id = response.get_json()["id"]
    keys = keys_of(hashlib.sha256(image).hexdigest())
    stored = objects(fake_s3, bucket_name)
    assert stored[keys["original"]] == image
    assert {keys["thumb"], keys["preview"]} <= stored.keys()
    assert not Path(app.config["MEDIA_ROOT"]).exists(), "nothing is written to the local disk"

    moderator = make_user(app)
    login_as(client, moderator)
    page = client.get(f"/review/items/{item_id}").get_data(as_text=True)
    assert f"/media/items/{item_id}/preview" in page
    preview = client.get(f"/media/items/{item_id}/preview")
    assert preview.status_code == 200 and preview.mimetype == "image/webp"
    assert preview.data == stored[keys["preview"]]

    # A full reveal sends the original's bytes through the app, never a link into the bucket.
    revealed = client.post(
        f"/review/items/{item_id}/reveal",
        data={"csrf_token": csrf_of(client, f"/review/items/{item_id}"), "mode": "full"},
        headers={"HX-Request": "true"},
    )
    match = ORIGINAL_URL.search(revealed.get_data(as_text=True))
    assert match, revealed.get_data(as_text=True)
    assert fake_s3.url not in revealed.get_data(as_text=True)
    original = client.get(match.group(1).replace("&amp;", "&"))
    assert original.status_code == 200 and original.data == image
    assert original.mimetype == "image/jpeg"


def test_retention_purge_deletes_from_the_bucket(
    app: Flask, fake_s3: FakeS3, bucket_name: str
) -> None:
    source_id = make_source(app)
    decided = utcnow() - timedelta(days=31)
    old = make_item(app, source_id, status="cleared", seed=5, with_media=True, decided_at=decided)
    young = make_item(app, source_id, status="cleared", seed=6, with_media=True)
    with app.app_context():
        old_sha, young_sha = (db.session.get(Item, i).sha256 for i in (old, young))
        run, _ = retention.purge()
        assert run.items_purged == 1 and run.blobs_deleted == 1
    remaining = objects(fake_s3, bucket_name).keys()
    assert not any(old_sha in key for key in remaining)
    assert {keys_of(young_sha)[kind] for kind in ("original", "thumb", "preview")} == remaining


def test_backup_and_restore_with_s3(
    app: Flask,
    runner: FlaskCliRunner,
    fake_s3: FakeS3,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source_id = make_source(app)
    kept, quarantined = (make_item(app, source_id, seed=s, with_media=True) for s in (7, 8))
    with app.app_context():
        kept_sha, quarantined_sha = (db.session.get(Item, i).sha256 for i in (kept, quarantined))
        move_to_quarantine(db.session.get(Item, quarantined))
        db.session.commit()
        kept_bytes = storage.original_store().get(kept_sha)
    assert keys_of(quarantined_sha)["quarantine"] in objects(fake_s3, bucket_name)

    saved = tmp_path / "backup"
    result = runner.invoke(args=["backup", str(saved)])
    assert result.exit_code == 0, result.output
    assert "6 media files" in result.output  # 2 originals (one quarantined), 4 review images
    folder = f"{kept_sha[:2]}/{kept_sha[2:4]}"
    copy = saved / "media" / "originals" / folder / kept_sha
    assert copy.read_bytes() == kept_bytes
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert (saved / "media" / "derived" / folder / f"{kept_sha}.preview.webp").is_file()
    q_folder = f"{quarantined_sha[:2]}/{quarantined_sha[2:4]}"
    assert (saved / "quarantine" / q_folder / quarantined_sha).is_file()
    assert json.loads((saved / "manifest.json").read_text())["media_backend"] == "s3"

    # Disaster: a new instance and an empty bucket get everything back.
    target = new_bucket(fake_s3)
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(tmp_path / "restored"))
    restored = create_app(make_test_config(tmp_path / "restored", **s3_config(fake_s3, target)))
    restore = restored.test_cli_runner()
    result = restore.invoke(args=["restore", str(saved)])
    assert result.exit_code == 0, result.output
    assert objects(fake_s3, target) == objects(fake_s3, bucket_name)
    with restored.app_context():
        assert db.session.get(Item, kept) is not None
        assert storage.original_store().get(kept_sha) == kept_bytes
        assert storage.quarantine_store().exists(quarantined_sha)
        assert storage.derived_store().exists(quarantined_sha)

    result = restore.invoke(args=["restore", str(saved)])
    assert result.exit_code != 0 and "--force" in result.output
    with restored.app_context():  # an image that came after the backup
        stray = storage.original_store().put(jpeg(seed=9))
    result = restore.invoke(args=["restore", "--force", str(saved)])
    assert result.exit_code == 0, result.output
    assert keys_of(stray)["original"] not in objects(fake_s3, target)
    assert objects(fake_s3, target) == objects(fake_s3, bucket_name)
    with restored.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_filesystem_backup_moves_the_media_into_a_bucket(
    fake_s3: FakeS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(tmp_path / "old"))
    old = create_app(make_test_config(tmp_path / "old"))
    with old.app_context():
        db.create_all()
    item_id = make_item(old, make_source(old), seed=10, with_media=True)
    assert old.test_cli_runner().invoke(args=["backup", str(tmp_path / "saved")]).exit_code == 0
    with old.app_context():
        sha256 = db.session.get(Item, item_id).sha256
        data = storage.original_store().get(sha256)
        db.engine.dispose()

    target = new_bucket(fake_s3)
    monkeypatch.setenv("MODTOOLS_INSTANCE_PATH", str(tmp_path / "new"))
    new = create_app(make_test_config(tmp_path / "new", **s3_config(fake_s3, target)))
    result = new.test_cli_runner().invoke(args=["restore", str(tmp_path / "saved")])
    assert result.exit_code == 0, result.output
    assert objects(fake_s3, target)[keys_of(sha256)["original"]] == data
    assert {keys_of(sha256)["thumb"], keys_of(sha256)["preview"]} <= objects(fake_s3, target).keys()
    with new.app_context():
        db.engine.dispose()


def test_settings_that_cannot_work_stop_start_up(instance_path: Path) -> None:
    for settings, hint in (
        ({"MEDIA_BACKEND": "s3"}, "S3_BUCKET"),
        ({"MEDIA_BACKEND": "nfs"}, "MEDIA_BACKEND"),
        ({"MEDIA_BACKEND": "s3", "S3_BUCKET": "b", "S3_ACCESS_KEY_ID": "k"}, "S3_SECRET"),
        ({"MEDIA_BACKEND": "s3", "S3_BUCKET": "b", "S3_ENDPOINT_URL": "minio:9000"}, "https://"),
    ):
        with pytest.raises(MediaConfigError, match=hint):
            create_app(make_test_config(instance_path, **settings))


def test_an_unreachable_endpoint_fails_health_and_start_up_not_requests_later(
    instance_path: Path, token_app: tuple[Flask, str]
) -> None:
    app, token = token_app
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json() == {
        "status": "failing",
        "database": "ok",
        "worker": "ok",
        "media": "unreachable",
    }
    with pytest.raises(SystemExit, match="S3_ENDPOINT_URL"):
        check_media(app)
    sent = client.post("/api/v1/items", json=item_body("down-1", jpeg()), headers=bearer(token))
    assert sent.status_code == 503
    assert sent.get_json()["error"]["code"] == "media_unavailable"
    saved = instance_path.parent / "backup"
    result = app.test_cli_runner().invoke(args=["backup", str(saved)])
    assert result.exit_code != 0 and "Cannot reach the S3 service" in result.output
    assert not saved.exists(), "no backup folder without its media"


@pytest.fixture
def token_app(instance_path: Path) -> Iterator[tuple[Flask, str]]:
    """An app whose S3 endpoint has nothing listening, with a source token."""
    from tests.api_helpers import make_source as make_api_source

    config = {
        "MEDIA_BACKEND": "s3",
        "S3_BUCKET": "modtools-media",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "S3_ACCESS_KEY_ID": "modtools",
        "S3_SECRET_ACCESS_KEY": SECRET,
    }
    app = create_app(make_test_config(instance_path, **config))
    with app.app_context():
        db.create_all()
    yield app, make_api_source(app)[1]
    with app.app_context():
        db.engine.dispose()


def test_a_missing_bucket_is_named_on_health(fake_s3: FakeS3, instance_path: Path) -> None:
    app = create_app(make_test_config(instance_path, **s3_config(fake_s3, "no-such-bucket-here")))
    assert app.test_client().get("/healthz").get_json()["media"] == "no such bucket"
    with app.app_context(), pytest.raises(MediaUnavailable, match="Create it"):
        storage.check_media_store()


def test_bad_credentials_are_named_and_the_secret_never_shows(
    fake_s3: FakeS3, bucket_name: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    iam = fake_s3.client("iam")
    user = f"modtools-{secrets.token_hex(4)}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="media",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    good = {"S3_ACCESS_KEY_ID": key["AccessKeyId"], "S3_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    fake_s3.require_credentials(True)
    try:
        app = create_app(make_test_config(instance_path, **s3_config(fake_s3, bucket_name, **good)))
        assert app.test_client().get("/healthz").get_json()["media"] == "ok"
        wrong = {**good, "S3_SECRET_ACCESS_KEY": SECRET}
        for settings in (wrong, {}):  # a wrong secret; a key S3 does not know
            caplog.clear()
            with caplog.at_level(logging.DEBUG):
                app = create_app(
                    make_test_config(instance_path, **s3_config(fake_s3, bucket_name, **settings))
                )
                health = app.test_client().get("/healthz")
                with app.app_context(), pytest.raises(MediaUnavailable) as refused:
                    storage.check_media_store()
            assert health.status_code == 503 and health.get_json()["media"] == "access denied"
            assert "S3_SECRET_ACCESS_KEY" in str(refused.value)
            assert SECRET not in health.get_data(as_text=True) + str(refused.value)
            assert SECRET not in caplog.text and "access denied" in caplog.text
            assert SECRET not in repr(S3Settings.from_config(app.config))
    finally:
        fake_s3.require_credentials(False)

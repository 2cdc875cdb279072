"""Backup and restore of one instance: the database, the media, and the instance keys.

A backup is taken while the server runs. The database is copied first, as one consistent
snapshot (SQLite's online backup API, or ``pg_dump`` for PostgreSQL), and the media after it:
ingest stores a blob before it commits the item row, so every item in the snapshot has its blob
on disk by the time the media is copied. The copy may hold a few blobs of items accepted after
the snapshot; they are harmless.

With ``MEDIA_BACKEND=s3`` the media is in a bucket: the backup downloads its objects into the
same folder layout (``media/originals``, ``media/derived``, ``quarantine``), and a restore uploads
them back. So a backup restores into either backend, which is also the way to move an existing
installation's media from the filesystem into a bucket.

The backup folder also holds ``secret_key``, ``encryption_key`` and ``config.py``: they are
secrets, so the folder is created mode 0700 and must be kept as privately as the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from app.models.types import utcnow
from app.services import storage

if TYPE_CHECKING:
    from app.services.s3_storage import Bucket, S3Settings

DATABASE_FILE = "modtools.db"
DUMP_FILE = "modtools.pgdump"
MANIFEST = "manifest.json"
SECRET_FILES = ("secret_key", "encryption_key", "config.py")
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says what to do."""


@dataclass(frozen=True)
class Instance:
    """Where one installation keeps its things (read from the app's configuration)."""

    database_uri: str
    media_root: Path
    quarantine_root: Path
    instance_path: Path
    s3: S3Settings | None = None  # the bucket holding the media, instead of the two roots

    @classmethod
    def from_config(cls, config: dict, instance_path: str) -> Instance:
        """The installation the given configuration describes."""
        s3 = None
        if storage.media_backend(config) == "s3":
            from app.services.s3_storage import S3Settings

            s3 = S3Settings.from_config(config)
        return cls(
            config["SQLALCHEMY_DATABASE_URI"],
            Path(config["MEDIA_ROOT"]),
            storage.quarantine_root(config),
            Path(instance_path),
            s3,
        )

    def bucket(self) -> Bucket:
        """A connection to the instance's bucket (only with ``s3`` settings)."""
        from app.services.s3_storage import Bucket

        assert self.s3 is not None
        return Bucket(self.s3)

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a SQLite file."""
        return self.database_uri.startswith("sqlite")

    def sqlite_path(self) -> Path:
        """The SQLite database file."""
        return Path(make_url(self.database_uri).database or "")


def backup(instance: Instance, destination: Path) -> dict:
    """Copy the instance into ``destination`` (new or empty); returns the manifest written."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: choose a new folder for each backup.")
    bucket = instance.bucket() if instance.s3 is not None else None
    if bucket is not None:
        with _media_errors():
            bucket.check()  # a clear error now rather than a backup without its media
    destination.mkdir(mode=0o700, parents=True, exist_ok=True)
    started = utcnow()
    if instance.is_sqlite:
        _sqlite_copy(instance.sqlite_path(), destination / DATABASE_FILE)
        database = DATABASE_FILE
    else:
        _pg_dump(instance.database_uri, destination / DUMP_FILE)
        database = DUMP_FILE
    if bucket is not None:
        with _media_errors():
            blobs = download_bucket(bucket, destination)
    else:
        blobs = copy_tree(instance.media_root, destination / "media")
        blobs += copy_tree(instance.quarantine_root, destination / "quarantine")
    secrets = _copy_secrets(instance.instance_path, destination)
    manifest = {
        "format": 1,
        "started_at": started.isoformat(),
        "finished_at": utcnow().isoformat(),
        "database": database,
        "media_backend": "s3" if instance.s3 is not None else "filesystem",
        "files": blobs,
        "secrets": secrets,
    }
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(instance: Instance, source: Path, force: bool = False) -> dict:
    """Bring a backup back into ``instance``; refuses a non-empty instance unless ``force``.

    Stop the server and workers first: the database is replaced underneath them.
    """
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} holds no {MANIFEST}: is it a backup folder?") from None
    if not force and not is_empty(instance):
        raise BackupError(
            "This instance already holds data. Restore into a new instance folder, "
            "or pass --force to replace everything in it."
        )
    bucket = instance.bucket() if instance.s3 is not None else None
    if bucket is not None:
        with _media_errors():
            bucket.check()  # before the database is replaced, not half-way through
    if manifest["database"] == DATABASE_FILE:
        if not instance.is_sqlite:
            raise BackupError("This backup holds a SQLite database; use copy-database afterwards.")
        target = instance.sqlite_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in SQLITE_SIDE_FILES:  # an old WAL must never replay onto the new file
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        _sqlite_copy(source / DATABASE_FILE, target)
    else:
        _pg_restore(instance.database_uri, source / DUMP_FILE)
    if bucket is not None:
        with _media_errors():
            upload_to_bucket(bucket, source, replace=force)
    else:
        for folder, root in (
            ("media", instance.media_root),
            ("quarantine", instance.quarantine_root),
        ):
            if force and root.exists():
                shutil.rmtree(root)
            copy_tree(source / folder, root)
    for name in manifest.get("secrets", []):
        _copy_private(source / name, instance.instance_path / name)
    return manifest


def is_empty(instance: Instance) -> bool:
    """True when the instance has no database rows worth keeping and no media."""
    if instance.s3 is not None:
        from app.services.s3_storage import AREAS

        bucket = instance.bucket()
        with _media_errors():
            if any(next(bucket.names(area), None) for area in AREAS):
                return False
    elif any(path.is_file() for path in _files(instance.media_root)):
        return False
    if instance.is_sqlite:
        path = instance.sqlite_path()
        if not path.exists():
            return True
        with sqlite3.connect(path) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            return not any(
                connection.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                for table in ("items", "users")
                if table in tables
            )
    return False  # PostgreSQL: only --force may replace a server database


@contextlib.contextmanager
def _media_errors() -> Iterator[None]:
    try:
        yield
    except storage.MediaUnavailable as error:
        raise BackupError(str(error)) from None


def copy_tree(source: Path, destination: Path) -> int:
    """Copy every finished file under ``source`` (not ingest's temporary files); returns a count."""
    count = 0
    for path in _files(source):
        if path.name.startswith(".incoming-"):
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(path, target)
        count += 1
    return count


def download_bucket(bucket: Bucket, destination: Path) -> int:
    """Download every object into ``media/`` and ``quarantine/`` (files 0600); returns how many."""
    from app.services.s3_storage import AREAS

    count = 0
    for area in AREAS:
        for name, _ in bucket.names(area):
            target = destination / _folder_of(name)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with bucket.open(name) as body:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as local:
                    shutil.copyfileobj(body, local, 1024 * 1024)
            count += 1
    return count


def upload_to_bucket(bucket: Bucket, source: Path, replace: bool) -> int:
    """Upload a backup's ``media/`` and ``quarantine/`` into the bucket; returns how many files.

    Originals already in the bucket at the right size are not sent again (their name is their
    hash). With ``replace``, objects the backup does not hold are deleted, as a forced restore
    empties the filesystem store first.
    """
    from app.services.s3_storage import AREAS, OBJECT_NAME

    stored = {name: size for area in AREAS for name, size in bucket.names(area)}
    kept = {}
    for folder, area in (("media", ""), ("quarantine", "quarantine/")):
        for path in _files(source / folder):
            name = area + path.relative_to(source / folder).as_posix()
            if OBJECT_NAME.fullmatch(name):  # not ingest's .incoming-* leftovers
                kept[name] = path
    for name, path in sorted(kept.items()):
        data = path.read_bytes()
        derived = name.startswith("derived/")
        if derived or stored.get(name) != len(data):
            bucket.upload(name, data, "image/webp" if derived else "application/octet-stream")
    if replace:
        for name in stored.keys() - kept.keys():
            bucket.remove(name)
    return len(kept)


def _folder_of(name: str) -> Path:
    """Where object ``name`` goes in a backup: quarantine/… as it is, the rest under media/."""
    return Path(name) if name.startswith("quarantine/") else Path("media") / name


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _sqlite_copy(source: Path, destination: Path) -> None:
    # The online backup API copies a consistent snapshot while other connections keep writing.
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    writer = sqlite3.connect(destination)
    try:
        with writer:
            reader.backup(writer, pages=1024)
    finally:
        reader.close()
        writer.close()


def _pg_dump(uri: str, destination: Path) -> None:
    if shutil.which("pg_dump") is None:
        raise BackupError(
            "pg_dump is not installed: install the PostgreSQL client tools of your server's "
            "version (e.g. apt install postgresql-client) and run the backup again."
        )
    url = make_url(uri).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", "--file", str(destination), dsn],
        check=True,
        capture_output=True,
    )


def _pg_restore(uri: str, dump: Path) -> None:
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed: install the PostgreSQL client tools.")
    dsn = make_url(uri).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", dsn, str(dump)],
        check=True,
        capture_output=True,
    )


def _copy_secrets(instance_path: Path, destination: Path) -> list[str]:
    copied = []
    for name in SECRET_FILES:
        if (instance_path / name).is_file():
            _copy_private(instance_path / name, destination / name)
            copied.append(name)
    return copied


def _copy_private(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read_bytes())

"""Configuration: defaults, then ``instance/config.py``, then ``MODTOOLS_*`` environment variables.

The instance folder holds everything that belongs to one installation (database, task queue,
media, generated keys). ``MODTOOLS_INSTANCE_PATH`` moves it, so several instances and test runs
can live side by side.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

MiB = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    # Filled in by load_config() from the instance folder when left as None.
    "SECRET_KEY": None,
    "SQLALCHEMY_DATABASE_URI": None,
    "HUEY_URL": None,
    "HUEY_IMMEDIATE": False,
    "HUEY_WORKERS": 2,
    "WORKER_YIELD_MS": 500,  # embedded worker: wait up to this long for requests to finish first
    "EMBEDDED_WORKER": True,  # python wsgi.py also runs a consumer
    "SQLITE_BUSY_TIMEOUT_MS": 15000,
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    # Server
    "HOST": "127.0.0.1",
    "PORT": 8000,
    "WEB_THREADS": 8,
    "WEB_RECV_BYTES": 256 * 1024,  # waitress reads request bodies in chunks of this size
    "SWITCH_INTERVAL_MS": 0.5,  # sys.setswitchinterval in the server process (CPython: 5)
    "MALLOC_ARENAS": 2,  # glibc malloc arenas in server and worker processes; 0: glibc's default
    "PUBLIC_URL": None,  # e.g. https://mod.example.org; used in printed links and callbacks
    "PROXY_FIX": 0,  # number of trusted reverse proxies setting X-Forwarded-*
    "PREFERRED_URL_SCHEME": "http",
    # Sessions and cookies
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": None,  # None: on when PREFERRED_URL_SCHEME is https
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "WTF_CSRF_HEADERS": ["X-CSRFToken"],
    # Accounts
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 5,
    "LOGIN_MAX_FAILURES_PER_IP": 20,
    "LOGIN_FAILURE_WINDOW_SECONDS": 15 * 60,
    "INVITATION_DAYS": 7,
    "PASSWORD_RESET_HOURS": 24,
    "PASSWORD_MIN_LENGTH": 12,
    "PASSWORD_HASH_FAST": False,  # tiny argon2 costs; for the test suite only
    "LOGIN_SECOND_STEP_SECONDS": 300,  # time to enter the TOTP code after the password
    "ENCRYPTION_KEY": None,  # default: instance/encryption_key
    # Images
    "MAX_IMAGE_BYTES": 20 * MiB,
    "MAX_IMAGE_PIXELS": 64_000_000,
    "MAX_IMAGE_FRAMES": 1000,
    "MAX_CONTENT_LENGTH": 60
    * MiB,  # whole request (base64 inflates by a third, batches hold several)
    "FETCH_ALLOW_NETWORKS": [],
    "FETCH_CONNECT_TIMEOUT": 5.0,
    "FETCH_TOTAL_TIMEOUT": 20.0,
    # Media store: "filesystem" (MEDIA_ROOT, default instance/media) or "s3" (the S3_* settings)
    "MEDIA_BACKEND": "filesystem",
    "S3_BUCKET": None,
    "S3_ENDPOINT_URL": None,  # None: AWS; else e.g. https://minio.internal:9000
    "S3_REGION": None,  # None: us-east-1
    "S3_ACCESS_KEY_ID": None,  # None (with the secret): boto3's chain, AWS_* variables or a role
    "S3_SECRET_ACCESS_KEY": None,  # a secret: never logged or shown
    "S3_PREFIX": "",  # keys start with this, e.g. "modtools/" to share a bucket
    "S3_ADDRESSING_STYLE": "auto",  # "path" or "virtual"; auto: path with an endpoint URL
    # API
    "API_RATE_LIMIT_PER_MINUTE": 600,  # per token; 0 switches the limit off
    "API_RATE_LIMIT_BURST": None,  # None: a sixth of the per-minute rate
    "FETCH_MAX_ATTEMPTS": 5,
    # Review
    "CLAIM_MINUTES": 10,
    "UNDO_SECONDS": 30,  # decisions can be undone, and their actions wait, this long
    "REVEAL_TOKEN_SECONDS": 60,
    "EXPOSURE_REMINDER_AT": 50,  # reveals per moderator per day before a break reminder
    "BANK_FOR_CATEGORY": {},  # policy category -> bank name for "add to bank" on remove
    "REVEAL_LEAD_ONLY_LABELS": ["csam"],  # bank labels whose matches only leads may reveal
    "SIMILAR_DISTANCE": 31,
    "SIMILAR_REFRESH_SECONDS": 5,
    "QUEUE_COUNTS_CACHE_SECONDS": 5,
    # POLICY_CATEGORIES and DSA_CATEGORY_MAP default to the tables in app/services/policy.py.
    # Actions and rules
    "ACTIONS_RETRY_HOURS": 24,
    "CALLBACK_TIMEOUT": 10,
    "CALLBACK_ALLOW_NETWORKS": [],  # private networks callbacks may reach (CIDR list)
    "QUARANTINE_ROOT": None,  # default: a "quarantine" folder beside MEDIA_ROOT
    "RULES_DRY_RUN_ITEMS": 200,
    # Webhooks from platforms
    "HOOK_MAX_BODY_BYTES": 1024 * 1024,
    "HOOK_REPLAY_RETENTION_DAYS": 30,  # delivery ids remembered against replays
    "HOOK_RECEIPT_RETENTION_DAYS": 30,  # the webhook receipt log on a source's page
    # Hash exchanges
    "EXCHANGE_FETCH_BUDGET_SECONDS": 300,  # one fetch run stops after this and resumes later
    "EXCHANGE_LIST_TIMEOUT_SECONDS": 300,
    # Operations
    "RETENTION_CLEARED_DAYS": 30,  # media of cleared items; hashes and records stay
    "RETENTION_APPROVED_DAYS": 30,
    "RETENTION_REMOVED_DAYS": 90,  # never before an evidence hold ends
    "METRICS_TOKEN": None,  # None: /metrics answers loopback clients only
    "QUEUE_BACKLOG_WARN": 500,
    "SCANNER_SLOW_MS": 10000,
    # Workers
    "WORKER_HEARTBEAT_SECONDS": 10,
    "WORKER_STALE_SECONDS": 60,
    "JOB_MAX_ATTEMPTS": 5,
    # Plugins and the scan pipeline
    "PLUGINS_ALLOWED": [],  # entry-point names of outside plugins allowed to load
    "PLUGINS_MODULES": [],  # extra plugin modules by import path
    "PIPELINE_ROUTE_ON_CLEAR": "cleared",  # or "queued" to review everything
    "PIPELINE_ROUTE_ON_ERROR": "queued",  # an item whose scanner failed is never silently cleared
    "CHECK_VERDICTS": {"csam": "block", "terrorism": "block", "ncii": "block", "*": "review"},
    "CHECK_SCANNER_TIMEOUT": 2.0,
    # Logging
    "LOG_LEVEL": "INFO",
}

# Aliases that deployment tooling commonly sets without our prefix.
ENV_ALIASES = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI", "HUEY_URL": "HUEY_URL"}


def instance_path_from_env() -> str | None:
    """The instance folder chosen by ``MODTOOLS_INSTANCE_PATH``, made absolute, if set."""
    path = os.environ.get("MODTOOLS_INSTANCE_PATH")
    return str(Path(path).expanduser().resolve()) if path else None


def parse_env_value(raw: str) -> Any:
    """Read an environment value as JSON when it is JSON (numbers, booleans, lists), else text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def load_config(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Apply defaults, ``instance/config.py``, the environment, then ``test_config``."""
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        for alias, key in ENV_ALIASES.items():
            if os.environ.get(alias):
                app.config[key] = os.environ[alias]
        app.config.from_prefixed_env("MODTOOLS", loads=parse_env_value)
    else:
        app.config.from_mapping(test_config)
    _fill_instance_defaults(app)


def _fill_instance_defaults(app: Flask) -> None:
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    config = app.config
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = read_or_create_key(instance / "secret_key")
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'modtools.db'}"
    uri = config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):  # Heroku-style URLs name a dialect SQLAlchemy dropped
        config["SQLALCHEMY_DATABASE_URI"] = "postgresql://" + uri.removeprefix("postgres://")
    if not config["HUEY_URL"]:
        config["HUEY_URL"] = f"sqlite:///{instance / 'huey.db'}"
    config.setdefault("MEDIA_ROOT", str(instance / "media"))
    if config["SESSION_COOKIE_SECURE"] is None:
        config["SESSION_COOKIE_SECURE"] = config["PREFERRED_URL_SCHEME"] == "https"
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]


def read_or_create_key(path: Path, nbytes: int = 32) -> str:
    """Return the key stored at ``path``, creating it (mode 0600, never overwritten) if missing."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key

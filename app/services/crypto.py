"""Encrypting small secrets at rest (TOTP seeds, plugin credentials) with a per-instance key.

The key comes from ``ENCRYPTION_KEY`` (``MODTOOLS_ENCRYPTION_KEY``) or else lives in
``instance/encryption_key`` (created on first use, mode 0600), apart from the database, so a
stolen database dump alone does not reveal the secrets. Losing the key makes the stored secrets
unreadable: back it up with the database.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from app.config import read_or_create_key

KEY_FILE = "encryption_key"
# Bound into the derived key, so the same key file could later serve other purposes safely.
KDF_INFO = b"modtools-image secrets at rest v1"

__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet_for"]


def fernet_for(instance_path: str | Path, key: str | None = None) -> Fernet:
    """The Fernet cipher keyed by ``key`` or else the instance's key file (created if missing)."""
    raw = key or read_or_create_key(Path(instance_path) / KEY_FILE)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KDF_INFO).derive(
        raw.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _app_fernet() -> Fernet:
    # Deriving the key reads a file; do it once per app, not once per login.
    cached = current_app.extensions.get("modtools_fernet")
    if cached is None:
        cached = fernet_for(current_app.instance_path, current_app.config.get("ENCRYPTION_KEY"))
        current_app.extensions["modtools_fernet"] = cached
    return cached


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` with the current app's instance key; returns printable text."""
    return _app_fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    """Decrypt what :func:`encrypt` returned; raises ``InvalidToken`` if the key changed."""
    return _app_fernet().decrypt(ciphertext.encode("ascii")).decode()

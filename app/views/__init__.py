"""Blueprints, one per module: thin views that parse, call a service and render."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from app.services.audit import Actor


def request_actor() -> Actor:
    """The audit actor for the current request: the logged-in user and their address."""
    return Actor.for_user(current_user, request.remote_addr)

"""Plain helpers for page tests: make a user, log a client in as them, read what a page shows."""

from __future__ import annotations

import re
from itertools import count

from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models.user import User

_numbers = count(1)

# Markup the Content-Security-Policy refuses: inline script bodies, style attributes or elements,
# event-handler attributes, and htmx's hx-on (it needs eval).
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
SCRIPT_WITH_BODY = re.compile(r"<script\b[^>]*>\s*[^<\s]", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\s(on[a-z]+|hx-on[:\w-]*)\s*=", re.I)


def create_user(
    app: Flask, role: str = "moderator", email: str | None = None, display_name: str = ""
) -> User:
    """A saved, active user (detached, with its columns loaded) for logging in as."""
    number = next(_numbers)
    with app.app_context():
        user = User(
            email=email or f"{role}{number}@example.org",
            display_name=display_name,
            password_hash="not-a-real-hash",  # these tests never type a password
            role=role,
        )
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
    return user


def login_as(client: FlaskClient, user: User) -> None:
    """Put ``user`` in the client's session the way flask-login would after a real login."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


def inline_code(html: str) -> list[str]:
    """Every piece of markup in ``html`` the CSP would block (empty when the page is clean)."""
    found = []
    for pattern in (INLINE_SCRIPT, SCRIPT_WITH_BODY, STYLE_ATTRIBUTE, STYLE_ELEMENT, EVENT_HANDLER):
        found += [match.group(0) for match in pattern.finditer(html)]
    return found


def main_nav_labels(html: str) -> list[str]:
    """The link texts of the main navigation, as a reader sees them."""
    nav = re.search(r'<nav class="site-nav" aria-label="Main">(.*?)</nav>', html, re.S)
    if not nav:
        return []
    return [label.strip() for label in re.findall(r"<a [^>]*>([^<]+)</a>", nav.group(1))]

"""Checking what an admin or a script says about an exchange, field by field.

Each check raises :class:`ExchangeError` (or, for the declared settings and credentials, fills
an ``errors`` dict) with a message that says how to fix the value, so a form can show every
problem at once next to its field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from app.extensions import db
from app.models.bank import Bank
from app.models.exchange import Exchange
from app.services.banks import find_bank
from app.services.exchange_kinds import Setting

MAX_SCHEDULE_MINUTES = 7 * 24 * 60
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ExchangeError(Exception):
    """Settings that cannot be used; ``errors`` maps each field to what to do about it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(next(iter(errors.values())))
        self.errors = errors
        self.message = str(self)


def collect(errors: dict[str, str], field: str, action: Callable[[], Any]) -> None:
    """Run one check; its ExchangeError becomes ``errors[field]``."""
    try:
        action()
    except ExchangeError as error:
        errors[field] = error.message


def check_name(name: str, *, exclude_id: int | None = None) -> str:
    """A trimmed exchange name no other exchange uses (case-insensitively)."""
    name = " ".join((name or "").split())
    if not name or len(name) > 120:
        raise ExchangeError({"name": "Give the exchange a name of 1 to 120 characters."})
    clash = select(Exchange.id).where(func.lower(Exchange.name) == name.lower())
    if exclude_id is not None:
        clash = clash.where(Exchange.id != exclude_id)
    if db.session.scalar(clash) is not None:
        raise ExchangeError({"name": f"An exchange called “{name}” already exists."})
    return name


def check_bank(bank: str | int | None) -> Bank:
    """The bank (by id or name) an exchange may fill: it exists and is not negative."""
    found = find_bank(bank) if bank not in (None, "") else None
    if found is None:
        raise ExchangeError({"bank": "Choose the bank this exchange fills (create one first)."})
    if found.negative:
        raise ExchangeError(
            {
                "bank": f"“{found.name}” is a negative bank (false positives); "
                "an exchange fills a bank of hashes to match."
            }
        )
    return found


def check_schedule(value: Any) -> int:
    """Minutes between fetches, from 1 to a week."""
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        minutes = 0
    if not 1 <= minutes <= MAX_SCHEDULE_MINUTES:
        raise ExchangeError({"schedule_minutes": "Fetch every 1 to 10080 minutes (a week)."})
    return minutes


def clean_settings(
    declared: tuple[Setting, ...], raw: Mapping[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """The declared settings from ``raw``, cleaned; problems go into ``errors``."""
    cleaned: dict[str, Any] = {}
    for setting in declared:
        value = raw.get(setting.name)
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value or "").strip()
        try:
            cleaned[setting.name] = setting_value(setting, text)
        except ValueError as error:
            errors[setting.name] = str(error)
    return cleaned


def setting_value(setting: Setting, text: str) -> Any:
    """One setting's value, cleaned and checked against its declared type."""
    if not text:
        if setting.required:
            raise ValueError(f"Fill in “{setting.title}”.")
        return [] if setting.type == "ids" else ""
    if setting.type == "integer" and not re.fullmatch(r"[0-9]{1,20}", text):
        raise ValueError(f"“{setting.title}” is a whole number.")
    if setting.type == "ids":
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"“{setting.title}”: whole numbers separated by commas.")
        return sorted({int(part) for part in parts})
    if setting.type == "choice" and text not in {value for value, _ in setting.choices}:
        raise ValueError(f"Choose one of the options for “{setting.title}”.")
    is_url = text.startswith(("http://", "https://"))
    if setting.type == "url" or (setting.type == "location" and is_url):
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("Give a full http:// or https:// address.")
    elif setting.type == "location" and not FILE_NAME.fullmatch(text):
        raise ValueError("Give an http(s) URL, or a file name (no folders) in hash-lists.")
    return text


def clean_credentials(
    declared: tuple[Setting, ...],
    raw: Mapping[str, str],
    current: dict[str, str],
    errors: dict[str, str],
) -> dict[str, str]:
    """``current`` credentials with the non-empty ``raw`` ones replacing them; an empty value
    keeps what is stored. Problems go into ``errors``."""
    merged = {name: value for name, value in current.items() if value}
    for setting in declared:
        value = (raw.get(setting.name) or "").strip()
        if value and setting.pattern and not re.fullmatch(setting.pattern, value):
            errors[setting.name] = setting.pattern_help or f"“{setting.title}” looks wrong."
        elif value:
            merged[setting.name] = value
        elif setting.required and setting.name not in merged:
            errors[setting.name] = f"Fill in “{setting.title}”."
    return merged

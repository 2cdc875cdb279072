"""Hash exchanges: set one up, change it, read its credentials. Fetching is in exchange_fetch.

Credentials are stored encrypted (``app.services.crypto``) and are write-only: pages and the
audit log learn only which of them are set. Changing what an exchange reads (its settings) forgets
its checkpoint, so the next fetch is a full one and hashes the new source lacks leave the bank;
changing its bank first takes everything it gave out of the old bank.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models.bank import Bank
from app.models.exchange import Exchange, ExchangeRun
from app.services import crypto, exchange_store
from app.services.audit import Actor, record
from app.services.exchange_checks import (
    ExchangeError,
    check_bank,
    check_name,
    check_schedule,
    clean_credentials,
    clean_settings,
    collect,
)
from app.services.exchange_kinds import KINDS, ExchangeKind

__all__ = [
    "ExchangeError",
    "create_exchange",
    "credentials_of",
    "describe",
    "find_exchange",
    "kind_of",
    "list_exchanges",
    "recent_runs",
    "update_exchange",
]


def kind_of(name: str) -> ExchangeKind:
    """The exchange kind called ``name``."""
    if name not in KINDS:
        raise ExchangeError({"kind": f"Choose one of: {', '.join(KINDS)}."})
    return KINDS[name]


def create_exchange(
    name: str,
    kind: str,
    bank: str | int | None,
    actor: Actor,
    *,
    settings: Mapping[str, Any],
    credentials: Mapping[str, str],
    schedule_minutes: Any = 60,
    enabled: bool = True,
) -> Exchange:
    """Check everything, then add the exchange; ExchangeError lists what to fix. Caller commits."""
    chosen = kind_of(kind)
    errors: dict[str, str] = {}
    exchange = Exchange(kind=chosen.name, enabled=bool(enabled))
    collect(errors, "name", lambda: setattr(exchange, "name", check_name(name)))
    collect(errors, "bank", lambda: setattr(exchange, "bank_id", check_bank(bank).id))
    collect(
        errors,
        "schedule_minutes",
        lambda: setattr(exchange, "schedule_minutes", check_schedule(schedule_minutes)),
    )
    exchange.settings = clean_settings(chosen.settings, settings, errors)
    secrets = clean_credentials(chosen.credentials, credentials, {}, errors)
    if errors:
        raise ExchangeError(errors)
    _store_credentials(exchange, secrets)
    db.session.add(exchange)
    db.session.flush()
    record(
        "exchange.created",
        actor,
        target_type="exchange",
        target_id=exchange.id,
        details=describe(exchange),
    )
    return exchange


def update_exchange(
    exchange: Exchange,
    actor: Actor,
    *,
    settings: Mapping[str, Any] | None = None,
    credentials: Mapping[str, str] | None = None,
    **changes: Any,
) -> Exchange:
    """Change name, bank, schedule_minutes, enabled, settings or credentials (an empty credential
    keeps the stored one). Caller commits."""
    kind = kind_of(exchange.kind)
    errors: dict[str, str] = {}
    checkers = {
        "name": lambda value: check_name(value, exclude_id=exchange.id),
        "bank": lambda value: check_bank(value).id,
        "schedule_minutes": check_schedule,
        "enabled": bool,
    }
    values: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in checkers:
            raise ValueError(f"not an exchange setting: {field}")
        collect(errors, field, lambda f=field, v=value: values.__setitem__(f, checkers[f](v)))
    new_settings = None if settings is None else clean_settings(kind.settings, settings, errors)
    current = credentials_of(exchange)
    secrets = clean_credentials(kind.credentials, credentials or {}, current, errors)
    if errors:
        raise ExchangeError(errors)
    before = describe(exchange)
    if "bank" in values and values["bank"] != exchange.bank_id:
        exchange_store.forget_all(exchange)  # out of the old bank before filling the new one
        exchange.bank_id, exchange.total_count = values["bank"], 0
        _restart(exchange)
    for field in ("name", "schedule_minutes", "enabled"):
        if field in values:
            setattr(exchange, field, values[field])
    if new_settings is not None and new_settings != exchange.settings:
        exchange.settings = new_settings
        _restart(exchange)
    changed_secrets = sorted(name for name in secrets if secrets[name] != current.get(name))
    _store_credentials(exchange, secrets)
    after = describe(exchange)
    changed = {key: after[key] for key in after if after[key] != before[key]}
    if changed or changed_secrets:
        record(
            "exchange.updated",
            actor,
            target_type="exchange",
            target_id=exchange.id,
            details={"changed": changed, "credentials_changed": changed_secrets},
        )
    return exchange


def credentials_of(exchange: Exchange) -> dict[str, str]:
    """The exchange's decrypted credentials (for building its client only; never display)."""
    if not exchange.credentials:
        return {}
    return dict(json.loads(crypto.decrypt(exchange.credentials)))


def describe(exchange: Exchange) -> dict[str, Any]:
    """The exchange's configuration without secrets, for the audit log."""
    bank = db.session.get(Bank, exchange.bank_id) if exchange.bank_id else None
    return {
        "name": exchange.name,
        "kind": exchange.kind,
        "bank": bank.name if bank else None,
        "enabled": exchange.enabled,
        "schedule_minutes": exchange.schedule_minutes,
        "settings": dict(exchange.settings or {}),
        "credentials_set": list(exchange.credentials_set or []),
    }


def list_exchanges() -> list[Exchange]:
    """Every exchange, by name."""
    return list(db.session.scalars(select(Exchange).order_by(func.lower(Exchange.name))))


def find_exchange(name_or_id: str | int) -> Exchange | None:
    """The exchange with this id or (case-insensitive) name."""
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        found = db.session.get(Exchange, int(name_or_id))
        if found is not None:
            return found
    lowered = str(name_or_id).lower()
    return db.session.scalar(select(Exchange).where(func.lower(Exchange.name) == lowered))


def recent_runs(exchange: Exchange, limit: int = 10) -> list[ExchangeRun]:
    """The exchange's latest fetches, newest first."""
    query = select(ExchangeRun).where(ExchangeRun.exchange_id == exchange.id)
    return list(db.session.scalars(query.order_by(ExchangeRun.id.desc()).limit(limit)))


def _restart(exchange: Exchange) -> None:
    exchange.checkpoint = None
    exchange.sweep_pending = False
    exchange.more_to_fetch = False


def _store_credentials(exchange: Exchange, secrets: dict[str, str]) -> None:
    exchange.credentials = crypto.encrypt(json.dumps(secrets)) if secrets else None
    exchange.credentials_set = sorted(secrets)

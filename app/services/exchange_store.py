"""Apply what an exchange fetched to its bank: add new hashes, take out the ones gone upstream.

A hash is in the bank on an exchange's behalf while at least one upstream record of an exchange
filling that bank still gives it (``ExchangeSignal`` rows). Entries are written the way bank
imports write them: in bulk, with ``BankChange`` rows (``banks.log_changes``) so every process's
index learns of them without a restart, and with the bank's counts kept. An exchange only ever
removes entries an exchange added (``source_ref`` "exchange:<id>"): a hash a moderator put in the
same bank by hand stays. Callers commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from app.extensions import db
from app.models.bank import BankEntry, ChangeOp
from app.models.exchange import Exchange, ExchangeSignal
from app.services.banks import adjust_counts, log_changes
from app.services.exchange_kinds import ExchangeKind

CHUNK = 500
SWEEP_BATCH = 5000
Signal = tuple[str, str]  # (signal type, lowercase hex)


@dataclass
class Changes:
    """What applying some updates did."""

    records: int = 0
    added: int = 0
    removed: int = 0
    skipped: int = 0

    def __iadd__(self, other: Changes) -> Changes:
        self.records += other.records
        self.added += other.added
        self.removed += other.removed
        self.skipped += other.skipped
        return self


def record_key(key: Any) -> str:
    """The library's update key as text: "member-id" for NCMEC, "type:hash" for the others."""
    text = ":".join(str(part) for part in key) if isinstance(key, tuple) else str(key)
    return text[:255]


def apply_updates(exchange: Exchange, kind: ExchangeKind, updates: Mapping[Any, Any]) -> Changes:
    """Merge one fetched page (``None`` values are deletions) into the exchange's bank."""
    changes = Changes(records=len(updates))
    wanted: dict[str, set[Signal]] = {}
    for key, value in updates.items():
        signals, skipped = kind.signals(key, value, exchange.settings or {})
        changes.skipped += skipped
        wanted[record_key(key)] = set(signals)
    held: dict[str, dict[Signal, int]] = {}
    for keys in _chunks(list(wanted)):
        rows = db.session.execute(
            select(
                ExchangeSignal.id,
                ExchangeSignal.record_key,
                ExchangeSignal.signal_type,
                ExchangeSignal.signal,
            ).where(ExchangeSignal.exchange_id == exchange.id, ExchangeSignal.record_key.in_(keys))
        )
        for row_id, key, kind_name, signal in rows:
            held.setdefault(key, {})[kind_name, signal] = row_id
    gone_ids: list[int] = []
    kept_ids: list[int] = []
    gone: set[Signal] = set()
    new_rows: list[dict[str, Any]] = []
    for key, signals in wanted.items():
        for signal, row_id in held.get(key, {}).items():
            (kept_ids if signal in signals else gone_ids).append(row_id)
            if signal not in signals:
                gone.add(signal)
        new_rows += [
            {
                "exchange_id": exchange.id,
                "record_key": key,
                "signal_type": signal[0],
                "signal": signal[1],
                "generation": exchange.generation,
            }
            for signal in signals - held.get(key, {}).keys()
        ]
    for ids in _chunks(gone_ids):
        db.session.execute(delete(ExchangeSignal).where(ExchangeSignal.id.in_(ids)))
    for ids in _chunks(kept_ids):  # seen again: it survives the sweep of a full fetch
        db.session.execute(
            update(ExchangeSignal)
            .where(ExchangeSignal.id.in_(ids))
            .values(generation=exchange.generation)
        )
    if new_rows:
        db.session.execute(insert(ExchangeSignal.__table__), new_rows)
    changes.added = add_to_bank(exchange, {(row["signal_type"], row["signal"]) for row in new_rows})
    changes.removed = remove_from_bank(exchange, gone)
    return changes


def sweep(exchange: Exchange) -> int:
    """After a full fetch: forget records it did not see again; return the entries removed."""
    removed = 0
    while True:
        rows = db.session.execute(
            select(ExchangeSignal.id, ExchangeSignal.signal_type, ExchangeSignal.signal)
            .where(
                ExchangeSignal.exchange_id == exchange.id,
                ExchangeSignal.generation < exchange.generation,
            )
            .limit(SWEEP_BATCH)
        ).all()
        if not rows:
            return removed
        for ids in _chunks([row.id for row in rows]):
            db.session.execute(delete(ExchangeSignal).where(ExchangeSignal.id.in_(ids)))
        removed += remove_from_bank(exchange, {(row[1], row[2]) for row in rows})


def forget_all(exchange: Exchange) -> int:
    """Take everything this exchange gave out of its bank (before it fills another one)."""
    exchange.generation += 1
    db.session.flush()
    return sweep(exchange)


def total(exchange: Exchange) -> int:
    """How many different hashes the exchange holds in its bank."""
    distinct = (
        select(ExchangeSignal.signal_type, ExchangeSignal.signal)
        .where(ExchangeSignal.exchange_id == exchange.id)
        .distinct()
        .subquery()
    )
    return db.session.scalar(select(func.count()).select_from(distinct)) or 0


def add_to_bank(exchange: Exchange, signals: set[Signal]) -> int:
    """Add the hashes the bank does not hold yet; return how many were added."""
    new = sorted(signals - _bank_entries(exchange.bank_id, signals).keys())
    if not new:
        return 0
    db.session.execute(
        insert(BankEntry.__table__),
        [
            {
                "bank_id": exchange.bank_id,
                "signal_type": kind,
                "signal": signal,
                "source_ref": f"exchange:{exchange.id}",
                "created_by": f"exchange {exchange.name}",
            }
            for kind, signal in new
        ],
    )
    ids = _bank_entries(exchange.bank_id, set(new))
    log_changes(
        [
            {
                "bank_id": exchange.bank_id,
                "entry_id": ids[kind, signal][0],
                "signal_type": kind,
                "signal": signal,
                "op": ChangeOp.ADD.value,
            }
            for kind, signal in new
        ]
    )
    adjust_counts(exchange.bank_id, _count_by_type(new))
    return len(new)


def remove_from_bank(exchange: Exchange, signals: set[Signal]) -> int:
    """Remove these hashes unless an exchange filling the bank still has them, or a person
    added them; return how many entries were removed."""
    if not signals:
        return 0
    still_held: set[Signal] = set()
    for kind, values in _by_type(signals):
        rows = db.session.execute(
            select(ExchangeSignal.signal)
            .join(Exchange, Exchange.id == ExchangeSignal.exchange_id)
            .where(
                Exchange.bank_id == exchange.bank_id,
                ExchangeSignal.signal_type == kind,
                ExchangeSignal.signal.in_(values),
            )
        )
        still_held.update((kind, signal) for (signal,) in rows)
    entries = _bank_entries(exchange.bank_id, signals - still_held)
    doomed = [(key, entry_id) for key, (entry_id, ref) in entries.items() if _from_exchange(ref)]
    for chunk in _chunks([entry_id for _, entry_id in doomed]):
        db.session.execute(delete(BankEntry).where(BankEntry.id.in_(chunk)))
    log_changes(
        [
            {
                "bank_id": exchange.bank_id,
                "entry_id": entry_id,
                "signal_type": kind,
                "signal": signal,
                "op": ChangeOp.REMOVE.value,
            }
            for (kind, signal), entry_id in doomed
        ]
    )
    adjust_counts(
        exchange.bank_id, {k: -n for k, n in _count_by_type(k for k, _ in doomed).items()}
    )
    return len(doomed)


def _from_exchange(source_ref: str | None) -> bool:
    return bool(source_ref and source_ref.startswith("exchange:"))


def _bank_entries(bank_id: int, signals: Iterable[Signal]) -> dict[Signal, tuple[int, str | None]]:
    found: dict[Signal, tuple[int, str | None]] = {}
    for kind, values in _by_type(signals):
        rows = db.session.execute(
            select(BankEntry.signal, BankEntry.id, BankEntry.source_ref).where(
                BankEntry.bank_id == bank_id,
                BankEntry.signal_type == kind,
                BankEntry.signal.in_(values),
            )
        )
        found.update(((kind, signal), (entry_id, ref)) for signal, entry_id, ref in rows)
    return found


def _by_type(signals: Iterable[Signal]) -> Iterator[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for kind, signal in signals:
        grouped.setdefault(kind, []).append(signal)
    for kind, values in grouped.items():
        for chunk in _chunks(values):
            yield kind, chunk


def _count_by_type(signals: Iterable[Signal] | Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in signals:
        kind = item[0] if isinstance(item, tuple) else item
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]

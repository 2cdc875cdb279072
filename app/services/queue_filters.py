"""Queue filters: what a moderator typed in the filter form, checked, and turned into SQL.

Every filter lives in the URL's query string, so a filtered queue is a link a moderator can
bookmark or send to a colleague. Filters combine (AND). A value that cannot be read is ignored
with a message that says how to write it, never a server error.

Labels, scores and bank matches live in JSON arrays on ``scan_results``; they are searched with
the database's own JSON functions (``json_each`` on SQLite, ``jsonb_array_elements`` on
PostgreSQL), with values always passed as bound parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from itertools import count
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, text

from app.extensions import db
from app.models.item import Item
from app.models.scan import ScanResult, Verdict
from app.services.states import Status

MAX_LENGTH = 200
_names = count()


@dataclass(frozen=True)
class Filters:
    """The filters of a queue page. Empty strings mean "any"."""

    source: str = ""  # a source id
    scanner: str = ""  # flagged or matched by this scanner
    label: str = ""  # a scanner label, e.g. "nudity"
    score: str = ""  # a label score at least this (0–1)
    bank: str = ""  # "any", or a bank id: matched a hash bank
    status: str = ""
    uploader: str = ""  # the platform's uploader id, or part of their name
    date_from: str = ""
    date_to: str = ""
    text: str = ""  # words in the context text

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filters:
        """Read the filters from a query string, trimmed and capped in length."""
        return cls(**{f.name: (args.get(f.name) or "").strip()[:MAX_LENGTH] for f in fields(cls)})

    def query_args(self) -> dict[str, str]:
        """The filters that are set, for links that keep them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def __bool__(self) -> bool:
        return bool(self.query_args())

    def conditions(self) -> tuple[list[ColumnElement[bool]], list[str]]:
        """SQL conditions for the filters that are set, and a message per unreadable value."""
        conditions: list[ColumnElement[bool]] = []
        errors: list[str] = []
        if self.source:
            if self.source.isdigit():
                conditions.append(Item.source_id == int(self.source))
            else:
                errors.append("The source filter was ignored: choose a source from the list.")
        if self.status:
            if self.status in {status.value for status in Status}:
                conditions.append(Item.status == self.status)
            else:
                errors.append(f"The status “{self.status}” was ignored: choose one from the list.")
        if self.uploader:
            conditions.append(
                or_(
                    Item.uploader_id == self.uploader,
                    Item.uploader_name.icontains(self.uploader, autoescape=True),
                )
            )
        if self.text:
            conditions.append(Item.context_text.icontains(self.text, autoescape=True))
        if self.scanner:
            conditions.append(
                exists().where(
                    ScanResult.item_id == Item.id,
                    ScanResult.scanner == self.scanner,
                    ScanResult.verdict.in_([Verdict.MATCH, Verdict.FLAG]),
                )
            )
        score = self._score(errors)
        if self.label or score is not None:
            conditions.append(label_condition(self.label.lower() or None, score))
        if self.bank:
            if self.bank == "any" or self.bank.isdigit():
                conditions.append(bank_condition(None if self.bank == "any" else int(self.bank)))
            else:
                errors.append("The bank filter was ignored: choose a bank from the list.")
        conditions.extend(self._dates(errors))
        return conditions, errors

    def _score(self, errors: list[str]) -> float | None:
        if not self.score:
            return None
        try:
            score = float(self.score)
        except ValueError:
            score = -1.0
        if not 0 <= score <= 1:
            errors.append(
                f"The score “{self.score}” was ignored: give a number from 0 to 1, such as 0.8."
            )
            return None
        return score

    def _dates(self, errors: list[str]) -> list[ColumnElement[bool]]:
        conditions = []
        for label, value, end in (("From", self.date_from, False), ("To", self.date_to, True)):
            if not value:
                continue
            try:
                day = date.fromisoformat(value)
            except ValueError:
                errors.append(f"{label} date “{value}” was ignored: use a date like 2025-01-31.")
                continue
            moment = datetime.combine(day, time(), tzinfo=UTC)
            conditions.append(
                Item.created_at < moment + timedelta(days=1) if end else Item.created_at >= moment
            )
        return conditions


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def label_condition(name: str | None, min_score: float | None) -> ColumnElement[bool]:
    """Items with a scan label called ``name`` (any, if None) scoring at least ``min_score``."""
    suffix = next(_names)
    params: dict[str, Any] = {}
    checks = []
    if _dialect() == "postgresql":
        source = "jsonb_array_elements(sr.labels) AS lbl(value)"
        name_sql, score_sql = "lower(lbl.value->>'name')", "(lbl.value->>'score')::float"
    else:
        source = "json_each(sr.labels) AS lbl"
        name_sql, score_sql = (
            "lower(json_extract(lbl.value, '$.name'))",
            "json_extract(lbl.value, '$.score')",
        )
    if name is not None:
        checks.append(f"{name_sql} = :label_{suffix}")
        params[f"label_{suffix}"] = name
    if min_score is not None:
        checks.append(f"coalesce({score_sql}, 0) >= :score_{suffix}")
        params[f"score_{suffix}"] = min_score
    return text(
        f"EXISTS (SELECT 1 FROM scan_results AS sr, {source} "
        f"WHERE sr.item_id = items.id AND {' AND '.join(checks)})"
    ).bindparams(**params)  # type: ignore[return-value]


def bank_condition(bank_id: int | None) -> ColumnElement[bool]:
    """Items a scanner matched against a hash bank (``bank_id``, or any bank if None)."""
    suffix = next(_names)
    if _dialect() == "postgresql":
        source = "jsonb_array_elements(sr.matches) AS m(value)"
        bank_sql = "(m.value->>'bank_id')::bigint"
    else:
        source = "json_each(sr.matches) AS m"
        bank_sql = "json_extract(m.value, '$.bank_id')"
    check = f"{bank_sql} = :bank_{suffix}" if bank_id is not None else "1 = 1"
    statement = text(
        f"EXISTS (SELECT 1 FROM scan_results AS sr, {source} "
        f"WHERE sr.item_id = items.id AND sr.verdict = 'match' AND {check})"
    )
    if bank_id is not None:
        statement = statement.bindparams(**{f"bank_{suffix}": bank_id})
    return statement  # type: ignore[return-value]


def scanner_names() -> list[str]:
    """The installed scanners, for the filter's list."""
    from app.plugins import current_plugins

    return sorted(current_plugins().scanners)

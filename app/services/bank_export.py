"""Export a bank's entries as CSV, threatexchange hash files or HMA bank content.

The formats are those ``app/services/bank_io.py`` imports, so every export imports again as it
was (docs/banks.md). Entries are read in id order, a batch at a time, as plain rows: a bank of a
million hashes streams out without filling memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.bank import Bank, BankEntry
from app.services.bank_io import FORMULA_PREFIXES, Format


def export_lines(bank: Bank, fmt: str, batch: int = 5000) -> Iterator[str]:
    """The bank's entries in ``fmt``, oldest first, as chunks of text (for streaming)."""
    chosen = Format(fmt)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if chosen is Format.CSV:
        writer.writerow(["signal_type", "signal", "note"])
    last = 0
    while True:
        rows = db.session.execute(
            select(
                BankEntry.id,
                BankEntry.signal_type,
                BankEntry.signal,
                BankEntry.note,
                BankEntry.source_ref,
            )
            .where(BankEntry.bank_id == bank.id, BankEntry.id > last)
            .order_by(BankEntry.id)
            .limit(batch)
        ).all()
        for row in rows:
            if chosen is Format.CSV:
                note = row.note or ""
                writer.writerow(
                    [
                        row.signal_type,
                        row.signal,
                        "'" + note if note.startswith(FORMULA_PREFIXES) else note,
                    ]
                )
            elif chosen is Format.TE:
                buffer.write(f"{row.signal_type} {row.signal}\n")
            else:
                buffer.write(json.dumps(_hma_content(bank, row), separators=(",", ":")) + "\n")
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < batch:
            return
        last = rows[-1].id


def _hma_content(bank: Bank, row: Any) -> dict[str, Any]:
    """An entry in the shape of HMA's ``GET /c/bank/<bank>/content/<id>?include_signals=true``."""
    return {
        "bank": {"name": bank.name, "matching_enabled_ratio": 1.0 if bank.enabled else 0.0},
        "disable_until_ts": 1,
        "id": row.id,
        "metadata": {
            "collab": None,
            "content_id": row.source_ref,
            "content_uri": None,
            "json": None,
        },
        "note": row.note,
        "original_media_uri": None,
        "signals": {row.signal_type: row.signal},
    }

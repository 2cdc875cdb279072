"""An exact, incremental, thread-safe PDQ index: every hash within the threshold, never a miss.

Pure numpy, no Flask: the banks service keeps one per process and feeds it the bank change log.

- Search: :class:`app.services.pdq_tables.Tables` (multi-index hashing, exact up to distance 31).
- Adds go to a small *delta* buffer that queries scan by brute force, so an added hash is
  matched by the very next query. When the delta reaches ``merge_at`` rows it is merged into new
  tables, in a background thread by default; queries keep using the old tables until the new
  ones are swapped in.
- Removals set a bit in a tombstone bitmap; removed rows are dropped at the next merge.
- Thread safety by copy-on-write snapshots: a query reads one immutable :class:`_State` and
  never takes the lock, so readers never wait for writers and always see one consistent
  state. Writers serialise on a lock, append to the delta past every published snapshot's
  length, copy what they change and publish a new state with one assignment.

Quality is the caller's business: PDQ hashes of quality below 50 match too much (HMA drops them
too), so callers do not query with them; the index does not know a hash's quality.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.services.pdq_tables import MAX_THRESHOLD, Tables, hashes_from_hex, within

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = MAX_THRESHOLD
DEFAULT_MERGE_AT = 4096  # brute force over 4096 hashes costs ~30 µs a query


@dataclass(frozen=True, eq=False)
class _State:
    """One consistent view of the index. Arrays are never changed once published, except
    delta rows past ``delta_len``, which no holder of this state reads."""

    tables: Tables
    removed: np.ndarray  # tombstone bitmap over the tables' rows (np.packbits order)
    removed_count: int
    delta_hashes: np.ndarray  # (capacity, 4) uint64
    delta_labels: np.ndarray  # (capacity,) int64
    delta_removed: np.ndarray  # (capacity,) bool
    delta_len: int


def _empty_state(capacity: int = 16) -> _State:
    # Small and grown by doubling; the tombstone bitmap is made at the first removal.
    tables = Tables.build(np.empty(0, np.int64), np.empty((0, 4), np.uint64))
    return _State(
        tables,
        np.zeros(0, np.uint8),
        0,
        np.empty((capacity, 4), np.uint64),
        np.empty(capacity, np.int64),
        np.zeros(capacity, bool),
        0,
    )


def as_hash_array(hashes: Sequence[str] | np.ndarray) -> np.ndarray:
    """PDQ hashes as an (n, 4) uint64 array: from 64-hex strings, or passed through."""
    if isinstance(hashes, np.ndarray):
        if hashes.dtype != np.uint64 or hashes.ndim != 2 or hashes.shape[1] != 4:
            raise ValueError("PDQ hashes must be an (n, 4) uint64 array")
        return hashes
    return hashes_from_hex(list(hashes))


class PdqIndex:
    """Exact Hamming-radius search over PDQ hashes keyed by integer entry ids."""

    def __init__(self, *, merge_at: int = DEFAULT_MERGE_AT, background_merge: bool = True):
        self.merge_at = merge_at
        self.background_merge = background_merge
        self._state = _empty_state()
        self._lock = threading.Lock()  # serialises writers; readers never take it
        self._merge_thread: threading.Thread | None = None
        self._merging = False
        self._removed_while_merging: list[np.ndarray] = []

    @classmethod
    def build(
        cls,
        entry_ids: Sequence[int] | np.ndarray,
        hashes: Sequence[str] | np.ndarray,
        **options: bool | int,
    ) -> PdqIndex:
        """An index holding ``entry_ids`` with their ``hashes`` (hex strings or uint64 rows)."""
        index = cls(**options)  # type: ignore[arg-type]
        tables = Tables.build(np.asarray(entry_ids, dtype=np.int64), as_hash_array(hashes))
        index._state = replace(index._state, tables=tables)
        return index

    def __len__(self) -> int:
        """Hashes present (removed ones not counted)."""
        state = self._state
        delta_live = state.delta_len - int(np.count_nonzero(state.delta_removed[: state.delta_len]))
        return state.tables.size - state.removed_count + delta_live

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (what tracemalloc sees, give or take a few KB)."""
        state = self._state
        return (
            state.tables.nbytes
            + state.removed.nbytes
            + state.delta_hashes.nbytes
            + state.delta_labels.nbytes
            + state.delta_removed.nbytes
        )

    def query(
        self, pdq: str | np.ndarray, threshold: int = DEFAULT_THRESHOLD
    ) -> list[tuple[int, int]]:
        """``(entry_id, distance)`` of every hash within ``threshold``, closest first."""
        query = as_hash_array([pdq] if isinstance(pdq, str) else pdq.reshape(1, 4))[0]
        state = self._state  # one snapshot for the whole query
        rows, distances = state.tables.search(query, threshold)
        if state.removed_count and len(rows):
            alive = ((state.removed[rows >> 3] >> (7 - (rows & 7)).astype(np.uint8)) & 1) == 0
            rows, distances = rows[alive], distances[alive]
        labels = state.tables.labels[rows].astype(np.int64)
        if state.delta_len:
            near, near_distances = within(
                state.delta_hashes[: state.delta_len].copy(), query, threshold
            )
            alive = ~state.delta_removed[near]
            labels = np.concatenate([labels, state.delta_labels[near[alive]]])
            distances = np.concatenate([distances, near_distances[alive]])
        best: dict[int, int] = {}  # a hash found through several chunks counts once
        for label, distance in zip(labels.tolist(), distances.tolist(), strict=True):
            if distance < best.get(label, MAX_THRESHOLD + 1):
                best[label] = distance
        return sorted(best.items(), key=lambda item: (item[1], item[0]))

    def add(self, entry_id: int, pdq: str | np.ndarray) -> None:
        """Add one hash; the next query finds it. Ids are the caller's (bank entry ids)."""
        self.add_many([entry_id], [pdq] if isinstance(pdq, str) else pdq.reshape(1, 4))

    def add_many(
        self, entry_ids: Sequence[int] | np.ndarray, hashes: Sequence[str] | np.ndarray
    ) -> None:
        """Add many hashes at once (one copy of the delta at most, one merge at most)."""
        rows = as_hash_array(hashes)
        labels = np.asarray(entry_ids, dtype=np.int64)
        if len(rows) != len(labels):
            raise ValueError("one entry id per hash")
        with self._lock:
            state = self._state
            end = state.delta_len + len(rows)
            delta_hashes, delta_labels, delta_removed = (
                state.delta_hashes,
                state.delta_labels,
                state.delta_removed,
            )
            if end > len(delta_hashes):  # grow into new arrays: old snapshots keep the old ones
                capacity = max(end, 2 * len(delta_hashes))
                delta_hashes = _grow(delta_hashes, capacity, state.delta_len)
                delta_labels = _grow(delta_labels, capacity, state.delta_len)
                delta_removed = _grow(delta_removed, capacity, state.delta_len)
            delta_hashes[state.delta_len : end] = rows
            delta_labels[state.delta_len : end] = labels
            delta_removed[state.delta_len : end] = False
            self._state = replace(
                state,
                delta_hashes=delta_hashes,
                delta_labels=delta_labels,
                delta_removed=delta_removed,
                delta_len=end,
            )
            self._maybe_merge()

    def remove(self, entry_id: int) -> int:
        """Remove every hash of ``entry_id`` (the next query misses it); returns how many."""
        return self.remove_many([entry_id])

    def remove_many(self, entry_ids: Iterable[int] | np.ndarray) -> int:
        """Remove every hash of these entry ids; returns how many hashes were removed."""
        ids = np.unique(np.fromiter(entry_ids, dtype=np.int64))
        if not len(ids):
            return 0
        with self._lock:
            state = self._state
            labels = state.tables.labels
            # A linear scan (~0.5 ms per million): no id -> row map, which would cost 8+ MB.
            rows = np.flatnonzero(np.isin(labels, ids) if len(ids) > 8 else _equal_any(labels, ids))
            removed = state.removed
            if state.removed_count:  # leave rows already removed alone
                rows = rows[((removed[rows >> 3] >> (7 - (rows & 7)).astype(np.uint8)) & 1) == 0]
            if len(rows):
                removed = (
                    removed.copy()
                    if len(removed)
                    else np.zeros((state.tables.size + 7) // 8, np.uint8)
                )
                np.bitwise_or.at(removed, rows >> 3, (128 >> (rows & 7)).astype(np.uint8))
            in_delta = np.isin(state.delta_labels[: state.delta_len], ids)
            in_delta &= ~state.delta_removed[: state.delta_len]
            delta_removed = state.delta_removed
            if in_delta.any():
                delta_removed = delta_removed.copy()
                delta_removed[: state.delta_len] |= in_delta
            if self._merging:
                self._removed_while_merging.append(ids)
            self._state = replace(
                state,
                removed=removed,
                removed_count=state.removed_count + len(rows),
                delta_removed=delta_removed,
            )
            return len(rows) + int(np.count_nonzero(in_delta))

    def compact(self) -> None:
        """Merge the delta and drop removed rows now, in this thread (tests, benchmarks)."""
        while True:
            self.wait_for_merge()
            with self._lock:
                if not self._merging:
                    self._merging = True
                    self._removed_while_merging = []
                    snapshot = self._state
                    break
        self._merge(snapshot)

    def wait_for_merge(self) -> None:
        """Wait until no background merge is running (one may start another when it ends)."""
        while (thread := self._merge_thread) is not None and thread.is_alive():
            thread.join()

    def _maybe_merge(self) -> None:
        """Start a merge when the delta is full and none is running (lock held)."""
        state = self._state
        if self._merging or state.delta_len < self.merge_at:
            return
        self._merging = True
        self._removed_while_merging = []
        if not self.background_merge:
            self._lock.release()  # the merge takes the lock itself to publish
            try:
                self._merge(state)
            finally:
                self._lock.acquire()
            return
        self._merge_thread = threading.Thread(
            target=self._merge, args=(state,), name="pdq-index-merge", daemon=True
        )
        self._merge_thread.start()

    def _merge(self, snapshot: _State) -> None:
        """Build tables from the snapshot's live rows, then publish them with later changes."""
        try:
            tables = _merged_tables(snapshot)
            with self._lock:
                current = self._state
                gone = np.zeros(tables.size, bool)
                if self._removed_while_merging:  # removals that landed after the snapshot
                    gone = np.isin(tables.labels, np.concatenate(self._removed_while_merging))
                removed_count = int(np.count_nonzero(gone))
                removed = np.packbits(gone) if removed_count else np.zeros(0, np.uint8)
                start, end = snapshot.delta_len, current.delta_len
                capacity = max(16, 2 * (end - start))
                self._state = _State(
                    tables,
                    removed,
                    removed_count,
                    _grow(current.delta_hashes[start:end], capacity, end - start),
                    _grow(current.delta_labels[start:end], capacity, end - start),
                    _grow(current.delta_removed[start:end], capacity, end - start),
                    end - start,
                )
                self._merging = False
                self._removed_while_merging = []
                self._maybe_merge()
        except Exception:  # never leave the index stuck "merging"; the next add retries
            log.exception("PDQ index merge failed; queries keep using the previous tables")
            with self._lock:
                self._merging = False


def _merged_tables(snapshot: _State) -> Tables:
    tables = snapshot.tables
    alive = np.ones(tables.size, bool)
    if snapshot.removed_count:
        alive = ~np.unpackbits(snapshot.removed, count=tables.size).astype(bool)
    delta_alive = ~snapshot.delta_removed[: snapshot.delta_len]
    labels = np.concatenate(
        [
            tables.labels[alive].astype(np.int64),
            snapshot.delta_labels[: snapshot.delta_len][delta_alive],
        ]
    )
    hashes = np.concatenate(
        [tables.hashes[alive], snapshot.delta_hashes[: snapshot.delta_len][delta_alive]]
    )
    return Tables.build(labels, hashes)


def _grow(array: np.ndarray, capacity: int, used: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown


def _equal_any(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    found = labels == ids[0]
    for entry_id in ids[1:]:
        found |= labels == entry_id
    return found

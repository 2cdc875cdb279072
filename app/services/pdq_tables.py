"""The immutable part of the PDQ index: multi-index hash tables over 256-bit hashes, in numpy.

Exactness (multi-index hashing, Norouzi et al.). Eleven disjoint 16-bit chunks of the hash are
indexed. Each query probes every chunk within a small radius: for a threshold T the radii are
chosen so that ``sum(radius + 1) >= T + 1``. If a hash were within T of the query but outside
every probe, each chunk would differ by at least ``radius + 1`` bits and the total distance
would be at least ``T + 1``: a contradiction. So no hash within T is missed. For T = 31 that is
ten chunks at radius 2 and one at radius 1 (10·3 + 2 = 32 > 31). Every candidate is then
verified with its exact Hamming distance, so nothing beyond T is returned either.

Why eleven tables and not sixteen (radius 1 on all 16 chunks, the textbook layout): each table
costs one id per entry, and sixteen tables of ids do not fit the 64 MiB budget for a million
hashes next to the 32 MB of hashes themselves. Eleven tables with radius 2 probe more buckets
(1,387 instead of 272) but stay well under a millisecond; bench/README.md has the numbers.

Memory savings, all measured in bench/results.md:
- rows are sorted by chunk 0, so table 0 needs no ids at all (a bucket is a range of rows);
- ids in the other ten tables are packed: 16 low bits, plus 4 high bits in a nibble array up to
  2^20 rows (8 bits up to 2^24, 16 beyond), i.e. 2.5 bytes per row per table at a million.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np

CHUNKS = 11  # 16-bit chunks indexed, out of the hash's 16
BUCKETS = 1 << 16
MAX_THRESHOLD = 31  # PDQ's confident-match distance; the probe plan proves exactness up to here


def _chunk_masks(radius: int) -> np.ndarray:
    """Every 16-bit mask with at most ``radius`` bits set (1, 17 or 137 of them)."""
    masks = [0]
    for bits in range(1, radius + 1):
        for positions in itertools.combinations(range(16), bits):
            masks.append(sum(1 << p for p in positions))
    return np.array(masks, dtype=np.uint16)


@cache
def probe_plan(threshold: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(chunk of each probe, mask of each probe, probes in chunk 0) proving exactness to T."""
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise ValueError(f"PDQ threshold must be between 0 and {MAX_THRESHOLD}, not {threshold}")
    # Radii r_i with sum(r_i + 1) >= T + 1; a chunk with r_i = -1 is not probed at all.
    base, extra = divmod(threshold + 1, CHUNKS)
    radii = [base if chunk < extra else base - 1 for chunk in range(CHUNKS)]
    chunks, masks = [], []
    for chunk, radius in enumerate(radii):
        if radius >= 0:
            chunk_masks = _chunk_masks(radius)
            chunks.append(np.full(len(chunk_masks), chunk, dtype=np.int64))
            masks.append(chunk_masks)
    chunk_of_probe = np.concatenate(chunks)
    first_chunk_probes = int(np.count_nonzero(chunk_of_probe == 0))
    return chunk_of_probe, np.concatenate(masks), first_chunk_probes


def hashes_from_hex(hexes: list[str]) -> np.ndarray:
    """64-hex PDQ strings (already validated) as an (n, 4) uint64 array, in one C call."""
    raw = bytes.fromhex("".join(hexes))
    return np.frombuffer(raw, dtype=np.uint64).reshape(-1, 4).copy()


def within(
    candidates: np.ndarray, query: np.ndarray, threshold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the (k, 4) ``candidates`` within ``threshold`` of ``query``, and distances.

    ``candidates`` is overwritten (it is always a fresh gather)."""
    count = len(candidates)
    # XOR 16 rows at a time: a broadcast over rows of 4 words is 4x slower in numpy.
    whole = count - count % 16
    flat = candidates[:whole].reshape(-1, 64)
    np.bitwise_xor(flat, np.tile(query, 16), out=flat)
    np.bitwise_xor(candidates[whole:], query, out=candidates[whole:])
    # The four popcounts of a row as one uint32; times 0x01010101 sums them into the top byte.
    # Only a distance of exactly 256 wraps (to 0), so the few hits are re-counted exactly.
    packed = np.bitwise_count(candidates).view(np.uint32).reshape(-1)
    packed *= np.uint32(0x01010101)
    packed >>= np.uint32(24)
    hits = np.flatnonzero(packed <= threshold)
    distance = np.bitwise_count(candidates[hits]).astype(np.int16).sum(axis=1)
    near = distance <= threshold
    return hits[near], distance[near]


@dataclass(frozen=True, eq=False)
class Tables:
    """Rows (hash + entry id) sorted by chunk 0, and the bucket tables of chunks 0 to 10."""

    hashes: np.ndarray  # (n, 4) uint64
    labels: np.ndarray  # (n,) entry ids, uint32 when they fit, else int64
    offsets: np.ndarray  # (CHUNKS * BUCKETS + 1,) uint32: where each (chunk, value) bucket starts
    low_ids: np.ndarray  # ((CHUNKS - 1) * n,) uint16: row ids of chunks 1..10, low 16 bits
    high_ids: np.ndarray  # their high bits: empty, nibbles, uint8 or uint16 (see _pack_high)
    high_bits: int  # 0, 4, 8 or 16

    @property
    def size(self) -> int:
        """Rows stored, removed ones included."""
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(
            a.nbytes for a in (self.hashes, self.labels, self.offsets, self.low_ids, self.high_ids)
        )

    @classmethod
    def build(cls, labels: np.ndarray, hashes: np.ndarray) -> Tables:
        """Sort the rows by chunk 0 and bucket chunks 1..10; O(n) radix sorts, ~1 s per million."""
        n = len(labels)
        if CHUNKS * n >= 1 << 32:
            raise ValueError("a PDQ index holds at most 390 million hashes")
        chunk_view = hashes.view(np.uint16).reshape(n, 16)
        order = np.argsort(chunk_view[:, 0], kind="stable")
        hashes = np.ascontiguousarray(hashes[order])
        labels = _compact_labels(np.asarray(labels)[order])
        chunk_view = hashes.view(np.uint16).reshape(n, 16)
        offsets = np.empty(CHUNKS * BUCKETS + 1, dtype=np.uint32)
        low_ids = np.empty((CHUNKS - 1) * n, dtype=np.uint16)
        high = np.empty((CHUNKS - 1) * n, dtype=np.uint16 if n > 1 << 24 else np.uint8)
        for chunk in range(CHUNKS):
            values = chunk_view[:, chunk]
            counts = np.bincount(values, minlength=BUCKETS)
            starts = offsets[chunk * BUCKETS : (chunk + 1) * BUCKETS]
            starts[0] = chunk * n
            np.cumsum(counts[:-1], out=starts[1:])
            starts[1:] += chunk * n
            if chunk:  # chunk 0's buckets are ranges of rows: no ids needed
                rows = np.argsort(values, kind="stable")
                low_ids[(chunk - 1) * n : chunk * n] = rows  # keeps the low 16 bits
                high[(chunk - 1) * n : chunk * n] = rows >> 16
                del rows
        offsets[-1] = CHUNKS * n
        high_bits, high_ids = _pack_high(high, n)
        return cls(hashes, labels, offsets, low_ids, high_ids, high_bits)

    def search(self, query: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows within ``threshold`` of ``query`` ((4,) uint64) and their distances (may repeat)."""
        n = self.size
        nothing = np.empty(0, np.intp), np.empty(0, np.int16)
        if n == 0:
            return nothing
        chunk_of_probe, masks, first_chunk_probes = probe_plan(threshold)
        keys = (query.view(np.uint16)[chunk_of_probe] ^ masks).astype(np.intp)
        keys += chunk_of_probe << 16
        starts = np.take(self.offsets, keys).astype(np.intp)
        lengths = np.take(self.offsets, keys + 1) - starts
        ends = np.cumsum(lengths)
        total = int(ends[-1])
        if total == 0:
            return nothing
        # All bucket ranges at once: output k is start_j + (k - first output of bucket j).
        rows = np.repeat(starts - (ends - lengths), lengths)
        rows += np.arange(total)
        in_chunk_0 = int(ends[first_chunk_probes - 1]) if first_chunk_probes else 0
        slots = rows[in_chunk_0:]  # chunks 1..10: slots in low_ids, decoded in place to rows
        slots -= n
        slots[:] = self._row_ids(slots)
        hits, distance = within(np.take(self.hashes, rows, axis=0), query, threshold)
        return rows[hits], distance

    def _row_ids(self, slots: np.ndarray) -> np.ndarray:
        rows = np.take(self.low_ids, slots).astype(np.intp)
        if self.high_bits == 4:
            nibbles = np.take(self.high_ids, slots >> 1)
            nibbles >>= ((slots & 1) << 2).astype(np.uint8)
            nibbles &= 0xF
            rows |= nibbles.astype(np.intp) << 16
        elif self.high_bits:
            rows |= np.take(self.high_ids, slots).astype(np.intp) << 16
        return rows


def _compact_labels(labels: np.ndarray) -> np.ndarray:
    labels = labels.astype(np.int64, copy=False)
    if len(labels) and labels.min() >= 0 and labels.max() < 1 << 32:
        return labels.astype(np.uint32)
    return labels


def _pack_high(high: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """High bits of the row ids: none up to 2^16 rows, nibbles to 2^20, bytes to 2^24."""
    if n <= 1 << 16:
        return 0, np.empty(0, np.uint8)
    if n <= 1 << 20:
        if len(high) % 2:
            high = np.append(high, 0)
        pairs = high.reshape(-1, 2)
        return 4, pairs[:, 0] | (pairs[:, 1] << 4)
    return (16 if n > 1 << 24 else 8), high

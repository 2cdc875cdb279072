"""The PDQ index finds every hash within the threshold and nothing beyond it, also while it
changes under concurrent writers. Checked against brute force on synthetic hashes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.services.pdq_index import PdqIndex
from app.services.pdq_tables import hashes_from_hex


def random_hashes(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 2**64, size=(count, 4), dtype=np.uint64)


def flip_bits(rng: np.random.Generator, row: np.ndarray, distance: int) -> np.ndarray:
    """``row`` with exactly ``distance`` of its 256 bits flipped."""
    bits = np.unpackbits(row.view(np.uint8))
    bits[rng.choice(256, size=distance, replace=False)] ^= 1
    return np.packbits(bits).view(np.uint64)


def brute_force(hashes: np.ndarray, ids: np.ndarray, query: np.ndarray, threshold: int) -> list:
    distances = np.bitwise_count(hashes ^ query).astype(int).sum(axis=1)
    near = np.flatnonzero(distances <= threshold)
    return sorted(((int(ids[i]), int(distances[i])) for i in near), key=lambda m: (m[1], m[0]))


def to_hex(row: np.ndarray) -> str:
    return row.tobytes().hex()


@pytest.fixture(scope="module")
def haystack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """50,000 random hashes plus, around 200 random queries, neighbours at distances 0 to 40."""
    rng = np.random.default_rng(20240501)
    queries = random_hashes(rng, 200)
    planted = [flip_bits(rng, query, distance) for query in queries for distance in range(41)]
    hashes = np.concatenate([random_hashes(rng, 50_000), np.array(planted)])
    ids = rng.permutation(len(hashes)) * 7 + 3  # ids unrelated to positions
    return hashes, ids, queries


def test_every_planted_neighbour_within_31_is_found_and_none_beyond(haystack) -> None:
    hashes, ids, queries = haystack
    index = PdqIndex.build(ids, hashes)
    for query in queries:
        found = index.query(query)
        assert found == brute_force(hashes, ids, query, 31)
        assert {distance for _, distance in found} >= set(range(32))  # the planted ones
        assert all(distance <= 31 for _, distance in found)


@pytest.mark.parametrize("threshold", [0, 1, 5, 10, 11, 21, 22, 30])
def test_smaller_thresholds_are_exact_too(haystack, threshold: int) -> None:
    hashes, ids, queries = haystack
    index = PdqIndex.build(ids, hashes)
    for query in queries[:50]:
        assert index.query(query, threshold) == brute_force(hashes, ids, query, threshold)


def test_thresholds_beyond_31_are_refused() -> None:
    index = PdqIndex.build([1], ["0" * 64])
    with pytest.raises(ValueError, match="between 0 and 31"):
        index.query("0" * 64, 32)


def test_opposite_hashes_are_256_apart_not_a_match() -> None:
    index = PdqIndex.build([1, 2], ["0" * 64, "f" * 64])
    assert index.query("f" * 64) == [(2, 0)]
    assert index.query("0" * 64) == [(1, 0)]


def test_hex_strings_and_arrays_agree() -> None:
    rng = np.random.default_rng(1)
    hashes = random_hashes(rng, 100)
    as_hex = [to_hex(row) for row in hashes]
    assert np.array_equal(hashes_from_hex(as_hex), hashes)
    index = PdqIndex.build(range(100), as_hex)
    assert index.query(as_hex[42]) == [(42, 0)]
    assert index.query(hashes[42]) == [(42, 0)]


def test_identical_hashes_of_different_entries_are_all_found() -> None:
    index = PdqIndex.build([5, 6], ["ab" * 32, "ab" * 32])
    index.add(7, "ab" * 32)
    assert index.query("ab" * 32) == [(5, 0), (6, 0), (7, 0)]


@pytest.mark.parametrize("background", [False, True])
def test_adds_and_removes_are_visible_to_the_next_query(background: bool) -> None:
    rng = np.random.default_rng(7)
    base = random_hashes(rng, 20_000)
    index = PdqIndex.build(np.arange(20_000), base, merge_at=100, background_merge=background)
    newcomer = flip_bits(rng, base[10], 20)
    index.add(50_000, newcomer)
    assert (50_000, 0) in index.query(newcomer)
    assert (50_000, 20) in index.query(base[10])
    assert index.remove(10) == 1
    assert [m for m in index.query(base[10]) if m[0] == 10] == []
    assert index.remove(10) == 0  # already gone
    # Push the delta past merge_at so it is merged into new tables, then check again.
    extra = random_hashes(rng, 500)
    index.add_many(np.arange(60_000, 60_500), extra)
    index.remove(60_007)
    index.wait_for_merge()
    index.compact()
    assert (50_000, 0) in index.query(newcomer)
    assert [m for m in index.query(base[10]) if m[0] == 10] == []
    assert index.query(extra[7]) == []
    assert index.query(extra[8]) == [(60_008, 0)]
    assert len(index) == 20_000 - 1 + 1 + 500 - 1


def test_removal_during_a_background_merge_is_not_lost() -> None:
    rng = np.random.default_rng(11)
    hashes = random_hashes(rng, 3000)
    index = PdqIndex(merge_at=1000, background_merge=True)
    index.add_many(np.arange(3000), hashes)  # starts a merge
    for entry_id in range(0, 3000, 3):
        index.remove(entry_id)
    index.wait_for_merge()
    index.compact()
    for entry_id in (0, 3, 2997):
        assert index.query(hashes[entry_id]) == []
    assert index.query(hashes[1]) == [(1, 0)]
    assert len(index) == 2000


def test_memory_stays_within_61_bytes_per_hash() -> None:
    """The layout that keeps a million hashes under 64 MB (bench/results.md measures 1M)."""
    rng = np.random.default_rng(3)
    index = PdqIndex.build(np.arange(100_000), random_hashes(rng, 100_000))
    fixed = 11 * 65537 * 4 + 16 * 41  # bucket offsets and an empty delta buffer
    assert index.nbytes <= 100_000 * 61 + fixed  # hash 32 + id 4 + 10 tables x 2.5


def test_concurrent_writers_and_readers_always_see_a_consistent_index() -> None:
    """An entry is found exactly while it is present, whatever other threads are doing."""
    rng = np.random.default_rng(5)
    stable = random_hashes(rng, 5000)
    churn = random_hashes(rng, 4 * 300)
    absent = random_hashes(rng, 50)
    index = PdqIndex.build(np.arange(5000), stable, merge_at=200, background_merge=True)
    failures: list[str] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        for k in range(300):
            entry_id = 100_000 + worker * 1000 + k
            row = churn[worker * 300 + k]
            index.add(entry_id, row)
            if (entry_id, 0) not in index.query(row):
                failures.append(f"{entry_id} missing right after add")
            if k % 2:
                index.remove(entry_id)
                if any(m[0] == entry_id for m in index.query(row)):
                    failures.append(f"{entry_id} found right after remove")

    def reader() -> None:
        local = np.random.default_rng(threading.get_ident() % 2**32)
        while not stop.is_set():
            k = int(local.integers(5000))
            if (k, 0) not in index.query(stable[k]):
                failures.append(f"stable entry {k} missing")
            if index.query(absent[k % 50]):
                failures.append("a hash never added was found")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(worker,)) for worker in range(4)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    index.wait_for_merge()
    assert failures == []
    for worker in range(4):
        for k in range(300):
            found = index.query(churn[worker * 300 + k])
            assert bool(found) == (k % 2 == 0), (worker, k)
    assert len(index) == 5000 + 4 * 150

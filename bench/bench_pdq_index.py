"""PDQ lookup against a 1M-hash bank: our index next to python-threatexchange's PDQIndex (faiss
multi-hash, what HMA uses) and PDQIndex2 (faiss flat), on the same data in the same run.

Run from the repository root::

    .venv/bin/python bench/bench_pdq_index.py                    # 1,000,000 hashes, 1000 queries
    .venv/bin/python bench/bench_pdq_index.py --n 100000 --indexes ours,pdqindex,pdqindex2
    .venv/bin/python bench/bench_pdq_index.py --service          # also the banks service

Data: ``--n`` random 256-bit hashes, of which 12 per query are planted neighbours of the query
(at random distances 0 to 31, and 32 to 40). Recall is against brute force over all hashes.
Each index is built and queried in its own child process, so its memory is measured alone:
``tracemalloc`` (Python and numpy allocations; blind to faiss's C++ memory) and the RSS growth
from before the build to after it (``VmRSS``), and the peak during the build (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if TYPE_CHECKING:
    from app.services.pdq_index import PdqIndex

OUT = ROOT / "bench" / "out"
PLANTED_NEAR, PLANTED_FAR = 8, 4
MiB = 1 << 20


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident memory (or its peak, ``VmHWM``), in KiB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def flip(rng: np.random.Generator, row: np.ndarray, distance: int) -> np.ndarray:
    bits = np.unpackbits(row.view(np.uint8))
    bits[rng.choice(256, size=distance, replace=False)] ^= 1
    return np.packbits(bits).view(np.uint64)


def make_data(n: int, queries: int, seed: int) -> Path:
    """Random hashes with planted neighbours, the queries, and brute-force ground truth."""
    path = OUT / f"pdq-{n}-{queries}-{seed}.npz"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    wanted = rng.integers(0, 2**64, size=(queries, 4), dtype=np.uint64)
    slots = rng.choice(n, size=queries * (PLANTED_NEAR + PLANTED_FAR), replace=False)
    planted = iter(slots)
    for query in wanted:
        for distance in [*rng.integers(0, 32, PLANTED_NEAR), *rng.integers(32, 41, PLANTED_FAR)]:
            hashes[next(planted)] = flip(rng, query, int(distance))
    truth = []
    for query in wanted:  # brute force, the ground truth for recall
        distance = np.bitwise_count(hashes ^ query).astype(np.int16).sum(axis=1)
        truth.append(np.flatnonzero(distance <= 31))
    np.savez(path, hashes=hashes, queries=wanted, truth=np.array(truth, dtype=object))
    return path


class Mih16:
    """The textbook layout, for comparison: 16 tables of 16-bit chunks, radius 1, uint32 ids.

    Vectorised like ours; what the design first sketched. Exact by pigeonhole (16 x 2 > 31)."""

    def __init__(self, hashes: np.ndarray) -> None:
        n = len(hashes)
        chunks = hashes.view(np.uint16).reshape(n, 16)
        self.hashes = hashes
        self.offsets = np.empty(16 * 65536 + 1, np.int64)
        self.ids = np.empty(16 * n, np.uint32)
        for chunk in range(16):
            counts = np.bincount(chunks[:, chunk], minlength=65536)
            self.offsets[chunk * 65536] = chunk * n
            np.cumsum(counts[:-1], out=self.offsets[chunk * 65536 + 1 : (chunk + 1) * 65536])
            self.offsets[chunk * 65536 + 1 : (chunk + 1) * 65536] += chunk * n
            self.ids[chunk * n : (chunk + 1) * n] = np.argsort(chunks[:, chunk], kind="stable")
        self.offsets[-1] = 16 * n
        self.probe_chunk = np.repeat(np.arange(16), 17)
        self.probe_mask = np.tile(np.array([0] + [1 << b for b in range(16)], np.uint16), 16)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.offsets.nbytes // 2 + self.ids.nbytes  # uint32 offsets

    def query(self, query: np.ndarray) -> np.ndarray:
        keys = (query.view(np.uint16)[self.probe_chunk] ^ self.probe_mask).astype(np.intp)
        keys += self.probe_chunk << 16
        starts, stops = self.offsets[keys], self.offsets[keys + 1]
        lengths = stops - starts
        ends = np.cumsum(lengths)
        positions = np.repeat(starts - (ends - lengths), lengths) + np.arange(int(ends[-1]))
        rows = np.take(self.ids, positions)
        distance = np.bitwise_count(np.take(self.hashes, rows, axis=0) ^ query).sum(axis=1)
        return np.unique(rows[distance <= 31])


def run_child(kind: str, path: Path, queries: int) -> dict:
    """Build and query one index kind in this (child) process; return the measurements."""
    data = np.load(path, allow_pickle=True)
    hashes, wanted, truth = data["hashes"], data["queries"][:queries], data["truth"][:queries]
    anchor = kind.startswith("pdqindex")
    hexes = [row.tobytes().hex() for row in hashes] if anchor else []
    id_list = list(range(len(hashes))) if anchor else []
    query_hexes = [row.tobytes().hex() for row in wanted]
    ids = np.arange(len(hashes))
    # Import before measuring: importing the app or faiss would count as the index's memory.
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex
    from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2

    from app.services.pdq_index import PdqIndex

    rss_before = rss_kib()
    tracemalloc.start()
    started = time.perf_counter()
    if kind == "ours":
        index = PdqIndex.build(ids, hashes)

        def lookup(i: int) -> set[int]:
            return {entry for entry, _ in index.query(query_hexes[i])}
    elif kind == "mih16":
        index = Mih16(hashes)

        def lookup(i: int) -> set[int]:
            return set(index.query(wanted[i]).tolist())
    else:
        if kind == "pdqindex":
            index = PDQIndex.build(zip(hexes, id_list, strict=True))
        else:
            index = PDQIndex2(entries=zip(hexes, id_list, strict=True))

        def lookup(i: int) -> set[int]:
            return {match.metadata for match in index.query(query_hexes[i])}

    build = time.perf_counter() - started
    traced, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after, rss_peak = rss_kib(), rss_kib("VmHWM")
    for i in range(min(20, len(wanted))):  # warm up
        lookup(i)
    times, cpu_times, found, expected = [], [], 0, 0
    for i in range(len(wanted)):
        began, began_cpu = time.perf_counter_ns(), time.process_time_ns()
        result = lookup(i)
        times.append((time.perf_counter_ns() - began) / 1e6)
        cpu_times.append((time.process_time_ns() - began_cpu) / 1e6)
        want = set(truth[i].tolist())
        found += len(want & result)
        expected += len(want)
    extra = 0
    if kind in ("ours", "mih16"):  # nothing beyond the threshold: every result is in the truth
        extra = sum(len(lookup(i) - set(truth[i].tolist())) for i in range(len(wanted)))
    quantiles = statistics.quantiles(times, n=100, method="inclusive")
    # CPU time of the whole process (faiss's threads included): what a query costs, without
    # the time other programs on a busy machine took the CPU away.
    cpu = statistics.quantiles(cpu_times, n=100, method="inclusive")
    result = {
        "kind": kind,
        "n": len(hashes),
        "queries": len(wanted),
        "build_s": round(build, 2),
        "p50_ms": round(quantiles[49], 3),
        "p95_ms": round(quantiles[94], 3),
        "p99_ms": round(quantiles[98], 3),
        "cpu_p50_ms": round(cpu[49], 3),
        "cpu_p95_ms": round(cpu[94], 3),
        "mean_ms": round(statistics.fmean(times), 3),
        "recall": round(found / expected, 6),
        "beyond_threshold": extra,
        "tracemalloc_mib": round(traced / MiB, 1),
        "tracemalloc_peak_mib": round(traced_peak / MiB, 1),
        "rss_delta_mib": round((rss_after - rss_before) / 1024, 1),
        "rss_peak_delta_mib": round((rss_peak - rss_before) / 1024, 1),
    }
    if kind in ("ours", "mih16"):
        result["arrays_mib"] = round(index.nbytes / MiB, 1)
    if kind == "ours":
        result.update(incremental(index, hashes))
    return result


def incremental(index: PdqIndex, hashes: np.ndarray) -> dict:
    """Single adds and removes, and queries while the delta buffer is nearly full."""
    rng = np.random.default_rng(1)
    index.background_merge = False
    extra = rng.integers(0, 2**64, size=(index.merge_at - 1, 4), dtype=np.uint64)
    began = time.perf_counter()
    for k, row in enumerate(extra):
        index.add(10_000_000 + k, row)
    add_us = (time.perf_counter() - began) / len(extra) * 1e6
    times = []
    for row in hashes[:300]:
        began = time.perf_counter_ns()
        index.query(row)
        times.append((time.perf_counter_ns() - began) / 1e6)
    began = time.perf_counter()
    for k in range(200):
        index.remove(k)
    remove_us = (time.perf_counter() - began) / 200 * 1e6
    began = time.perf_counter()
    index.compact()
    return {
        "add_us": round(add_us, 1),
        "remove_us": round(remove_us, 1),
        "p50_ms_full_delta": round(statistics.median(times), 3),
        "merge_s": round(time.perf_counter() - began, 2),
    }


def bench_service(n: int, queries: int) -> dict:
    """The banks service on SQLite: n PDQ + n SHA-256 entries, lookups, a 100k-line import."""
    import io
    import tempfile

    from app import create_app
    from app.extensions import db
    from app.models.bank import BankEntry
    from app.services import bank_io, banks
    from app.services.audit import Actor

    instance = Path(tempfile.mkdtemp(prefix="bench-banks-"))
    os.environ["MODTOOLS_INSTANCE_PATH"] = str(instance)
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'modtools.db'}", "HUEY_IMMEDIATE": True}
    )
    rng = np.random.default_rng(7)
    actor = Actor.system("bench")
    result: dict = {"kind": "service", "n": n}
    with app.app_context():
        db.create_all()
        bank = banks.create_bank("Bench", actor, labels=["csam"])
        db.session.commit()
        pdqs = [row.tobytes().hex() for row in rng.integers(0, 2**64, (n, 4), dtype=np.uint64)]
        shas = [row.tobytes().hex() for row in rng.integers(0, 2**64, (n, 4), dtype=np.uint64)]
        began = time.perf_counter()
        table = BankEntry.__table__
        for kind, values in (("pdq", pdqs), ("sha256", shas)):
            for start in range(0, n, 50_000):
                db.session.execute(
                    table.insert(),
                    [
                        {"bank_id": bank.id, "signal_type": kind, "signal": value}
                        for value in values[start : start + 50_000]
                    ],
                )
        db.session.commit()
        result["bulk_insert_s"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        banks.match_hashes(sha256=None, md5=None, pdq=pdqs[0], pdq_quality=100)
        result["first_lookup_builds_index_s"] = round(time.perf_counter() - began, 2)

        def timed(work: Callable[[int], object], count: int) -> tuple[float, float]:
            times = []
            for k in range(count):
                began = time.perf_counter_ns()
                work(k)
                times.append((time.perf_counter_ns() - began) / 1e6)
            q = statistics.quantiles(times, n=100, method="inclusive")
            return round(q[49], 3), round(q[94], 3)

        result["sha256_lookup_p50_p95_ms"] = timed(
            lambda k: banks.match_hashes(
                sha256=shas[k * 997 % n], md5=None, pdq=None, pdq_quality=None
            ),
            queries,
        )
        result["pdq_miss_lookup_p50_p95_ms"] = timed(
            lambda k: banks.match_hashes(sha256=None, md5=None, pdq=shas[k], pdq_quality=100),
            queries,
        )
        result["all_hashes_hit_p50_p95_ms"] = timed(
            lambda k: banks.match_hashes(
                sha256=shas[k], md5=shas[k][:32], pdq=pdqs[k], pdq_quality=100
            ),
            queries,
        )
        other = banks.create_bank("Import", actor)
        db.session.commit()
        lines = "".join(
            f"pdq,{row.tobytes().hex()},note {k}\n"
            for k, row in enumerate(rng.integers(0, 2**64, (100_000, 4), dtype=np.uint64))
        )
        began = time.perf_counter()
        report = bank_io.import_entries(
            other, io.BytesIO(lines.encode()), actor, fmt="csv", filename="bench.csv"
        )
        result["import_100k_csv_s"] = round(time.perf_counter() - began, 2)
        assert report.added == 100_000
        began = time.perf_counter()
        banks.match_hashes(sha256=None, md5=None, pdq=pdqs[1], pdq_quality=100)
        result["next_lookup_applies_100k_changes_s"] = round(time.perf_counter() - began, 2)
        db.session.remove()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--indexes", default="ours,mih16,pdqindex,pdqindex2")
    parser.add_argument(
        "--queries-pdqindex2",
        type=int,
        default=None,
        help="fewer queries for the brute-force PDQIndex2 at large n",
    )
    parser.add_argument("--service", action="store_true", help="also bench the banks service")
    parser.add_argument(
        "--quick", action="store_true", help="100,000 hashes, every index (make bench)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n = min(args.n, 100_000)
    if args.child:
        print(json.dumps(run_child(args.child, Path(args.data), args.queries)))
        return
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.machine()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · numpy {np.__version__} · load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    path = make_data(args.n, args.queries, args.seed)
    for kind in filter(None, args.indexes.split(",")):
        queries = (
            args.queries_pdqindex2
            if kind == "pdqindex2" and args.queries_pdqindex2
            else args.queries
        )
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--data",
                str(path),
                "--queries",
                str(queries),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode:
            print(f"{kind}: failed\n{child.stderr}", flush=True)
            continue
        print(child.stdout.strip(), flush=True)
    if args.service:
        print(json.dumps(bench_service(args.n, args.queries)), flush=True)


if __name__ == "__main__":
    main()

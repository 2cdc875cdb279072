"""The server caps glibc's malloc arenas, so its threads share freed memory instead of each
keeping a heap of its own (``MALLOC_ARENAS``)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.api_helpers import ROOT

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="arenas are glibc's; elsewhere the cap does nothing"
)

# Eight threads each allocate while all eight are alive (a new thread gets a new arena until the
# cap is reached), then glibc's malloc_info lists the arenas, one <heap nr=...> each.
PROGRAM = textwrap.dedent(
    """
    import ctypes, sys, threading
    from app.runner import limit_malloc_arenas

    print("limited" if limit_malloc_arenas(int(sys.argv[1])) else "unlimited")
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    together = threading.Barrier(8)

    def allocate():
        block = libc.malloc(1000)
        together.wait()
        libc.free(block)

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = libc.fopen(sys.argv[2].encode(), b"w")
    libc.malloc_info(0, report)
    libc.fclose(report)
    """
)


def arenas_with(cap: int, tmp_path: Path) -> tuple[str, int]:
    report = tmp_path / f"malloc-{cap}.xml"
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(cap), str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip(), len(re.findall(r"<heap nr=", report.read_text()))


def test_with_the_cap_threads_share_two_arenas(tmp_path: Path) -> None:
    assert arenas_with(2, tmp_path) == ("limited", 2)


def test_without_it_each_thread_gets_an_arena_of_its_own(tmp_path: Path) -> None:
    # What the cap prevents, measured the same way: 0 leaves glibc's default (8 per core).
    said, arenas = arenas_with(0, tmp_path)
    assert said == "unlimited"
    assert arenas >= min(9, 8 * (os.cpu_count() or 1))

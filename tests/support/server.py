"""Start the real one-process server (``app.runner.serve``) with one extra job for the tests.

The job ``test.slow_mark`` appends "start" to a file, waits, then appends "done", so a test can
see whether a job ran, was interrupted, and ran again after a restart.
"""

from __future__ import annotations

import time
from pathlib import Path

from app import create_app
from app.runner import serve
from app.services import jobs


@jobs.handler("test.slow_mark")
def slow_mark(path: str, seconds: float) -> None:
    """Mark the start, wait, mark the end."""
    marker = Path(path)
    with marker.open("a") as handle:
        handle.write("start\n")
    time.sleep(seconds)
    with marker.open("a") as handle:
        handle.write("done\n")


if __name__ == "__main__":
    serve(create_app())

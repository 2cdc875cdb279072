"""Start the real one-process server (``app.runner.serve``) with one extra job for the tests.

The job ``test.slow_mark`` appends "start" to a file, waits, then appends "done", so a test can
see whether a job ran, was interrupted, and ran again after a restart.

``MODTOOLS_TEST_SLOW_SETUP_SECONDS`` makes the server's last start-up step (the setup link) take
that long, after ``/healthz`` already answers, so a test can stop a server that is still starting.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from app import create_app
from app.runner import serve
from app.services import accounts, jobs


@jobs.handler("test.slow_mark")
def slow_mark(path: str, seconds: float) -> None:
    """Mark the start, wait, mark the end."""
    marker = Path(path)
    with marker.open("a") as handle:
        handle.write("start\n")
    time.sleep(seconds)
    with marker.open("a") as handle:
        handle.write("done\n")


def slow_setup_link(seconds: float):
    """``create_setup_link`` delayed by ``seconds``, as on a loaded machine."""
    make_link = accounts.create_setup_link

    def delayed(*args, **kwargs):
        time.sleep(seconds)
        return make_link(*args, **kwargs)

    return delayed


if __name__ == "__main__":
    if slow := float(os.environ.get("MODTOOLS_TEST_SLOW_SETUP_SECONDS", "0")):
        accounts.create_setup_link = slow_setup_link(slow)
    serve(create_app())

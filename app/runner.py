"""Run the web server and the task consumer in one process, or the consumer alone.

``python wsgi.py`` serves the app with waitress on a background thread and runs a Huey consumer on
worker threads. Huey's ``Consumer.start()`` installs its own signal handlers, so it is started on
the main thread first and ours replace them: SIGINT and SIGTERM then stop accepting requests, let
the task in hand finish, and exit.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from types import FrameType

from flask import Flask

from app.extensions import huey
from app.services import actions, bank_matching, intake, jobs, storage
from app.tasks import PROCESS

log = logging.getLogger(__name__)


class WorkerRuntime:
    """A registered consumer: its identity, heartbeat thread and crash recovery."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.worker_id = jobs.worker_identity()
        self.stopping = threading.Event()
        self.consumer = huey.create_consumer(
            workers=app.config["HUEY_WORKERS"],
            worker_type="thread",
            periodic=True,
            check_worker_health=True,
            initial_delay=0.05,
            max_delay=1.0,
        )
        self._beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)

    def start(self) -> None:
        """Register, recover unfinished work, then start the consumer (must be the main thread)."""
        PROCESS["worker_id"] = self.worker_id
        with self.app.app_context():
            jobs.register_worker(self.worker_id)
            requeued = jobs.recover_unfinished(self.app.config["WORKER_STALE_SECONDS"])
            # Action runs committed with their decision but never handed to the queue (a crash
            # between the two) get their job now.
            requeued += actions.dispatch_pending()
        if requeued:
            log.info("re-queued %d unfinished jobs", requeued)
        self.consumer.start()
        self._beat.start()

    def stop(self) -> None:
        """Finish the tasks in hand, then mark this worker stopped."""
        self.stopping.set()
        self.consumer.stop(graceful=True)
        huey.notify_interrupted_tasks()
        with self.app.app_context():
            jobs.unregister_worker(self.worker_id)

    def _heartbeat_loop(self) -> None:
        interval = self.app.config["WORKER_HEARTBEAT_SECONDS"]
        beats = 0
        while not self.stopping.wait(interval):
            beats += 1
            try:
                with self.app.app_context():
                    jobs.heartbeat(self.worker_id)
                    if beats % 6 == 0:  # find work orphaned by consumers on other machines
                        jobs.recover_unfinished(
                            self.app.config["WORKER_STALE_SECONDS"], dispatch_queued=False
                        )
            except Exception:
                log.exception("worker heartbeat failed")


class StopSignal:
    """SIGINT and SIGTERM set an event the main thread waits on.

    Create it right after the consumer starts: Huey's ``Consumer.start()`` installs handlers that
    only record the signal for ``Consumer.run()``, which we do not call, so a signal that arrived
    after them and before ours (a service manager stopping a server still printing its setup
    link) would be lost and the process would never stop.
    """

    def __init__(self) -> None:
        self.received = threading.Event()
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info(
            "received %s: finishing the work in hand, then stopping", signal.Signals(signum).name
        )
        self.received.set()

    def wait(self) -> None:
        """Block until a stop signal has arrived (at once if one already has)."""
        while not self.received.wait(0.5):
            pass


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(count: int) -> bool:
    """Let glibc's malloc use at most ``count`` arenas from now on; True if it took the limit.

    glibc gives each new thread its own arena, up to 8 per core, and memory freed into one arena
    serves only the threads of that arena: a long-running server's threads each keep a
    fragmented heap and its RSS creeps up (bench/results.md, the soak). Call this before the
    threads start. 0 keeps glibc's default; so does ``MALLOC_ARENA_MAX`` in the environment,
    which glibc has already applied. Elsewhere than glibc this does nothing.
    """
    if count <= 0 or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, count) == 1


def check_media(app: Flask) -> None:
    """Refuse to start, saying which setting to check, when the media store cannot be used."""
    with app.app_context():
        try:
            storage.check_media_store()
        except storage.MediaUnavailable as error:
            raise SystemExit(f"Not starting: the media store cannot be used. {error}") from None


def run_worker(app: Flask) -> None:
    """A standalone consumer (``flask --app wsgi worker``)."""
    limit_malloc_arenas(app.config["MALLOC_ARENAS"])
    check_media(app)
    runtime = WorkerRuntime(app)
    runtime.start()
    stop = StopSignal()
    log.info("worker %s running with %d threads", runtime.worker_id, app.config["HUEY_WORKERS"])
    stop.wait()
    runtime.stop()
    log.info("worker stopped")


def start_background_work(app: Flask) -> WorkerRuntime | None:
    """Start the embedded worker (``EMBEDDED_WORKER``) and return it; in a web-only process,
    build the PDQ index instead, which the worker's consumer otherwise builds as it starts:
    either way the first ``/api/v1/check`` after a restart does not wait for it."""
    if app.config["EMBEDDED_WORKER"]:
        runtime = WorkerRuntime(app)
        runtime.start()
        return runtime
    bank_matching.build_in_background(app)
    return None


def serve(app: Flask, host: str | None = None, port: int | None = None) -> None:
    """Web server and consumer in one process, until SIGINT or SIGTERM."""
    from waitress import create_server

    from app.services.accounts import create_setup_link

    host = host or app.config["HOST"]
    port = int(port or app.config["PORT"])
    limit_malloc_arenas(app.config["MALLOC_ARENAS"])  # before any thread of ours starts
    check_media(app)
    runtime = start_background_work(app)
    stop = StopSignal()  # before anything can tell a client or a service manager we are up
    # Web and worker threads share one GIL; handing it over more often than CPython's 5 ms keeps
    # waitress's I/O thread and short requests from queueing behind a job's long computation.
    sys.setswitchinterval(app.config["SWITCH_INTERVAL_MS"] / 1000)
    server = create_server(
        app,
        host=host,
        port=port,
        threads=app.config["WEB_THREADS"],
        # Upload bodies in a few reads instead of 8 KB at a time: each read is a turn of the
        # server's I/O thread, which has to win the GIL back from busy request threads.
        recv_bytes=app.config["WEB_RECV_BYTES"],
        ident="modtools-image",
    )
    web = threading.Thread(target=server.run, name="waitress", daemon=True)
    web.start()
    base_url = app.config["PUBLIC_URL"] or f"http://{host}:{port}"
    print(f"Modtools Image is running on {base_url}  (Ctrl-C stops it)", flush=True)
    with app.app_context():
        setup_url = create_setup_link(base_url, app.instance_path)
    if setup_url:
        print(
            f"\nNo users yet. Create the first admin here (the link works once):\n  {setup_url}\n",
            flush=True,
        )
    stop.wait()
    server.close()  # stop accepting connections
    server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
    intake.drain(app)  # accepted items' jobs onto the queue before the worker stops
    if runtime:
        runtime.stop()
    log.info("stopped")

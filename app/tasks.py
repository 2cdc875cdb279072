"""Huey tasks: thin wrappers that open the app's context and call a service.

There is one task that matters, ``execute_job``: every piece of background work is a durable
job row (see ``app.services.jobs``), and the queue only carries its id.
"""

from __future__ import annotations

import os

from app.extensions import huey

# One identity per process; the runner sets it when it registers the worker.
PROCESS = {"worker_id": f"inline:{os.getpid()}"}


@huey.task(name="execute_job")
def execute_job(job_id: str) -> str:
    """Run one durable job inside the app context."""
    from app.services import jobs
    from app.services.traffic import make_way

    app = huey.flask_app  # type: ignore[attr-defined]
    if not huey.immediate:  # inline (tests), the job runs inside the request it would wait for
        make_way(app)
    with app.app_context():
        return jobs.run(job_id, PROCESS["worker_id"])

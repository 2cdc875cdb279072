"""``GET /healthz``: is the database reachable, is a worker alive, can the media store be used?

Nothing else is revealed: each part is "ok" or a word or two naming what is wrong; the details
(which setting to check) go to the log.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db, huey
from app.security import public
from app.services import jobs, storage

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@public
def healthz():
    """200 with every part "ok", or 503 naming the part that failed."""
    status = {"status": "ok", "database": "ok", "worker": "ok", "media": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check: database unreachable")
        status["database"] = "unreachable"
        status["worker"] = "unknown"
    else:
        if not huey.immediate and not jobs.live_workers(current_app.config["WORKER_STALE_SECONDS"]):
            status["worker"] = "not running"
    finally:
        db.session.rollback()
    try:
        storage.check_media_store()
    except storage.MediaUnavailable as error:
        log.error("health check: media store %s: %s", error.state, error)
        status["media"] = error.state
    except Exception:
        log.exception("health check: media store failed")
        status["media"] = "error"
    healthy = all(status[part] == "ok" for part in ("database", "worker", "media"))
    if not healthy:
        status["status"] = "failing"
    response = jsonify(status)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response

"""Calling plugin code with a deadline, so one slow vendor cannot hold a worker for ever.

Python cannot kill a thread, so the call runs on a daemon thread of its own and the caller stops
waiting at the deadline; the abandoned thread finishes (or dies with the process) on its own.
That is why plugins are also handed their ``timeout`` to pass to network calls: a well-behaved
scanner ends its own request in time and the abandoned thread is short-lived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, has_app_context

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call did not finish within its timeout."""


def call_with_deadline(func: Callable[..., T], timeout: float, *args: Any) -> T:
    """Return ``func(*args)``, or raise DeadlineExceeded after ``timeout`` seconds.

    The call gets an app context of its own (plugins may log through ``current_app`` or read
    the database), and whatever it raises is raised here.
    """
    app = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            if app is None:
                outcome["value"] = func(*args)
            else:
                with app.app_context():
                    outcome["value"] = func(*args)
        except BaseException as error:  # handed to the waiting caller
            outcome["error"] = error

    worker = threading.Thread(
        target=target, name=f"plugin-call-{getattr(func, '__name__', '')}", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DeadlineExceeded(f"no answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]

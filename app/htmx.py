"""What views need to speak htmx: detect it, answer with a fragment or a page, redirect."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, make_response, render_template, request


def is_htmx() -> bool:
    """True for an htmx request, but not for a history restore (which needs the whole page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def render_page_or_fragment(page: str, fragment: str, **context: Any) -> Response:
    """The fragment for htmx, the page (which includes the fragment) otherwise."""
    response = make_response(render_template(fragment if is_htmx() else page, **context))
    response.vary.add("HX-Request")
    return response


def redirect(url: str) -> Response:
    """A redirect htmx follows as a full navigation, or an ordinary 303 for a plain form post."""
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    response = make_response("", 303)
    response.headers["Location"] = url
    return response


def trigger(response: Response, event: str, detail: Any = None) -> Response:
    """Ask htmx to fire ``event`` on the page after this response (e.g. to refresh counters)."""
    existing = json.loads(response.headers.get("HX-Trigger", "{}") or "{}")
    existing[event] = detail
    response.headers["HX-Trigger"] = json.dumps(existing)
    return response

"""Error pages that match the site, and JSON errors for API clients."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Check the form and try again."),
    403: ("Not allowed", "Your role does not allow this. Ask an admin if you need access."),
    404: ("Not found", "There is nothing here. It may have been removed, or the link is wrong."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "What you sent is larger than this server accepts."),
    429: ("Too many requests", "Slow down a little, then try again."),
    500: ("Something went wrong", "The error has been logged. Try again in a moment."),
}


def wants_json() -> bool:
    """API paths and clients that prefer JSON get JSON errors; browsers get pages."""
    if request.path.startswith(("/api/", "/hooks/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, message: str | None = None, code: str | None = None):
    """Render the site's error page (or JSON error) for ``status``."""
    title, default_message = MESSAGES.get(status, (f"Error {status}", ""))
    message = message or default_message
    if wants_json():
        body = {
            "error": {
                "code": code or title.lower().replace(" ", "_"),
                "message": message,
                "field": None,
            }
        }
        return jsonify(body), status
    return render_template("errors/error.html", status=status, title=title, message=message), status


def init_errors(app: Flask) -> None:
    """Register handlers for HTTP errors, CSRF failures and unexpected exceptions."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return error_response(
            400,
            "This form expired or did not come from this site. Reload the page and try again.",
            code="csrf_failed",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        message = error.description if error.description != type(error).description else None
        response = error_response(error.code, message)
        if error.code == 405 and getattr(error, "valid_methods", None):
            body, status = response  # HTTP requires 405 to say which methods are allowed
            return body, status, {"Allow": ", ".join(error.valid_methods)}
        if error.code == 429 and getattr(error, "retry_after", None):
            body, status = response
            return body, status, {"Retry-After": str(error.retry_after)}
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError.code)

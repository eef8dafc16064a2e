"""Domain errors, and the one place that turns them into HTML pages and JSON responses."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException


class DomainError(Exception):
    """A rule of the domain refused an action; `status` is the HTTP status that says so."""

    status = 400

    def __init__(self, message: str, *, field_errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}


class NotFound(DomainError):
    status = 404

    def __init__(self, message: str = "") -> None:
        # One body for "missing" and "hidden", so an unpublished version cannot be told from none.
        super().__init__(message or "Page not found.")


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    status = 401


class Conflict(DomainError):
    status = 409


class ValidationFailed(DomainError):
    status = 422


class TooLarge(DomainError):
    status = 413


class Unavailable(DomainError):
    """Overloaded: the client should retry after `retry_after` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def wants_json() -> bool:
    """Tell whether the current request should be answered in JSON."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _respond(status: int, title: str, message: str, extra: dict[str, Any] | None = None) -> Response:
    if wants_json():
        body: dict[str, Any] = {"error": title, "message": message, "status": status}
        body.update(extra or {})
        response = jsonify(body)
    else:
        response = Response(render_template("error.html", status=status, title=title, message=message))
    response.status_code = status
    return response


def _http_texts() -> dict[int, tuple[str, str]]:
    return {
        400: (_("Bad request"), _("The request could not be understood.")),
        401: (_("Log in required"), _("Log in to do that.")),
        403: (_("Forbidden"), _("You are not allowed to do that.")),
        404: (_("Not found"), _("Page not found.")),
        405: (_("Method not allowed"), _("That action is not available at this address.")),
        415: (_("Unsupported media type"), _("Send the request body as JSON (Content-Type: application/json).")),
        409: (_("Conflict"), _("The request conflicts with the current state.")),
        413: (_("Too large"), _("The request is larger than the 2 MB limit. Shorten the text and try again.")),
        422: (_("Invalid input"), _("Some of the input is not valid.")),
        429: (_("Too many requests"), _("Too many attempts. Wait a minute and try again.")),
        500: (_("Server error"), _("Something went wrong on our side. Nothing you sent was half-saved.")),
        503: (_("Unavailable"), _("The service is busy. Try again shortly.")),
    }


def register_error_handlers(app: Flask) -> None:
    """Map domain errors and HTTP errors to pages or JSON, once for the whole app."""

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Response:
        title = _http_texts().get(error.status, (_("Error"), ""))[0]
        if isinstance(error, NotFound):
            return _respond(404, title, _http_texts()[404][1])
        extra = {"fields": error.field_errors} if error.field_errors else None
        response = _respond(error.status, title, error.message, extra)
        if isinstance(error, Unavailable):
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        title, message = _http_texts().get(status, (error.name, error.description or ""))
        if status == 400 and error.description and "CSRF" in error.description:
            message = _("The form expired or was sent from elsewhere. Reload the page and try again.")
        response = _respond(status, title, message)
        if status == 429:
            response.headers["Retry-After"] = "60"
        return response

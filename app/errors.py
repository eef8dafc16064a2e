"""Domain errors, and the one place that turns them into HTML pages and JSON responses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, has_request_context, jsonify, render_template, request
from flask_babel import LazyString, format_decimal
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

# A message: plain text, or a lazy translation that becomes text in the reader's language when used.
Text = str | LazyString


def _gettext_or_english(string: str, **variables: Any) -> str:
    # Outside a request (CLI, background threads, tests calling services directly) there is no reader and
    # no locale to choose: answer in English rather than let the locale selector fail without a request.
    if has_request_context():
        return _(string, **variables)
    return string % variables if variables else string


def lazy_gettext(string: str, **variables: Any) -> LazyString:
    """Like `flask_babel.lazy_gettext` (import it as `_l`, which `make messages` extracts): translated into
    the request's language each time it is turned into text, and English outside a request."""
    return LazyString(_gettext_or_english, string, **variables)


def lazy_number(number: int) -> LazyString:
    """A whole number with the reader's digit grouping (20,000 in English, 20 000 in Swedish), for a placeholder."""
    return LazyString(lambda: format_decimal(number) if has_request_context() else f"{number:,}")


def lazy_join(separator: str, parts: Iterable[Text]) -> LazyString:
    """Messages joined into one, each translated when the whole is turned into text."""
    items = list(parts)
    return LazyString(lambda: separator.join(str(part) for part in items))


class DomainError(Exception):
    """A rule of the domain refused an action; `status` is the HTTP status that says so.

    `message` and `field_errors` may be given as lazy translations; they are read back as plain `str` in the
    current reader's language, so they can go straight into JSON, flash messages, form errors and logs.
    """

    status = 400

    def __init__(self, message: Text, *, field_errors: Mapping[str, Text] | None = None) -> None:
        super().__init__(message)
        self._message = message
        self._field_errors = dict(field_errors or {})

    @property
    def message(self) -> str:
        return str(self._message)

    @property
    def field_errors(self) -> dict[str, str]:
        return {name: str(text) for name, text in self._field_errors.items()}

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(DomainError):
    status = 404

    def __init__(self, message: Text = "") -> None:
        # One body for "missing" and "hidden", so an unpublished version cannot be told from none.
        super().__init__(message or lazy_gettext("Page not found."))


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

    def __init__(self, message: Text, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def wants_json() -> bool:
    """Tell whether the current request should be answered in JSON."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _respond(status: int, title: str, message: Text, extra: dict[str, Any] | None = None) -> Response:
    message = str(message)  # plain text before it reaches JSON or the template
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

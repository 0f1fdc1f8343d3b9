"""Error answers: a page in the desk's layout and the reader's language for people, a short
JSON body for programs (the API, webhooks, the widget's calls, anything that asks for JSON).

Pages never show the exception, the request's path or anything else a customer controls.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ..extensions import db, login_manager

log = logging.getLogger(__name__)

# status: (the error a program reads, the page's title, what the person can do next)
PAGES = {
    400: ("bad request", _l("The request could not be processed"),
          _l("The page may be out of date. Please reload it and try again.")),
    403: ("forbidden", _l("You do not have access to this page"),
          _l("Ask an administrator if you need access.")),
    404: ("not found", _l("Page not found"),
          _l("The page may have been moved or deleted, or the address may be wrong.")),
    405: ("method not allowed", _l("This action is not available here"),
          _l("Please go back and use the buttons on the page.")),
    410: ("gone", _l("This link has expired"),
          _l("Links to files we send stay valid for a limited time. Please ask us to send the file again.")),
    413: ("payload too large", _l("The data sent is too large"),
          _l("Please send a smaller file or a shorter text.")),
    429: ("too many requests", _l("Too many requests"),
          _l("Please wait a moment and try again.")),
    500: ("internal error", _l("Something went wrong"),
          _l("An unexpected error occurred. Please try again later; if it keeps happening, "
             "tell your administrator.")),
    503: ("temporarily unavailable", _l("Temporarily unavailable"),
          _l("The helpdesk is temporarily unavailable. Please try again in a few moments.")),
}

# Any other HTTP error (416 on a file range, 415, 501, ...): our page, Werkzeug's short name for programs.
OTHER = (_l("The request could not be completed"), _l("Please go back and try again."))

_JSON_PATHS = ("/api/", "/webhooks/", "/widget")


def register_error_pages(app: Flask) -> None:
    for status in PAGES.keys() - {503}:
        app.register_error_handler(status, http_error)
    app.register_error_handler(HTTPException, http_error)  # every other status
    app.register_error_handler(OperationalError, database_unavailable)
    # a value no column can hold (an id of 20 digits in a form or a query string) is bad input
    app.register_error_handler(OverflowError, value_out_of_range)  # SQLite's driver
    app.register_error_handler(DataError, value_out_of_range)  # PostgreSQL's


def http_error(exc: HTTPException):
    """Our page instead of Werkzeug's English one. A 500 reaches here after Flask has logged
    the exception with its traceback (``app.log_exception``), so it is not logged twice."""
    if exc.response is not None:
        return exc  # a view built this answer itself (the login page's own 429, an abort(jsonify(...)))
    if exc.code == 500:
        db.session.rollback()  # a transaction the failed view left broken must not break the page
    # Werkzeug's headers minus its Content-Type: Allow on a 405, Retry-After where set.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    if exc.code not in PAGES:
        if exc.code >= 500:
            log.error("HTTP %s on %s %s", exc.code, request.method, request.path)
        return error_response(exc.code, headers, (exc.name.lower(), *OTHER))
    return error_response(exc.code, headers)


def database_unavailable(exc: OperationalError):
    """Database down: 503 so providers and integrations retry; nothing was committed."""
    db.session.rollback()
    log.error("database unavailable (%s %s): %s", request.method, request.path, exc.orig)
    return error_response(503, {"Retry-After": "10"})


def value_out_of_range(exc: Exception):
    db.session.rollback()
    log.warning("bad value in %s %s: %s", request.method, request.path, getattr(exc, "orig", exc))
    return error_response(400, {})


def wants_json() -> bool:
    return (request.path.startswith(_JSON_PATHS) or "/api/" in request.path
            or request.accept_mimetypes.best_match(("text/html", "application/json")) == "application/json")


def error_response(status: int, headers: dict[str, str], page: tuple | None = None):
    error, title, sentence = page or PAGES[status]
    if wants_json():
        return jsonify(error=error), status, headers
    _signed_in_agent_or_visitor()
    # Customers reach only /files/ (and surveys, which answer with their own pages): no desk link for them.
    for_customers = request.path.startswith("/files/")
    g.error_page = True  # the layout's language links then keep nothing of the request (_macros.html)
    return render_template("error.html", status=status, title=title, sentence=sentence,
                           for_customers=for_customers), status, headers


def _signed_in_agent_or_visitor() -> None:
    """The layout and the locale ask who is signed in, which reads the database; when that is
    what failed, the page is shown as to a logged-out visitor instead of failing again."""
    try:
        current_user._get_current_object()
    except SQLAlchemyError:
        db.session.rollback()
        login_manager._update_request_context_with_user()  # anonymous for the rest of this request

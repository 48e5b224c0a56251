"""Errors: JSON under ``/api`` (never HTML, never a traceback), an HTML page elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..model import EngineUnavailable, QueryError

log = logging.getLogger("search_service.web")


class BadRequest(ValueError):
    """A request parameter is wrong; the message names it."""


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """The one error shape: JSON ``{"error": {...}}`` for the API, a page for people."""
    request_id = g.get("request_id", "-")
    if _wants_json():
        body = jsonify(error={"code": code, "message": message, "request_id": request_id})
        return body, status
    html = render_template("error.html", status=status, message=message, request_id=request_id)
    return Response(html, status=status, mimetype="text/html"), status


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(QueryError)
    @app.errorhandler(BadRequest)
    def bad_request(exc: ValueError):  # type: ignore[no-untyped-def]
        return error_response(400, "bad_request", str(exc))

    @app.errorhandler(EngineUnavailable)
    def unavailable(exc: EngineUnavailable):  # type: ignore[no-untyped-def]
        response, status = error_response(503, "unavailable", str(exc))
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 429:
            # Flask-Limiter describes the limit ("5 per 1 minute") and adds
            # Retry-After, counted to the end of its window, after this handler.
            message = f"too many requests: the limit is {message}; wait for the seconds in Retry-After"
        response, status = error_response(exc.code or 500, code, message)
        valid_methods = getattr(exc, "valid_methods", None)  # werkzeug's MethodNotAllowed
        if exc.code == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error id=%s", g.get("request_id", "-"))
        return error_response(500, "internal_error", InternalServerError.description)

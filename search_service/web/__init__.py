"""The web layer: ``create_app`` builds the Flask app; :mod:`.server` runs it under waitress.

The app only translates HTTP to calls of an :class:`~search_service.engine.Engine` and back.
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request
from flask_limiter import Limiter

from ..config import Config
from ..engine import Engine, open_engine
from . import api, errors, pages
from .ratelimit import SharedCounters, client_key

log = logging.getLogger("search_service.web")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(
    config: Config | None = None, engine: Engine | None = None, rate_counters: SharedCounters | None = None
) -> Flask:
    """The Flask app for ``config`` (default: from the environment) over ``engine``.

    ``engine`` defaults to :func:`~search_service.engine.open_engine` of
    ``config`` (the index must exist).  ``rate_counters``, made before the
    server forks its workers, is how they share one rate-limit budget per
    client; by default the app has its own.
    """
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["SEARCH_SERVICE"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["search_engine"] = engine or open_engine(config)
    # Registered before the limiter: the request id exists when it refuses a
    # request, and _finish_request (after_request hooks run in reverse) sees
    # the limiter's headers.
    app.before_request(_start_request)
    app.after_request(_finish_request)
    limiter = Limiter(
        client_key,
        app=app,
        storage_uri="shared://",
        storage_options={"counters": rate_counters or SharedCounters()},  # type: ignore[dict-item]
        headers_enabled=True,
        default_limits=[],
    )
    if config.rate_limit:
        # Shared: one budget per client for the API and the pages together, not
        # one per endpoint (the search page runs the same searches as the API).
        limit = limiter.shared_limit(config.rate_limit, scope="search")
        limit(api.bp)
        limit(pages.bp)
        # Health checks come from one load balancer address, often; a 429 there takes the service out.
        limiter.request_filter(lambda: request.endpoint == "api.healthz")
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    errors.register(app)
    return app


def _start_request() -> None:
    g.request_id = request.headers.get("X-Request-ID", "")[:64].strip() or uuid.uuid4().hex[:16]
    g.started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "-")
    if response.status_code != 429:
        # Flask-Limiter puts its window's reset on every response; on anything
        # but a refusal it reads as "retry this", which clients act on.
        response.headers.pop("Retry-After", None)
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000.0
    log.info(
        "%s %s %s %d %.1fms id=%s",
        request.remote_addr,
        request.method,
        request.full_path.rstrip("?"),
        response.status_code,
        elapsed_ms,
        g.get("request_id", "-"),
    )
    return response

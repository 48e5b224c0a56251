"""The web layer: ``create_app`` builds the Flask app; ``serve_app`` runs it under waitress.

The app only translates HTTP to :mod:`search_service.search` and back.
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from ..config import Config
from ..search import SearchEngine
from . import api, errors, pages

log = logging.getLogger("search_service.web")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(config: Config | None = None) -> Flask:
    """The Flask app for ``config`` (default: from the environment); the index must exist."""
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["SEARCH_SERVICE"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.json.sort_keys = False
    app.extensions["search_engine"] = SearchEngine(config.index_dir, config.limits)
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri="memory://",
        headers_enabled=True,
        default_limits=[],
    )
    if config.rate_limit:
        limiter.limit(config.rate_limit)(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    errors.register(app)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    return app


def _start_request() -> None:
    g.request_id = request.headers.get("X-Request-ID", "")[:64].strip() or uuid.uuid4().hex[:16]
    g.started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "-")
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


def serve_app(app: Flask, host: str = "127.0.0.1", port: int = 8080, threads: int = 8) -> None:
    """Run ``app`` under waitress with production settings and print where it listens.

    Searching is CPU-bound Python, so more threads than a few per core only
    queue; the channel timeout drops idle or stalled clients; the request
    body limit matches the app's; waitress's per-request "task queue depth"
    warnings under load are silenced (the access log already shows load).
    """
    from waitress import create_server

    config: Config = app.config["SEARCH_SERVICE"]
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        channel_timeout=30,
        connection_limit=200,
        max_request_body_size=config.max_request_bytes,
        ident="search_service",
        clear_untrusted_proxy_headers=True,
    )
    print(f"search_service: serving {config.index_dir} on http://{server.effective_host}:{server.effective_port}/", flush=True)
    server.run()

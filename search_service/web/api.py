"""The JSON API: HTTP in, :class:`~search_service.engine.Engine` calls, JSON out."""

from __future__ import annotations

import hmac
import json
from datetime import date

from flask import Blueprint, Response, abort, current_app, jsonify, request

from ..config import Config
from ..engine import Engine
from ..model import IndexBusyError, SearchRequest
from ..stories import ID_PATTERN, Story, StoryError, parse_json_lines, story_from_mapping
from .errors import BadRequest, error_response
from .openapi import openapi_document

bp = Blueprint("api", __name__)


def engine() -> Engine:
    return current_app.extensions["search_engine"]


def config() -> Config:
    return current_app.config["SEARCH_SERVICE"]


# ---------------------------------------------------------------- parameters


def int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw[:40]!r}") from None


def date_arg(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date as YYYY-MM-DD, not {raw[:40]!r}") from None


def switch_arg(name: str) -> bool:
    """A switch that is on unless ``off`` (or ``false``, ``0``, ``no``): ``collapse``, ``spell``."""
    return request.args.get(name, "on").strip().lower() not in ("off", "false", "0", "no")


def search_request() -> SearchRequest:
    """The search parameters of this request (shared by the API and the pages)."""
    return SearchRequest(
        q=request.args.get("q", ""),
        page=int_arg("page", 1),
        per_page=int_arg("per_page", 10),
        sort=request.args.get("sort", "relevance") or "relevance",
        date_from=date_arg("from"),
        date_to=date_arg("to"),
        collapse=switch_arg("collapse"),
        spell=switch_arg("spell"),
    )


def story_id(raw: str) -> str:
    """A story id from a URL; anything that could name a path is refused."""
    if not ID_PATTERN.fullmatch(raw):
        raise BadRequest("story ids are letters, digits and . _ : - (up to 128 characters)")
    return raw


# ---------------------------------------------------------------- reading


@bp.get("/healthz")
def healthz() -> Response:
    stats = engine().stats()
    return jsonify(
        status="ok",
        stories=stats.stories,
        first=stats.first.isoformat() if stats.first else None,
        last=stats.last.isoformat() if stats.last else None,
        writes_enabled=bool(config().token),
    )


@bp.get("/api/search")
def search() -> Response:
    return jsonify(engine().search(search_request()).to_dict())


@bp.get("/api/stories/<raw_id>")
def story(raw_id: str) -> Response:
    found = engine().story(story_id(raw_id))
    if found is None:
        abort(404, description=f"no story with id {raw_id!r}")
    return jsonify(found.to_dict())


@bp.get("/api/stories/<raw_id>/related")
def related(raw_id: str) -> Response:
    hits = engine().related(story_id(raw_id))
    if hits is None:
        abort(404, description=f"no story with id {raw_id!r}")
    return jsonify(hits=[h.to_dict() for h in hits])


@bp.get("/api/suggest")
def suggest() -> Response:
    q = request.args.get("q", "")
    return jsonify(query=q, suggestions=engine().suggest(q))


@bp.get("/api/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(config().limits, config().max_request_bytes))


# ---------------------------------------------------------------- writing


def _authorize() -> None:
    """403 when writes are off (no token configured), 401 for a wrong or missing token."""
    token = config().token
    if not token:
        abort(403, description="the write API is off: set SEARCH_SERVICE_TOKEN to turn it on")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        abort(401, description="a valid 'Authorization: Bearer <token>' header is required")


def _stories_from_body() -> list[Story]:
    """One JSON object (which may span lines), or NDJSON (one object per line); errors name the line and field."""
    text = request.get_data(cache=False, as_text=True)
    if not text.strip():
        raise BadRequest("the body is empty: send a JSON story object or NDJSON lines")
    try:
        single = json.loads(text)
    except ValueError:
        single = None
    if isinstance(single, dict):
        try:
            return [story_from_mapping(single, source="api")]
        except StoryError as exc:
            raise BadRequest(f"body: {exc}") from None
    stories = []
    for number, story, reason in parse_json_lines(text, source="api"):
        if story is None:
            raise BadRequest(f"line {number}: {reason}")
        stories.append(story)
    return stories


@bp.post("/api/stories")
def add() -> tuple[Response, int]:
    _authorize()
    stories = _stories_from_body()
    try:
        summary = engine().upsert(stories)
    except IndexBusyError as exc:
        return error_response(503, "index_busy", str(exc))
    ids = [s.id for s in stories]
    return jsonify(added=summary.added, updated=summary.updated, ids=ids), 201 if summary.added else 200


@bp.delete("/api/stories/<raw_id>")
def delete(raw_id: str) -> Response | tuple[Response, int]:
    _authorize()
    try:
        deleted = engine().delete(story_id(raw_id))
    except IndexBusyError as exc:
        return error_response(503, "index_busy", str(exc))
    if not deleted:
        abort(404, description=f"no story with id {raw_id!r}")
    return jsonify(deleted=raw_id)

"""The HTML pages for people: search box, results, story pages, OpenSearch.

The pages only translate HTTP to :class:`~search_service.engine.Engine`
calls (through the helpers in :mod:`.api`) and back; no search logic lives
here.  Templates autoescape everything.  The one exception is highlighting
(``Hit.highlights`` and :func:`~search_service.highlight.mark_all`), which
escapes every character of story text itself and adds only ``<mark>``.

Everything works without JavaScript; ``static/app.js`` only adds
autocomplete.  The search box can be put on another site as a plain form::

    <form action="http://HOST:8080/search" method="get"><input name="q"></form>
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, jsonify, render_template, request, url_for

from ..highlight import mark_all
from ..model import QueryError, SearchResult
from ..syntax import has_words
from .api import engine, search_request, story_id
from .errors import BadRequest

bp = Blueprint("pages", __name__)

#: Numbered page links shown on either side of the current page.
PAGE_WINDOW = 2
#: Month facets are listed when the matches span at most this many months; else pick a year first.
MAX_MONTH_FACETS = 24
#: Names of the sorts, in the order the switch shows them.
SORT_LABELS = {"relevance": "Relevance", "recent": "Relevant and recent", "newest": "Newest", "oldest": "Oldest"}
#: Marks "leave this parameter as the current request has it" in :func:`search_url`.
KEEP: Any = object()


# ---------------------------------------------------------------- helpers for templates


@bp.app_template_global()
def search_url(
    *,
    q: str | None = KEEP,
    page: int | None = None,
    sort: str | None = KEEP,
    date_from: str | date | None = KEEP,
    date_to: str | date | None = KEEP,
    spell: str | None = KEEP,
) -> str:
    """The current search's URL with some parameters changed (``None`` drops one).

    Any change other than ``page`` starts again at page 1, since the
    page number of a different result list means nothing.
    """
    args = request.args
    wanted = {
        "q": args.get("q") if q is KEEP else q,
        "sort": args.get("sort") if sort is KEEP else sort,
        "from": args.get("from") if date_from is KEEP else date_from,
        "to": args.get("to") if date_to is KEEP else date_to,
        "per_page": args.get("per_page"),
        "collapse": args.get("collapse"),
        "spell": args.get("spell") if spell is KEEP else spell,
        "page": page,
    }
    params: dict[str, Any] = {
        name: str(value)
        for name, value in wanted.items()
        if value not in (None, "") and (name, str(value)) not in (("page", "1"), ("sort", "relevance"))
    }
    return url_for("pages.search", **params)


@bp.app_context_processor
def query_limit() -> dict[str, int]:
    """The longest query the engine takes: the search box accepts as much, nothing is cut."""
    return {"max_query_chars": engine().limits.max_query_chars}


@bp.app_template_filter("day")
def day(value: datetime | str | None) -> str:
    """A date as people read it: ``21 July 2022``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value.day} {value:%B %Y}" if value else "undated"


@dataclass(frozen=True)
class Link:
    """One link of a list (pages, facets): what it says, where it goes, whether it is the current one."""

    label: str
    url: str
    current: bool = False
    count: int | None = None


@dataclass(frozen=True)
class Pager:
    """Previous/next and a few numbered pages; ``None`` in ``pages`` is a gap ("…")."""

    previous: str | None
    next: str | None
    pages: list[Link | None]
    last: int


def pager(page: int, per_page: int, total: int, max_depth: int) -> Pager:
    """Page links for ``total`` matches, never past the deepest page the engine will serve."""
    last = max(1, min(-(-total // per_page), max_depth // per_page))
    shown = {1, last} | set(range(max(1, page - PAGE_WINDOW), min(last, page + PAGE_WINDOW) + 1))
    pages: list[Link | None] = []
    before = 0
    for n in sorted(shown):
        if n > before + 1 and pages:
            pages.append(None)
        pages.append(Link(str(n), search_url(page=n), current=n == page))
        before = n
    return Pager(
        previous=search_url(page=min(page - 1, last)) if page > 1 else None,
        next=search_url(page=page + 1) if page < last else None,
        pages=pages if last > 1 else [],
        last=last,
    )


@dataclass(frozen=True)
class Facets:
    """Year and month filter links; months are left out (``months_hidden``) when there are too many."""

    years: list[Link]
    months: list[Link]
    months_hidden: bool


def facet_links(result: SearchResult, date_from: date | None, date_to: date | None) -> Facets:
    """Links that set ``from``/``to`` to the bounds of a year or month of the matches."""

    def link(label: str, count: int, start: date, end: date) -> Link:
        current = (date_from, date_to) == (start, end)
        return Link(label, search_url(date_from=start.isoformat(), date_to=end.isoformat()), current, count)

    years = [
        link(year, count, date(int(year), 1, 1), date(int(year), 12, 31))
        for year, count in result.facets.get("year", {}).items()
    ]
    months = []
    month_counts = result.facets.get("month", {})
    if len(month_counts) <= MAX_MONTH_FACETS:
        for key, count in month_counts.items():
            y, m = (int(part) for part in key.split("-"))
            first = date(y, m, 1)
            months.append(link(f"{first:%b %Y}", count, first, date(y, m, calendar.monthrange(y, m)[1])))
    return Facets(years, months, months_hidden=len(month_counts) > MAX_MONTH_FACETS)


def _web_url(url: str | None) -> str | None:
    """The story's original address if it is an http(s) one; anything else (``javascript:``…) is not linked."""
    return url if url and urlsplit(url).scheme in ("http", "https") else None


# ---------------------------------------------------------------- pages


@bp.get("/")
def home() -> str:
    """The search box, a guide to the query syntax, and what the archive holds."""
    return render_template("home.html", stats=engine().stats())


@bp.get("/search")
def search() -> str | tuple[str, int]:
    """Results; a query with no words shows the home page, one past a limit a 400 page that keeps it."""
    q = request.args.get("q", "")
    if not has_words(q):
        return home()
    try:
        req = search_request()
        result = engine().search(req)
    except (QueryError, BadRequest) as exc:
        return render_template("search.html", q=q, error=str(exc)), 400
    return render_template(
        "search.html",
        q=q,
        req=req,
        result=result,
        pager=pager(req.page, req.per_page, result.total, engine().limits.max_depth),
        facets=facet_links(result, req.date_from, req.date_to),
        sorts=SORT_LABELS,
        first_rank=(req.page - 1) * req.per_page + 1,
    )


@bp.get("/stories/<path:raw_id>")
def story(raw_id: str) -> str:
    """The whole story; arriving from results (``?q=``), the query's words are marked."""
    found = engine().story(story_id(raw_id))
    if found is None:
        abort(404, description=f"There is no story with the id {raw_id!r}.")
    q = request.args.get("q", "")
    terms: dict[str, frozenset[str]] = {}
    if q.strip():
        try:
            terms = engine().highlight_terms(q)
        except QueryError:
            pass  # a hand-edited link: show the story unmarked rather than an error
    paragraphs = [p.strip() for p in found.body.split("\n\n") if p.strip()]
    return render_template(
        "story.html",
        q=q,
        story=found,
        headline=mark_all(found.headline, terms.get("headline", frozenset())),
        paragraphs=[mark_all(p, terms.get("body", frozenset())) for p in paragraphs],
        source=found.source,
        web_url=_web_url(found.url),
        related=engine().related(found.id) or [],
    )


@bp.get("/opensearch.xml")
def opensearch() -> Response:
    """The OpenSearch description, so browsers can add this service as a search engine."""
    xml = render_template("opensearch.xml")
    return Response(xml, mimetype="application/opensearchdescription+xml")


@bp.get("/opensearch/suggest")
def opensearch_suggest() -> Response:
    """Suggestions in the OpenSearch format browsers read: ``[query, [completions]]``."""
    q = request.args.get("q", "")
    response = jsonify([q, engine().suggest(q)])
    response.mimetype = "application/x-suggestions+json"
    return response

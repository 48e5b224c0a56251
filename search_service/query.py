"""Turning what a person typed into a bounded Whoosh query.

Free text is an OR of the words with a bonus for matching more of them
(:func:`_coordinated`): stories with every word rank first, yet a long or
partly matching question still finds something.  The syntax on top:
``AND``/``OR``/``NOT``, ``-word``, ``+word``, ``"phrases"``, ``headline:``,
``body:``, ``published:[2021-01-01 TO 2021-06-30]`` and trailing wildcards.

Every query is checked against :class:`~search_service.config.Limits`
before it runs; anything too costly or malformed raises :class:`QueryError`
with a message meant for the person who typed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from whoosh import query as wq
from whoosh.qparser import (
    FieldsPlugin,
    MultifieldParser,
    OrGroup,
    PlusMinusPlugin,
    SingleQuotePlugin,
    WildcardPlugin,
)
from whoosh.reading import IndexReader
from whoosh.searching import Searcher

from .config import Limits
from .schema import TEXT_FIELDS

#: Headline matches count this many times a body match.  BM25's per-field
#: length normalisation already favours short headlines; on Cranfield/CISI
#: (titles, not headlines) 1.0 ranks best and 2.0 costs ~0.02 nDCG@10.
HEADLINE_BOOST = 1.5
#: Free text: a story matching m of n words scores (1 + bonus * (m-1)/(n-1))
#: times its BM25 sum (see ranking.py).
COORDINATION_BONUS = 0.5
MIN_PREFIX = 2


class QueryError(ValueError):
    """The query can't be run as typed; the message says what to change."""


@dataclass(frozen=True)
class ParsedQuery:
    """A checked query and the terms to highlight per field."""

    text: str
    query: wq.Query
    highlight_terms: dict[str, frozenset[str]]


def make_parser(schema) -> MultifieldParser:  # type: ignore[no-untyped-def]
    """The parser used for every search; one per thread is cheap (it's rebuilt per call site)."""
    parser = MultifieldParser(
        list(TEXT_FIELDS),
        schema,
        fieldboosts={"headline": HEADLINE_BOOST},
        group=OrGroup,
    )
    # 'single quotes' would make the quoted words one literal term: pasted
    # prose uses them as quotation marks (and apostrophes), so they are text.
    parser.remove_plugin_class(SingleQuotePlugin)
    parser.remove_plugin_class(FieldsPlugin)
    parser.add_plugin(FieldsPlugin(expr=r"(?P<text>headline|body|published):"))
    parser.remove_plugin_class(WildcardPlugin)
    parser.add_plugin(_TrailingWildcardPlugin())
    parser.add_plugin(PlusMinusPlugin(plusexpr=r"(?<![^\s(])\+(?=\S)", minusexpr=r"(?<![^\s(])-(?=\S)"))
    return parser


class _TrailingWildcardPlugin(WildcardPlugin):
    """``*`` only: a question mark ends a question, it is not a wildcard."""

    expr = r"(?P<text>[^ \t\r\n*]*\*[^ \t\r\n]*)"


def parse(text: str, parser: MultifieldParser, searcher: Searcher, limits: Limits) -> ParsedQuery:
    """Parse ``text``, enforce ``limits`` and collect highlight terms; raise QueryError."""
    text = text.strip()
    if not text:
        raise QueryError("the query is empty: type some words to search for")
    if len(text) > limits.max_query_chars:
        raise QueryError(f"the query is {len(text)} characters long; the limit is {limits.max_query_chars}")
    try:
        q = parser.parse(text)
    except Exception as exc:  # Whoosh raises assorted errors on odd syntax
        raise QueryError(f"could not understand the query: {exc}") from None
    _check_errors(q)
    reader = searcher.reader()
    terms: dict[str, set[str]] = {name: set() for name in TEXT_FIELDS}
    seen: set[str] = set()
    _collect(q, reader, limits, terms, seen, negated=False)
    if len(seen) > limits.max_terms:
        raise QueryError(f"the query has {len(seen)} different terms; the limit is {limits.max_terms}")
    if isinstance(q, wq.Not) or (not seen and _only_exclusions(text)):
        raise QueryError("'-word' and NOT only leave stories out: add a word to search for, as in 'drought -coffee'")
    if not seen and not _has_range(q):
        raise QueryError("the query has only common words (like 'the' or 'and'); add a more specific word")
    return ParsedQuery(text, _shaped(q), {f: frozenset(t) for f, t in terms.items()})


def _shaped(q: wq.Query) -> wq.Query:
    """The query to run: NOTs exclude, date ranges filter, words are coordinated.

    Under an OR group Whoosh parses ``coffee NOT brazil`` as ``coffee OR (NOT
    brazil)``, which matches every story without "brazil"; here a NOT beside
    other words excludes from all of them, as ``-brazil`` does.
    """
    if isinstance(q, wq.Or):
        nots = [c.query for c in q.subqueries if isinstance(c, wq.Not)]
        rest = [c for c in q.subqueries if not isinstance(c, wq.Not)]
        if nots and rest:
            words = rest[0] if len(rest) == 1 else q.__class__(rest, boost=q.boost)
            return wq.AndNot(_shaped(words), nots[0] if len(nots) == 1 else wq.Or(nots))
    return _coordinated(_ranges_as_filters(q))


def _coordinated(q: wq.Query) -> wq.Query:
    """Group a free-text OR by word, with the coordination bonus across words.

    Whoosh flattens ``oil prices`` over two fields into one OR of four terms
    and drops the group's scale; regrouped, a story matching both words in
    any field gets the bonus, one matching "oil" in two fields does not.
    """
    if not isinstance(q, wq.Or) or q.scale:
        return q
    groups: dict[object, list[wq.Query]] = {}
    for child in q.subqueries:
        key = child.text if isinstance(child, wq.Term) else id(child)
        groups.setdefault(key, []).append(child)
    if len(groups) < 2:
        return q
    words = [g[0] if len(g) == 1 else wq.Or(g) for g in groups.values()]
    return wq.Or(words, boost=q.boost, scale=COORDINATION_BONUS)


def _ranges_as_filters(q: wq.Query) -> wq.Query:
    """``published:[..] words``: the date range must hold, it is not one more optional word."""
    if isinstance(q, wq.Or):
        ranges = [c for c in q.subqueries if isinstance(c, wq.NumericRange)]
        rest = [c for c in q.subqueries if not isinstance(c, wq.NumericRange)]
        if ranges and rest:
            words = rest[0] if len(rest) == 1 else q.__class__(rest, boost=q.boost, scale=getattr(q, "scale", None))
            return wq.And([words, *ranges])
    return q


def _only_exclusions(text: str) -> bool:
    words = text.split()
    return any(w.startswith("-") or w == "NOT" for w in words)


def _check_errors(q: wq.Query) -> None:
    error = getattr(q, "error", None)
    if error:
        raise QueryError(f"could not understand part of the query: {error}")
    for child in q.children():
        _check_errors(child)


def _has_range(q: wq.Query) -> bool:
    return isinstance(q, wq.NumericRange) or any(_has_range(c) for c in q.children())


def _collect(
    q: wq.Query,
    reader: IndexReader,
    limits: Limits,
    terms: dict[str, set[str]],
    seen: set[str],
    negated: bool,
) -> None:
    """Note the query's distinct terms in ``seen``, bound its expansions, gather positive text terms."""
    if isinstance(q, wq.Not):
        _collect(q.query, reader, limits, terms, seen, negated=True)
    elif isinstance(q, wq.MultiTerm) and q.field() in TEXT_FIELDS:
        seen.add(str(q))
        _expand(q, reader, limits, terms[q.field()] if not negated else set())
    elif not q.is_leaf():
        for child in q.children():
            _collect(child, reader, limits, terms, seen, negated)
    elif q.field() in TEXT_FIELDS:
        for _, text in q.iter_all_terms():
            word = text if isinstance(text, str) else text.decode("utf-8")
            seen.add(word)
            if not negated:
                terms[q.field()].add(word)


def _expand(q: wq.MultiTerm, reader: IndexReader, limits: Limits, into: set[str]) -> None:
    """Check a wildcard or range over words: trailing ``*`` only, bounded expansion."""
    if isinstance(q, (wq.Wildcard, wq.Prefix)):
        text = q.text
        star = text.find("*")
        if star != -1 and star != len(text) - 1:
            raise QueryError(f"'{text}': only a trailing wildcard is supported, as in 'econom*'")
        if len(text.rstrip("*")) < MIN_PREFIX:
            raise QueryError(f"'{text}': a wildcard needs at least {MIN_PREFIX} letters before the '*'")
    expanded = []
    for btext in q._btexts(reader):
        expanded.append(btext.decode("utf-8"))
        if len(expanded) > limits.max_expansions:
            raise QueryError(
                f"'{q}' matches more than {limits.max_expansions} different words; make it more specific"
            )
    into.update(expanded)

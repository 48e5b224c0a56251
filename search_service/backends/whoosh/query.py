"""Turning what a person typed into a bounded Whoosh query.

Free text is an OR of the words.  Each word (or phrase) is searched in
every text field and scored as one BM25F term (:class:`Word`, evaluated in
evaluation.py); a word typed twice counts twice.  Stories get a bonus for
matching more of the words (:func:`_coordinated`), so for keywords those
with every word rank first; for a long question, which no story matches
whole, the bonus is small and it still finds something.  The syntax on top:
``AND``/``OR``/``NOT``, ``-word``, ``+word``, ``"phrases"``, ``headline:``,
``body:``, ``published:[2021-01-01 TO 2021-06-30]``, trailing wildcards and
a bare ``*`` for every story.

Malformed syntax is repaired into words first (:mod:`search_service.syntax`),
with a notice; common words are left out of free text beside rarer words.
Every query is checked against :class:`~search_service.config.Limits`
before it runs; only a query past a limit raises :class:`QueryError`, with
a message meant for the person who typed it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
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

from ...config import Limits
from ...highlight import distinctive
from ...model import QueryError
from ...syntax import Repaired, as_phrase, repair, words_only
from .common import without_common_words
from .internals import expansions
from .schema import TEXT_FIELDS

#: BM25F field weights: a headline word counts as this many body words (in
#: term frequency and in length).  From 2 to 4, Cranfield and CISI (titles,
#: not headlines) rank alike (nDCG@10 within 0.006); 3 is the middle.
FIELD_WEIGHTS = {"headline": 3.0, "body": 1.0}
#: Free text: a story matching m of the n words scores (1 + bonus *
#: (m-1)/(n-1)) times its BM25F sum.  Up to KEYWORD_WORDS words (keywords)
#: the bonus is whole; past that it shrinks as (KEYWORD_WORDS/n)**2 (0.125
#: for 8 words, 0.02 for 20): a long question or pasted paragraph, which no
#: story has every word of, is ranked mostly by BM25F (the whole bonus there
#: cost 0.006 nDCG@10 on Cranfield and 0.004 on CISI).
KEYWORD_WORDS = 4
COORDINATION_BONUS = 0.5


class Word(wq.Or):
    """One word or phrase searched in several fields, ranked as a single BM25F term.

    The children are the same term or phrase in different fields, each
    boosted by its field's weight; the node's own boost is the query's
    weight for the word (repeats, ``^`` boosts).
    """


@dataclass(frozen=True)
class ParsedQuery:
    """A checked query and the terms to highlight per field."""

    text: str
    query: wq.Query
    highlight_terms: dict[str, frozenset[str]]
    notice: str | None = None


def make_parser(schema) -> MultifieldParser:  # type: ignore[no-untyped-def]
    """The parser used for every search; one per thread is cheap (it's rebuilt per call site)."""
    parser = MultifieldParser(
        list(TEXT_FIELDS),
        schema,
        fieldboosts=FIELD_WEIGHTS,
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
    """Parse ``text`` (repairing malformed syntax), enforce ``limits``, collect highlight terms.

    Only a limit raises :class:`QueryError`; anything else a person types
    is searched, with a notice when it was not taken as written.
    """
    text = text.strip()
    if len(text) > limits.max_query_chars:
        raise QueryError(f"the query is {len(text)} characters long; the limit is {limits.max_query_chars}")
    repaired = repair(text)
    q = _parsed(repaired.text, parser)
    if q is None:
        repaired = Repaired(words_only(repaired.text), repaired.problems).also("syntax that could not be read")
        q = _parsed(repaired.text, parser) or wq.NullQuery
    q = _common_words(q, repaired.text, parser)
    reader = searcher.reader()
    terms: dict[str, set[str]] = {name: set() for name in TEXT_FIELDS}
    seen: set[str] = set()
    _collect(q, reader, limits, terms, seen, negated=False)
    if len(seen) > limits.max_terms:
        raise QueryError(f"the query has {len(seen)} different words; the limit is {limits.max_terms}")
    if not _has_positive(q):
        notice = EXCLUSIONS_ONLY.format(text=text) if _excludes(repaired.text) else repaired.notice or NOTHING_TO_SEARCH
        return ParsedQuery(text, wq.NullQuery, {}, notice)
    marked = {f: distinctive(t, _stories_with(reader), reader.doc_count()) for f, t in terms.items()}
    return ParsedQuery(text, _shaped(q), marked, repaired.notice)


#: The notices of queries that search for nothing (they find no stories; they are not errors).
EXCLUSIONS_ONLY = (
    "'-word' and NOT only leave stories out: add a word to search for, as in 'drought -coffee', "
    "or put * first for every story without them, as in '* {text}'"
)
NOTHING_TO_SEARCH = 'There was nothing to search for: type a word, a "phrase", or * for every story'


def _parsed(text: str, parser: MultifieldParser) -> wq.Query | None:
    """Whoosh's reading of ``text``, with repeats weighed and ``*`` made explicit; None if it can't read it."""
    try:
        q = _repeats_weighed(_stars(parser.parse(text, normalize=False))).normalize()
    except Exception:  # Whoosh raises assorted errors on syntax it can't read
        return None
    return None if _has_errors(q) or _has_loose_date(q) else q


def _has_loose_date(q: wq.Query) -> bool:
    """A ``published:`` word or phrase, not a range (``0published:"0000"``): no date Whoosh could compare."""
    if isinstance(q, (wq.Term, wq.Phrase)) and q.fieldname == "published":
        return True
    return any(_has_loose_date(child) for child in q.children())


def _common_words(q: wq.Query, text: str, parser: MultifieldParser) -> wq.Query:
    """Common words left out beside rarer words (:func:`.common.without_common_words`); free text of
    only common words searched as a phrase: only in order do they mean something ("The Who",
    "to be or not to be")."""
    rarer = without_common_words(q)
    if rarer is not None:
        return rarer
    phrase = as_phrase(text)
    return (_parsed(phrase, parser) if phrase else None) or q


def _has_positive(q: wq.Query) -> bool:
    """Whether ``q`` matches anything by itself (not only by leaving stories out)."""
    if q is wq.NullQuery or isinstance(q, wq.Not):
        return False
    if isinstance(q, wq.AndNot):
        return _has_positive(q.a)
    return q.is_leaf() or any(_has_positive(c) for c in q.children())


def _excludes(text: str) -> bool:
    return any(w.startswith("-") or w == "NOT" for w in text.split())


def _stories_with(reader: IndexReader) -> Callable[[str], int]:
    """Stories with a term in any text field, as near as one lookup per field gives (the largest)."""
    return lambda term: max(reader.doc_frequency(f, term) for f in TEXT_FIELDS)


def _repeats_weighed(q: wq.Query) -> wq.Query:
    """A word (or phrase) given n times among alternatives counts n times.

    This is BM25's query term frequency, as Lucene and bm25s apply it: a
    pasted paragraph repeats the words it is about.  Whoosh's normalisation
    would drop the repeats, so they become boosts first.
    """
    if not isinstance(q, wq.Or):
        return q
    counts = Counter(_repeats_weighed(child).normalize() for child in q.subqueries)
    children = [child.with_boost(child.boost * n) for child, n in counts.items()]
    return q.__class__(children, boost=q.boost, scale=getattr(q, "scale", None))


class EveryStory(wq.Every):
    """Every story: what a bare ``*`` means.

    Fielded only because Whoosh's normalisation turns any AND or OR holding
    an unfielded ``Every`` into ``Every`` (``oil AND *`` would be every story).
    """

    def __init__(self, boost: float = 1.0) -> None:
        super().__init__("headline", boost=boost)


def _stars(q: wq.Query) -> wq.Query:
    """A bare ``*`` is every story (:class:`EveryStory`).

    Alone, or with only exclusions (``*``, ``* -coffee``), it lists the
    archive, to sort by date, filter and count by month.  Beside words it
    would only add every other story to the total, so it is dropped there
    (Whoosh's normalisation would instead turn ``oil * gas`` into every story).
    """
    if _is_star(q):
        return EveryStory()
    if isinstance(q, wq.Or):
        children = [_stars(c) for c in q.subqueries]
        if any(not isinstance(c, (EveryStory, wq.Not)) for c in children):
            children = [c for c in children if not isinstance(c, EveryStory)]
        return q.__class__(children, boost=q.boost, scale=getattr(q, "scale", None))
    return q.apply(_stars)


def _is_star(q: wq.Query) -> bool:
    """``*`` as parsed: a ``*`` wildcard in one field, or an OR of them over the fields."""
    if isinstance(q, wq.Wildcard):
        return q.text == "*"
    return isinstance(q, wq.Or) and bool(q.subqueries) and all(_is_star(c) for c in q.subqueries)


def _shaped(q: wq.Query) -> wq.Query:
    """The query to run: NOTs exclude, date ranges filter, words are coordinated.

    Under an OR group Whoosh parses ``coffee NOT brazil`` as ``coffee OR (NOT
    brazil)``, which matches every story without "brazil"; here a NOT beside
    other words excludes from all of them, as ``-brazil`` does, at any depth
    (``gas -opec crude OR NOT *`` has such an OR inside the ``-opec``).
    """
    if isinstance(q, wq.Or):
        nots = [c.query for c in q.subqueries if isinstance(c, wq.Not)]
        rest = [c for c in q.subqueries if not isinstance(c, wq.Not)]
        if nots and rest:
            words = rest[0] if len(rest) == 1 else q.__class__(rest, boost=q.boost)
            return wq.AndNot(_shaped(words), _shaped(nots[0] if len(nots) == 1 else wq.Or(nots)))
    elif not isinstance(q, Word):
        q = q.apply(_shaped)
    return _coordinated(_ranges_as_filters(q))


def _coordinated(q: wq.Query) -> wq.Query:
    """Group free text by word into :class:`Word` nodes; coordinate short queries.

    Whoosh flattens ``oil prices`` over two fields into one OR of four terms;
    regrouped, each word is one BM25F term, and the bonus counts words
    matched, not fields.
    """
    if isinstance(q, wq.Or) and not isinstance(q, Word) and not q.scale:
        groups: dict[object, list[wq.Query]] = {}
        for child in q.subqueries:
            groups.setdefault(_word_key(child), []).append(_coordinated(child))
        words = [_as_word(group) for group in groups.values()]
        if len(words) == 1:
            return words[0].with_boost(words[0].boost * q.boost)
        bonus = COORDINATION_BONUS * min(1.0, KEYWORD_WORDS / len(words)) ** 2
        return wq.Or(words, boost=q.boost, scale=bonus)
    return q.apply(_coordinated)


def any_field(terms: list[str]) -> wq.Query:
    """An OR of ``terms``, each searched in every text field as one :class:`Word`."""
    words = [Word([wq.Term(f, t, boost=w) for f, w in FIELD_WEIGHTS.items()]) for t in terms]
    return wq.Or(words) if len(words) != 1 else words[0]


def _word_key(q: wq.Query) -> object:
    if isinstance(q, wq.Term):
        return ("term", q.text)
    if isinstance(q, wq.Phrase):
        return ("phrase", tuple(q.words), q.slop)
    if isinstance(q, (wq.Prefix, wq.Wildcard)):
        return ("pattern", q.text)
    return id(q)


def _as_word(group: list[wq.Query]) -> wq.Query:
    """A :class:`Word` for one word's per-field queries, when they are just that."""
    if len(group) < 2 or not all(isinstance(q, (wq.Term, wq.Phrase)) and q.fieldname in FIELD_WEIGHTS for q in group):
        return group[0] if len(group) == 1 else wq.Or(group)
    fields = {q.fieldname for q in group}
    weights = {round(q.boost / FIELD_WEIGHTS[q.fieldname], 9) for q in group}
    if len(fields) != len(group) or len(weights) != 1:  # e.g. 'headline:oil oil'
        return wq.Or(group)
    return Word([q.with_boost(FIELD_WEIGHTS[q.fieldname]) for q in group], boost=weights.pop())


def _ranges_as_filters(q: wq.Query) -> wq.Query:
    """``published:[..] words``: the date range must hold, it is not one more optional word."""
    if isinstance(q, wq.Or):
        ranges = [c for c in q.subqueries if isinstance(c, wq.NumericRange)]
        rest = [c for c in q.subqueries if not isinstance(c, wq.NumericRange)]
        if ranges and rest:
            words = rest[0] if len(rest) == 1 else q.__class__(rest, boost=q.boost, scale=getattr(q, "scale", None))
            return wq.And([words, *ranges])
    return q


def _has_errors(q: wq.Query) -> bool:
    return bool(getattr(q, "error", None)) or any(_has_errors(c) for c in q.children())


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
    elif isinstance(q, wq.AndNot):
        _collect(q.a, reader, limits, terms, seen, negated)
        _collect(q.b, reader, limits, terms, seen, negated=True)
    elif isinstance(q, wq.MultiTerm) and q.field() in TEXT_FIELDS:
        seen.add(str(q))
        _expand(q, reader, limits, terms[q.field()] if not negated else set())
    elif not q.is_leaf():
        for child in q.children():
            _collect(child, reader, limits, terms, seen, negated)
    elif isinstance(q, wq.Phrase) and q.field() in TEXT_FIELDS:
        seen.update(q.words)
        if not negated:
            terms[q.field()].add(" ".join(q.words))  # marked where the words stand together (highlight.py)
    elif q.field() in TEXT_FIELDS:
        for _, text in q.iter_all_terms():
            word = text if isinstance(text, str) else text.decode("utf-8")
            seen.add(word)
            if not negated:
                terms[q.field()].add(word)


def _expand(q: wq.MultiTerm, reader: IndexReader, limits: Limits, into: set[str]) -> None:
    """A wildcard's or word range's words, at most ``limits.max_expansions`` of them."""
    expanded = []
    for btext in expansions(q, reader):
        expanded.append(btext.decode("utf-8"))
        if len(expanded) > limits.max_expansions:
            typed = f"{q.text.rstrip('*')}*" if isinstance(q, (wq.Prefix, wq.Wildcard)) else str(q)
            raise QueryError(
                f"'{typed}' matches more than {limits.max_expansions} different words; "
                "add letters before the * or make the range narrower"
            )
    into.update(expanded)

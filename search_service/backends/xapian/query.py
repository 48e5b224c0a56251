"""The query syntax of the Whoosh engine, run as Xapian queries.

A query is parsed, checked against the limits and shaped exactly as the
Whoosh engine does it (:func:`search_service.backends.whoosh.query.parse`,
over an empty in-memory schema: only its parser is used), then translated
node by node: a :class:`~search_service.backends.whoosh.query.Word` (a word
or phrase in every field) becomes the unprefixed term or phrase, which
BM25 scores as BM25F (see :mod:`.document`); ``headline:``/``body:`` terms
get their field's prefix; date ranges become value ranges; trailing
wildcards are expanded against the database's terms, at most
``Limits.max_expansions`` of them.

The coordination bonus of free text (a story matching m of n words scores
``1 + bonus * (m-1)/(n-1)`` times its sum) is kept exactly: each pair of
words, both matched, adds ``bonus/(n-1)`` times their two weights, and a
story matching m words is in m-1 pairs per word.  Past
:data:`MAX_COORDINATED` words (where the bonus is under a tenth) the pairs
are left out.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

import xapian
from whoosh import query as wq
from whoosh.filedb.filestore import RamStorage
from whoosh.util.times import long_to_datetime

from ...config import Limits
from ...highlight import distinctive
from ...model import QueryError
from ...similarity import idf
from ..whoosh.query import FIELD_WEIGHTS, EveryStory, Word, make_parser, parse
from ..whoosh.schema import build_schema
from .document import FIELD_PREFIXES, SLOT_SECONDS, seconds

MAX_COORDINATED = 8


@dataclass(frozen=True)
class Translated:
    """A Xapian query, the terms to highlight per field (wildcards included), and what was repaired."""

    query: xapian.Query
    highlight_terms: dict[str, frozenset[str]]
    #: As the Whoosh engine's: set when malformed syntax was searched as words (:mod:`search_service.syntax`).
    notice: str | None = None


class Parser:
    """The Whoosh engine's parser over an empty schema; thread-safe."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._ix = RamStorage().create_index(build_schema())
        self._local = threading.local()

    def translate(self, text: str, db: xapian.Database) -> Translated:
        """``text`` as a Xapian query over ``db``; raises QueryError as the Whoosh engine does."""
        parser = getattr(self._local, "parser", None)
        if parser is None:
            parser = self._local.parser = make_parser(self._ix.schema)
        with self._ix.searcher() as searcher:
            parsed = parse(text, parser, searcher, self.limits)
        terms = {f: set(t) for f, t in parsed.highlight_terms.items()}
        query = _Translation(db, self.limits, terms).run(parsed.query)

        # As the Whoosh engine counts a word's stories: in the field that has it in most.
        def stories(term: str) -> int:
            return max(db.get_termfreq(prefix + term) for prefix in FIELD_PREFIXES.values())

        count = db.get_doccount()
        return Translated(query, {f: distinctive(t, stories, count) for f, t in terms.items()}, parsed.notice)


def value_range(low: float | None, high: float | None) -> xapian.Query:
    """Stories dated from ``low`` to ``high`` seconds (either may be open)."""
    if low is None:
        return xapian.Query(xapian.Query.OP_VALUE_LE, SLOT_SECONDS, xapian.sortable_serialise(high))
    if high is None:
        return xapian.Query(xapian.Query.OP_VALUE_GE, SLOT_SECONDS, xapian.sortable_serialise(low))
    return xapian.Query(
        xapian.Query.OP_VALUE_RANGE, SLOT_SECONDS, xapian.sortable_serialise(low), xapian.sortable_serialise(high)
    )


def idf_correction(stories: int, with_term: int) -> float:
    """What turns Xapian's BM25 idf for a term into the Whoosh engine's (Lucene's), as a factor.

    Xapian takes ``ln(r)`` with ``r = (N - n + 0.5) / (n + 0.5)``, raised to
    ``r / 2 + 1`` below 2 (so a common word never weighs less than nothing);
    the Whoosh engine takes ``ln(1 + r)`` (:func:`search_service.similarity.idf`).
    Scaled by this factor, a word's BM25 weight is the Whoosh engine's
    BM25F weight, from the statistics of every shard.
    """
    if not with_term:
        return 1.0
    ratio = (stories - with_term + 0.5) / (with_term + 0.5)
    xapian_idf = math.log(ratio if ratio >= 2 else ratio * 0.5 + 1)
    return idf(stories, with_term) / xapian_idf if xapian_idf > 0 else 1.0


def scaled(q: xapian.Query, factor: float) -> xapian.Query:
    return q if factor == 1.0 else xapian.Query(xapian.Query.OP_SCALE_WEIGHT, q, factor)


class _Translation:
    def __init__(self, db: xapian.Database, limits: Limits, terms: dict[str, set[str]]) -> None:
        self.db = db
        self.limits = limits
        self.terms = terms

    def run(self, q: wq.Query, negated: bool = False) -> xapian.Query:
        if isinstance(q, EveryStory):
            return xapian.Query.MatchAll
        if isinstance(q, Word):
            return scaled(self._word(q.subqueries[0]), q.boost)
        if isinstance(q, wq.AndNot):
            return xapian.Query(xapian.Query.OP_AND_NOT, self.run(q.a), self.run(q.b, negated=True))
        if isinstance(q, (wq.AndMaybe, wq.Require)):
            op = xapian.Query.OP_AND_MAYBE if isinstance(q, wq.AndMaybe) else xapian.Query.OP_FILTER
            return xapian.Query(op, self.run(q.a, negated), self.run(q.b, negated))
        if isinstance(q, (wq.And, wq.Or)):
            return self._group(q, negated)
        if isinstance(q, wq.Not):
            return xapian.Query(xapian.Query.OP_AND_NOT, xapian.Query.MatchAll, self.run(q.query, negated=True))
        if isinstance(q, wq.NumericRange) and q.fieldname == "published":
            low = seconds(long_to_datetime(q.start)) if q.start is not None else None
            high = seconds(long_to_datetime(q.end)) if q.end is not None else None
            return value_range(low, high) if low is not None or high is not None else xapian.Query.MatchAll
        prefix = FIELD_PREFIXES.get(q.field() or "")
        if prefix is None:
            return xapian.Query.MatchNothing
        if isinstance(q, wq.Term):
            return scaled(xapian.Query(prefix + q.text), q.boost)
        if isinstance(q, wq.Phrase):
            return scaled(_phrase([prefix + w for w in q.words], q.slop), q.boost)
        if isinstance(q, (wq.Prefix, wq.Wildcard)):
            return scaled(self._expanded(prefix, q.text.rstrip("*"), q.field(), negated), q.boost)
        return xapian.Query.MatchNothing

    def _word(self, first: wq.Query) -> xapian.Query:
        """The unprefixed term or phrase of a :class:`Word` (its children differ only in field).

        A phrase is scored on its unprefixed terms (the sum of its words'
        weights, as the Whoosh engine scores it) and matched on the
        fields' positions (only the prefixed terms have them): in the
        headline or in the body, never across the two.
        """
        if isinstance(first, wq.Phrase) and len(first.words) > 1:
            words = list(first.words)
            placed = [_phrase([prefix + w for w in words], first.slop) for prefix in FIELD_PREFIXES.values()]
            return xapian.Query(
                xapian.Query.OP_FILTER,
                xapian.Query(xapian.Query.OP_AND, [self._term(w) for w in words]),
                xapian.Query(xapian.Query.OP_OR, placed),
            )
        return self._term(first.words[0] if isinstance(first, wq.Phrase) else first.text)

    def _term(self, term: str) -> xapian.Query:
        """An unprefixed term, weighted as the Whoosh engine weighs it (:func:`idf_correction`)."""
        return scaled(xapian.Query(term), idf_correction(self.db.get_doccount(), self.db.get_termfreq(term)))

    def _group(self, q: wq.Query, negated: bool) -> xapian.Query:
        children = list(q.subqueries)
        if isinstance(q, wq.Or) and _is_pattern_word(children):
            # econom*: one pattern in every field, expanded once over the unprefixed terms.
            first = children[0]
            words = self._expansions("", first.text.rstrip("*"))
            for name in FIELD_PREFIXES:
                self._note(name, words, negated)
            weight = first.boost / FIELD_WEIGHTS[first.fieldname]
            return scaled(xapian.Query(xapian.Query.OP_OR, words), weight * q.boost)
        negatives = [self.run(c.query, negated=True) for c in children if isinstance(c, wq.Not)]
        positives = [self.run(c, negated) for c in children if not isinstance(c, wq.Not)]
        op = xapian.Query.OP_AND if isinstance(q, wq.And) else xapian.Query.OP_OR
        out = xapian.Query(op, positives) if positives else xapian.Query.MatchAll
        bonus = getattr(q, "scale", None)
        if op == xapian.Query.OP_OR and bonus and 2 <= len(positives) <= MAX_COORDINATED:
            pairs = [xapian.Query(xapian.Query.OP_AND, [a, b]) for a, b in itertools.combinations(positives, 2)]
            out = xapian.Query(
                xapian.Query.OP_OR, [out, scaled(xapian.Query(xapian.Query.OP_OR, pairs), bonus / (len(positives) - 1))]
            )
        if negatives:
            out = xapian.Query(xapian.Query.OP_AND_NOT, out, xapian.Query(xapian.Query.OP_OR, negatives))
        return scaled(out, q.boost)

    def _expanded(self, prefix: str, stem: str, field: str, negated: bool) -> xapian.Query:
        words = self._expansions(prefix, stem)
        self._note(field, words, negated)
        return xapian.Query(xapian.Query.OP_OR, [prefix + w for w in words])

    def _expansions(self, prefix: str, stem: str) -> list[str]:
        words = []
        for item in self.db.allterms(prefix + stem):
            words.append(item.term.decode("utf-8")[len(prefix) :])
            if len(words) > self.limits.max_expansions:
                raise QueryError(
                    f"'{stem}*' matches more than {self.limits.max_expansions} different words; make it more specific"
                )
        return words

    def _note(self, field: str, words: list[str], negated: bool) -> None:
        if not negated and field in self.terms:
            self.terms[field].update(words)


def _is_pattern_word(children: list[wq.Query]) -> bool:
    """An OR of one trailing wildcard in each text field (how ``econom*`` parses)."""
    return (
        len(children) == len(FIELD_PREFIXES)
        and all(isinstance(c, (wq.Prefix, wq.Wildcard)) for c in children)
        and {c.fieldname for c in children} == set(FIELD_PREFIXES)
        and len({c.text for c in children}) == 1
    )


def _phrase(terms: list[str], slop: int) -> xapian.Query:
    if len(terms) == 1:
        return xapian.Query(terms[0])
    return xapian.Query(xapian.Query.OP_PHRASE, terms, len(terms) + max(slop, 1) - 1)

"""Related stories: the stories that share a story's most distinctive words.

A story's key terms are its words weighted by tf-idf: the term frequency
(a headline word counting as :data:`~.query.FIELD_WEIGHTS` says, as in
search) dampened as ``1 + ln(tf)``, times the word's idf.  Words only this
story has are left out (they find nothing else), and so are common words
(:func:`~search_service.analysis.is_common`) and words in more than half of
the stories (they say nothing about the subject).  The :data:`RELATED_TERMS`
heaviest are searched for, each as a BM25F word weighted by its tf-idf, with
the same analyzer and scoring as a search.

A story is related only if it scores at least :data:`MIN_SHARE` of what the
story itself scores for the same query: a story sharing one common word
does not fill the list just because nothing better exists.

Measured with ``bench/related_bench.py`` (documents judged relevant to the
same query count as related) against a plain more-like-this (the top 25
tf-idf words, unweighted, no floor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from whoosh import query as wq
from whoosh.reading import IndexReader

from ...analysis import is_common, term_positions
from ...similarity import RELATED_COMMON_SHARE, RELATED_MIN_SHARE, idf
from .evaluation import Evaluation, Found
from .query import FIELD_WEIGHTS, Word
from .schema import TEXT_FIELDS

#: How many of the story's key terms are searched for.
RELATED_TERMS = 30
#: A related story scores at least this share of the story's own score (as in the Xapian engine).
MIN_SHARE = RELATED_MIN_SHARE
#: A word in more than this share of the stories is not a key term (as in the Xapian engine).
COMMON_SHARE = RELATED_COMMON_SHARE


def key_terms(
    reader: IndexReader,
    texts: Mapping[str, str],
    limit: int | None = None,
    weights: Mapping[str, float] = FIELD_WEIGHTS,
) -> list[tuple[str, float]]:
    """The ``limit`` (default :data:`RELATED_TERMS`) terms of ``texts`` (field -> text) with the highest tf-idf."""
    counts: dict[str, float] = {}
    for fieldname, text in texts.items():
        for term, positions in term_positions(text).items():
            counts[term] = counts.get(term, 0.0) + weights[fieldname] * len(positions)
    stories = reader.doc_count()
    scored = []
    for term, tf in counts.items():
        if is_common(term):
            continue
        with_term = max(reader.doc_frequency(f, term) for f in TEXT_FIELDS)
        if 2 <= with_term <= COMMON_SHARE * stories:
            scored.append((term, (1.0 + math.log(tf)) * idf(stories, with_term)))
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored[: RELATED_TERMS if limit is None else limit]


def weighted_query(terms: list[tuple[str, float]]) -> wq.Query:
    """An OR of ``terms``, each a BM25F word over every text field weighted by its score."""
    return wq.Or(
        [Word([wq.Term(f, t, boost=w) for f, w in FIELD_WEIGHTS.items()], boost=weight) for t, weight in terms]
    )


def related_scores(evaluation: Evaluation, docnum: int, terms: list[tuple[str, float]]) -> Found:
    """The stories related to story ``docnum`` with key ``terms``, and their scores.

    The story itself is among them (leave it and its versions out).
    """
    found = evaluation.found(weighted_query(terms) if terms else wq.NullQuery)
    own = found.scores[found.ids == docnum]
    return found.take(found.scores >= MIN_SHARE * (own[0] if len(own) else 0.0))


__all__ = ["MIN_SHARE", "RELATED_TERMS", "key_terms", "related_scores", "weighted_query"]

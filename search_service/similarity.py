"""BM25F, the scoring formula, as a pure function over NumPy arrays.

Robertson, Zaragoza and Taylor (2004), "Simple BM25 extension to multiple
weighted fields", as Whoosh's and Lucene's BM25 write idf::

    tf~   = sum over fields f of  w_f * tf_f          (weighted term frequency)
    len~  = sum over fields f of  w_f * len_f         (weighted story length)
    avg~  = sum over fields f of  w_f * avglen_f      (its collection average)

    idf   = ln(1 + (N - n + 0.5) / (n + 0.5))

    score = boost * idf * tf~ * (k1 + 1) / (tf~ + k1 * (1 - b + b * len~ / avg~))

``N`` is the number of live stories, ``n`` the number with the term in any
of the fields; ``w_f`` the field weights (a headline word counts as three
body words), ``boost`` the term's weight in the query (a word typed twice
counts twice).  With one field and ``w = 1`` it is plain BM25.
"""

from __future__ import annotations

import math

import numpy as np

K1 = 1.2
B = 0.75
#: A related story scores at least this share of what the story itself scores for
#: the same query (both engines): one shared word does not make a story related.
RELATED_MIN_SHARE = 0.1
#: A word in more than this share of the stories is no key term of a story's related stories (both engines).
RELATED_COMMON_SHARE = 0.5


def idf(stories: int, with_term: int) -> float:
    """Lucene's BM25 idf: ``ln(1 + (N - n + 0.5) / (n + 0.5))``, never negative."""
    return math.log(1.0 + (stories - with_term + 0.5) / (with_term + 0.5))


def bm25f(
    tf: np.ndarray,
    length: np.ndarray,
    average_length: float,
    stories: int,
    with_term: int,
    boost: float = 1.0,
    k1: float | None = None,
    b: float | None = None,
) -> np.ndarray:
    """The BM25F score of one term in each story; arrays are the weighted ``tf~`` and ``len~`` of those stories.

    ``k1`` and ``b`` default to the module's :data:`K1` and :data:`B` as they are at the call.
    """
    k1 = K1 if k1 is None else k1
    b = B if b is None else b
    saturation = tf + k1 * (1.0 - b + b * length / average_length)
    return boost * idf(max(stories, with_term), with_term) * tf * (k1 + 1.0) / saturation


__all__ = ["K1", "RELATED_COMMON_SHARE", "RELATED_MIN_SHARE", "B", "bm25f", "idf"]

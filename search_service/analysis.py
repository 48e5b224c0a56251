"""The news analyzer: one text normalisation shared by indexing, queries and highlighting.

Every token goes through :func:`normalize`: Unicode NFKC, quote and apostrophe
folding (``won’t`` = ``won't`` = ``wont``), case and accent folding, stop words
and English stemming (Porter2/Snowball: Whoosh's older Porter code stems
"running" to "runn" and "news" to "new").  Tokens keep their character offsets
in the *original* text, so the highlighter marks the words as written.

Indexing calls :func:`term_positions` (a regex scan and one cached dict
lookup per token); the highlighter calls :func:`tokens`; Whoosh's query
parser goes through :class:`NewsAnalyzer`, which wraps :func:`tokens` in
Whoosh's ``Token`` protocol.  All three use :func:`normalize`, so they agree
on every term (a property test checks the index and query paths).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from whoosh.analysis import STOP_WORDS
from whoosh.lang.porter2 import stem

from .arabic import WORD_MARKS, normalize_script

#: A word: letters/digits, optionally joined by an apostrophe or a dot
#: (``don't``, ``U.S``, ``2.7``).  Hyphens split words (``Al-Haq`` -> al, haq).
_JOINERS = ".'’‘ʼ`´"
#: Combining marks and ZWNJ inside a word are part of it (Arabic harakat, ``می‌روند``).
_WORD = rf"\w[\w{WORD_MARKS}]*"
TOKEN_RE = re.compile(rf"{_WORD}(?:[{_JOINERS}]{_WORD})*")

#: Apostrophe-like characters removed inside words, so Asa’ib = Asaib.
_APOSTROPHES = dict.fromkeys(map(ord, "'’‘ʼ`´"), None)
#: Quote-like characters mapped to their ASCII forms for the un-tokenized path.
_QUOTES = {ord(c): '"' for c in "“”„‟«»"}

#: Whoosh's short list plus the common English function words (NLTK's list):
#: pasted questions are full of "what", "which", "there", "been", which the
#: short list keeps.  Measured with bench/relevance.py (nDCG@10): Cranfield
#: 0.381 -> 0.390, CISI 0.313 -> 0.323.
STOP = frozenset(STOP_WORDS) | frozenset(
    ["i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "can", "will", "just", "don", "should", "now"]
)
MIN_LENGTH = 2
_CACHE_LIMIT = 500_000

# token text -> term, or None for a stop word
_cache: dict[str, str | None] = {}
_MISSING: Any = object()


def fold(text: str) -> str:
    """NFKC, apostrophe removal, case folding, accent stripping, Arabic and Persian variants (no stemming)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.translate(_APOSTROPHES).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text.translate(_QUOTES))
        text = normalize_script("".join(c for c in decomposed if not unicodedata.combining(c)))
    return text


def _analyse_word(word: str) -> str | None:
    folded = fold(word)
    if folded in STOP or (len(folded) < MIN_LENGTH and not folded.isdigit()):
        return None
    return stem(folded)


def normalize(word: str) -> str | None:
    """The index term of one token (folded and stemmed); None for a stop word."""
    found = _cache.get(word, _MISSING)
    if found is _MISSING:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        found = _cache[word] = _analyse_word(word)
    return found


def tokens(text: str) -> Iterator[tuple[str, int, int, int]]:
    """Yield ``(term, position, startchar, endchar)`` for each indexable token.

    Positions count indexed tokens only: a phrase with a stop word inside
    ("war of attrition") must match, and Whoosh's phrase query has no
    notion of position gaps.
    """
    pos = 0
    for match in TOKEN_RE.finditer(text):
        term = normalize(match.group())
        if term is not None:
            yield term, pos, match.start(), match.end()
            pos += 1


def find_terms(text: str, terms: frozenset[str]) -> list[tuple[int, int, str]]:
    """``(startchar, endchar, term)`` of the tokens of ``text`` whose term is in ``terms``.

    The same tokens :func:`tokens` would give, found faster: stemming and
    folding never change a word's first letter (an accented or other
    non-ASCII first letter is always looked at), so only tokens starting
    with a first letter of some term are analysed.
    """
    if not terms:
        return []
    found = []
    for match in _starting_with("".join(sorted({t[0] for t in terms}))).finditer(text):
        term = normalize(match.group())
        if term in terms:
            found.append((match.start(), match.end(), term))
    return found


@lru_cache(maxsize=1024)
def _starting_with(firsts: str) -> re.Pattern[str]:
    letters = re.escape("".join(sorted(set(firsts + firsts.upper()))))
    # Not inside a token: neither after a word character nor after a joiner that follows one.
    return re.compile(rf"(?<![\w{WORD_MARKS}])(?<!\w[{_JOINERS}])(?=[{letters}]|[^\x00-\x7f])" + TOKEN_RE.pattern)


def term_positions(text: str) -> dict[str, list[int]]:
    """Map each term of ``text`` to its positions: :func:`tokens` without offsets, for indexing."""
    positions: dict[str, list[int]] = {}
    cache = _cache
    pos = 0
    for word in TOKEN_RE.findall(text):
        cached = cache.get(word, _MISSING)
        term = normalize(word) if cached is _MISSING else cached
        if term is not None:
            if term in positions:
                positions[term].append(pos)
            else:
                positions[term] = [pos]
            pos += 1
    return positions

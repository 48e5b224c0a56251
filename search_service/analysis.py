"""The news analyzer: one text normalisation shared by indexing, queries and highlighting.

Every token goes through :func:`normalize`: Unicode NFKC, quote and apostrophe
folding (``won’t`` = ``won't`` = ``wont``), case and accent folding, and English
stemming (Porter2/Snowball: Whoosh's older Porter code stems "running" to
"runn" and "news" to "new").  Tokens with symbols keep them (:data:`SYMBOL_PATTERNS`:
``C++``, ``AT&T``, ``9/11``, ``$5bn``); common words are indexed, unstemmed,
and left out by the query side only beside rarer words (:func:`is_common`).
Tokens keep their character offsets in the *original* text, so the
highlighter marks the words as written.

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

_JOINERS = ".'’‘ʼ`´"
#: Combining marks and ZWNJ inside a word are part of it (Arabic harakat, ``می‌روند``).
_WORD = rf"\w[\w{WORD_MARKS}]*"
#: The end of a token that ends in a word character: the rest of the word,
#: and any more parts joined by an apostrophe or a dot (``U.S``, ``2.7``).
_TAIL = rf"[\w{WORD_MARKS}]*(?:[{_JOINERS}]{_WORD})*"
#: Tokens with symbols that people search for, tried before plain words
#: (the rules are listed for users on the home page's "How to search"):
SYMBOL_PATTERNS = (
    r"[A-Za-z]{1,3}(?:\+\+|#)(?![+#])",  # C++, C#, F#, g++
    r"\.(?i:net)(?!\w)",  # .NET
    rf"[$£€¥]\d+(?:[.,]\d+)*{_TAIL}",  # $5bn, £3.5m, $1,000
    r"\d+(?:\.\d+)?%",  # 3.5%
    rf"\d+(?:/\d+)+{_TAIL}",  # 9/11, 24/7
    rf"\w+(?:&\w+)+{_TAIL}",  # AT&T, S&P, R&D
    rf"[A-Za-z]-\w+{_TAIL}",  # e-mail = email, x-ray
    rf"[^\W\d_]+-\d{_TAIL}",  # COVID-19 = COVID19, F-16, G-20
)
#: A token: one of the symbol patterns, else letters/digits, optionally
#: joined by an apostrophe or a dot (``don't``, ``U.S``, ``2.7``).  Other
#: hyphens split words (``Al-Haq`` -> al, haq).  Every token that ends in a
#: word character ends with :data:`_TAIL`, so a token never starts right after
#: a word character (:func:`find_terms` relies on it).
TOKEN_RE = re.compile("|".join((*SYMBOL_PATTERNS, rf"\w{_TAIL}")))
#: Characters that make a token a symbol token: kept as written (folded), not stemmed.
_SYMBOLS = frozenset("+#&/%$£€¥")
#: Words whose capitals change their meaning: ``US`` is the country, as
#: ``U.S.`` is; ``us`` is a common word.
CASED = {"US": "u.s"}
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]\.?")

#: Apostrophe-like characters removed inside words, so Asa’ib = Asaib.
_APOSTROPHES = dict.fromkeys(map(ord, "'’‘ʼ`´"), None)
#: Quote-like characters mapped to their ASCII forms for the un-tokenized path.
_QUOTES = {ord(c): '"' for c in "“”„‟«»"}

#: Common words: Whoosh's short list plus the common English function words
#: (NLTK's list).  They are indexed like any word (``The Who``, ``"to be or
#: not to be"``), but a query leaves them out of its free text when it also
#: has rarer words (pasted questions are full of "what", "which", "there",
#: "been"; measured with bench/relevance.py, nDCG@10: Cranfield 0.381 ->
#: 0.390, CISI 0.313 -> 0.323 when they were dropped).
STOP = frozenset(STOP_WORDS) | frozenset(
    [
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "ourselves",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "her",
        "hers",
        "herself",
        "it",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "a",
        "an",
        "the",
        "and",
        "but",
        "if",
        "or",
        "because",
        "as",
        "until",
        "while",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "can",
        "will",
        "just",
        "don",
        "should",
        "now",
    ]
)
MIN_LENGTH = 2
_CACHE_LIMIT = 500_000

# token text -> term, or None for a token too short to index
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
    if word in CASED:
        return CASED[word]
    folded = fold(word)
    if _INITIALS.fullmatch(folded):  # U.K. = UK; U.S. stays u.s (us is a common word)
        letters = folded.replace(".", "")
        return letters if letters not in STOP else folded.rstrip(".")
    if any(c in _SYMBOLS for c in folded) or folded.startswith("."):
        return folded.replace(",", "") if folded[0] in "$£€¥" else folded
    folded = folded.replace("-", "")  # e-mail = email, COVID-19 = COVID19
    if len(folded) < MIN_LENGTH and not folded.isdigit():
        return None
    return folded if folded in STOP else stem(folded)


def normalize(word: str) -> str | None:
    """The index term of one token (folded and, unless a common word or a symbol, stemmed); None if too short."""
    found = _cache.get(word, _MISSING)
    if found is _MISSING:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        found = _cache[word] = _analyse_word(word)
    return found


def is_common(term: str) -> bool:
    """Whether ``term`` is a common word's (the query side leaves those out beside rarer words)."""
    return term in STOP


def tokens(text: str) -> Iterator[tuple[str, int, int, int]]:
    """Yield ``(term, position, startchar, endchar)`` for each indexable token.

    Positions count indexed tokens: common words have theirs, so a phrase
    matches exactly, in order ("war of attrition" is not "war and attrition").
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
    folding never change a word's first character (an accented or other
    non-ASCII first letter is always looked at), so only plain words
    starting with a first character of some term are analysed.  A word
    beside a symbol may be part of a symbol token (``C`` of ``C++``, ``mail``
    of ``e-mail``): its stretch of text is tokenised in full to be sure.
    """
    if not terms:
        return []
    found = []
    for candidate in _starting_with("".join(sorted({t[0] for t in terms}))).finditer(text):
        # Not a plain word: maybe a symbol token, or inside one.
        match = candidate if candidate.lastindex is not None else _token_at(text, candidate.start())
        if match is None:
            continue
        term = normalize(match.group())
        if term in terms:
            found.append((match.start(), match.end(), term))
    return found


#: Characters next to a word that can make it part of a symbol token (SYMBOL_PATTERNS).
_SYMBOL_STARTS = "$£€¥."
_BEFORE = "$£€¥,./&-"
_AFTER = "+#%/&-"
_CHUNK_CHARS = re.compile(rf"[\w{WORD_MARKS}$£€¥.&/%+#,{_JOINERS}-]")


def _token_at(text: str, at: int) -> re.Match[str] | None:
    """The token of the full scan that starts at ``at``, if one does (tokens never leave a chunk)."""
    begin = at
    while begin > 0 and _CHUNK_CHARS.match(text, begin - 1):
        begin -= 1
    for match in TOKEN_RE.finditer(text, begin):
        if match.start() >= at:
            return match if match.start() == at else None
    return None


@lru_cache(maxsize=1024)
def _starting_with(firsts: str) -> re.Pattern[str]:
    letters = re.escape("".join(sorted(set(firsts + firsts.upper()))))
    # A symbol may start a token anywhere, even right after a word (``1$9`` is ``1``, ``$9``): checked.
    symbols = f"|[{re.escape(_SYMBOL_STARTS)}]" if set(firsts) & set(_SYMBOL_STARTS) else ""
    # A word: not inside one, i.e. neither after a word character nor after a joiner that follows one.
    # A word with no symbol beside it is a token as it is (the empty group marks it); any other is checked.
    word = rf"\w[\w{WORD_MARKS}]*+"
    plain = rf"(?<![{re.escape(_BEFORE)}]){word}(?:[{_JOINERS}]{word})*+(?![{re.escape(_AFTER)}])(?P<plain>)"
    return re.compile(
        rf"(?<![\w{WORD_MARKS}])(?<!\w[{_JOINERS}])(?=[{letters}]|[^\x00-\x7f])(?:{plain}|\w{_TAIL}){symbols}"
    )


def term_positions(text: str) -> dict[str, list[int]]:
    """Map each term of ``text`` to its positions: :func:`tokens` without offsets, for indexing.

    The text is cut into chunks (:data:`_CHUNK_RE`: runs of the characters
    tokens are made of), each analysed once and cached: a single regex of
    plain characters scans several times faster than :data:`TOKEN_RE`'s
    alternatives, and most chunks are one plain word seen before.
    """
    positions: dict[str, list[int]] = {}
    cache = _chunks
    pos = 0
    for chunk in _CHUNK_RE.findall(text):
        terms = cache.get(chunk)
        if terms is None:
            terms = _chunk_terms(chunk)
        for term in terms:
            if term in positions:
                positions[term].append(pos)
            else:
                positions[term] = [pos]
            pos += 1
    return positions


#: Runs of the characters tokens are made of.  No token crosses a chunk's
#: edge, and every lookaround of TOKEN_RE sees the same at a chunk's edge as
#: in the whole text, so tokenising chunk by chunk gives the same tokens.
_CHUNK_RE = re.compile(rf"{_CHUNK_CHARS.pattern}+")
# chunk -> its terms
_chunks: dict[str, tuple[str, ...]] = {}


def chunks(text: str) -> list[str]:
    """The runs of ``text`` made of token characters: no token crosses one's edge, so each can be tokenised alone."""
    return _CHUNK_RE.findall(text)


def _chunk_terms(chunk: str) -> tuple[str, ...]:
    if len(_chunks) >= _CACHE_LIMIT:
        _chunks.clear()
    terms = _chunks[chunk] = tuple(t for t in map(normalize, TOKEN_RE.findall(chunk)) if t is not None)
    return terms

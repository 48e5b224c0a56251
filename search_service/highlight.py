"""Highlighting: escaped text with the matched words in ``<mark>``.

Only the shown hits are tokenised again, with the same analyzer the index
used, so a match is exactly a token whose term the query looked for.  Every
character of story text is HTML-escaped; ``<mark>`` is the only markup.

What to mark is a set of terms; a phrase is its terms joined by a space
(``"war attrit"``), and is marked only where its words stand together, as
the phrase query matched them (stop words between them don't count).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from html import escape
from itertools import pairwise, takewhile

from .analysis import find_terms, tokens

FRAGMENT_CHARS = 200
MAX_FRAGMENTS = 3


def _mark(text: str, spans: Iterable[tuple[int, int, str]], start: int = 0, end: int | None = None) -> str:
    end = len(text) if end is None else end
    out: list[str] = []
    at = start
    for s, e, _ in spans:
        if s < start or e > end:
            continue
        out.append(escape(text[at:s], quote=False))
        out.append(f"<mark>{escape(text[s:e], quote=False)}</mark>")
        at = e
    out.append(escape(text[at:end], quote=False))
    return "".join(out)


#: A query with more words than this is a pasted question or paragraph: only
#: its distinctive words are marked (see :func:`distinctive`).
MARK_EVERY_WORD_UP_TO = 4
#: In such a query, words in more than this share of the stories are not marked ...
COMMON_SHARE = 0.05
#: ... unless they are among its this many rarest words.
KEEP_RAREST = 4


def distinctive(terms: Iterable[str], doc_frequency: Callable[[str], int], doc_count: int) -> frozenset[str]:
    """The terms of a query worth marking: all of a short query's, a long one's rare ones.

    A pasted question ("what would the minister have said about ...") would
    otherwise light up every "said" and "would" in the text.  Phrases (terms
    with a space) are always kept.
    """
    terms = frozenset(terms)
    words = [t for t in terms if " " not in t]
    if len(words) <= MARK_EVERY_WORD_UP_TO:
        return terms
    words.sort(key=lambda t: (doc_frequency(t), t))
    common = {t for t in words[KEEP_RAREST:] if doc_frequency(t) > COMMON_SHARE * doc_count}
    return terms - common


def _spans(text: str, terms: frozenset[str]) -> list[tuple[int, int, str]]:
    """``(start, end, term)`` of the words to mark: the single terms, and phrases where they stand together."""
    phrases = {tuple(t.split(" ")) for t in terms if " " in t}
    if not phrases:
        return find_terms(text, terms)
    words = frozenset(t for t in terms if " " not in t)
    found = find_terms(text, words.union(*phrases))
    keep = [term in words for _, _, term in found]
    for phrase in phrases:
        for i in range(len(found) - len(phrase) + 1):
            run = found[i : i + len(phrase)]
            if tuple(t for _, _, t in run) == phrase and all(
                not any(tokens(text[a[1] : b[0]])) for a, b in pairwise(run)
            ):
                keep[i : i + len(phrase)] = [True] * len(phrase)
    return [span for span, kept in zip(found, keep) if kept]


def mark_all(text: str, terms: frozenset[str]) -> str:
    """The whole of ``text``, escaped, with every matched word marked (headlines, story pages)."""
    return _mark(text, _spans(text, terms))


def _ends_by(end: int, span: tuple[int, int, str]) -> bool:
    return span[1] <= end


def _window(text: str, s: int, e: int, size: int) -> tuple[int, int]:
    """A window of about ``size`` characters around [s, e), cut at word boundaries."""
    start = max(0, s - size // 3)
    end = min(len(text), max(e, start + size))
    if start > 0:
        space = text.find(" ", start, s)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", e, end)
        end = space if space != -1 else end
    return start, end


def fragments(text: str, terms: frozenset[str], size: int = FRAGMENT_CHARS, limit: int = MAX_FRAGMENTS) -> list[str]:
    """Up to ``limit`` escaped fragments of about ``size`` characters with the matches marked.

    The windows chosen are those holding the most distinct query terms,
    shown in text order with ellipses where text was cut.  With no match,
    the story's opening is the one fragment.
    """
    spans = _spans(text, terms)
    if not spans:
        start, end = _window(text, 0, 0, size)
        return [_mark(text, [], start, end) + (" …" if end < len(text) else "")] if text else []
    candidates = []
    for i, (s, e, _) in enumerate(spans):
        start, end = _window(text, s, e, size)
        inside = list(takewhile(partial(_ends_by, end), spans[i:]))
        candidates.append((-len({t for _, _, t in inside}), -len(inside), start, end))
    chosen: list[tuple[int, int]] = []
    for _, _, start, end in sorted(candidates):
        if all(end <= a or start >= b for a, b in chosen):
            chosen.append((start, end))
            if len(chosen) == limit:
                break
    result = []
    for start, end in sorted(chosen):
        piece = _mark(text, spans, start, end).replace("\n\n", " ")
        result.append(("… " if start > 0 else "") + piece + (" …" if end < len(text) else ""))
    return result

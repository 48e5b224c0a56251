"""Highlighting: escaped text with the matched words in ``<mark>``.

Only the shown hits are tokenised again, with the same analyzer the index
used, so a match is exactly a token whose term the query looked for.  Every
character of story text is HTML-escaped; ``<mark>`` is the only markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from html import escape
from itertools import takewhile

from .analysis import find_terms

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


def mark_all(text: str, terms: frozenset[str]) -> str:
    """The whole of ``text``, escaped, with every matched word marked (headlines, story pages)."""
    return _mark(text, find_terms(text, terms))


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


def fragments(
    text: str, terms: frozenset[str], size: int = FRAGMENT_CHARS, limit: int = MAX_FRAGMENTS
) -> list[str]:
    """Up to ``limit`` escaped fragments of about ``size`` characters with the matches marked.

    The windows chosen are those holding the most distinct query terms,
    shown in text order with ellipses where text was cut.  With no match,
    the story's opening is the one fragment.
    """
    spans = find_terms(text, terms)
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

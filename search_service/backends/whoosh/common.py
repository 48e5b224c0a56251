"""Common words in a parsed query: left out of free text when the query also has rarer words.

The index has every word, common ones included ("the", "it", "to": see
:func:`search_service.analysis.is_common`), so "The Who" or "It" can be
found.  Beside rarer words they would match nearly every story: slower, and
a story with many of them could outrank one with the rare words.  So free
text leaves them out there; phrases and exclusions keep them.
"""

from __future__ import annotations

from whoosh import query as wq

from ...analysis import is_common
from .schema import TEXT_FIELDS


def without_common_words(q: wq.Query) -> wq.Query | None:
    """``q`` without the common words of its free text, or None when it has no rarer word to keep."""
    return _without(q).normalize() if _has_rarer_word(q) else None


def _has_rarer_word(q: wq.Query) -> bool:
    """Whether ``q`` looks for anything more specific than a common word (outside its exclusions)."""
    if isinstance(q, wq.Not):
        return False
    if isinstance(q, wq.AndNot):
        return _has_rarer_word(q.a)
    if isinstance(q, wq.Term) and q.fieldname in TEXT_FIELDS:
        return not is_common(q.text)
    if isinstance(q, (wq.Phrase, wq.MultiTerm)):
        return True
    return any(_has_rarer_word(c) for c in q.children())


def _without(q: wq.Query) -> wq.Query:
    if isinstance(q, wq.Term) and q.fieldname in TEXT_FIELDS and is_common(q.text):
        return wq.NullQuery
    if isinstance(q, (wq.Not, wq.Phrase)):
        return q
    if isinstance(q, wq.AndNot):
        return wq.AndNot(_without(q.a), q.b)
    return q.apply(_without)


__all__ = ["without_common_words"]

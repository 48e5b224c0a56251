"""Words to offer: completions of a query's last word, for any engine.

The engine supplies what only it can read from its index: the indexed
terms with a prefix and their story counts, and the texts of a few stories
with a term; what to offer is chosen here, the same way for every engine.
(Spelling corrections are :mod:`.spelling`'s, from :mod:`.vocabulary`.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .analysis import find_terms, fold, is_common

#: A suggested word's spelling is the commonest in this many stories with it.
SURFACE_STORIES = 20
#: Autocomplete needs this many letters, and looks at this many indexed words with them, at most.
MIN_SUGGEST_PREFIX = 2
SUGGEST_SCAN = 2000


def commonest_spelling(texts: Iterable[str], term: str) -> str | None:
    """The commonest real word (folded) whose term is ``term`` in ``texts``; the shortest among equals.

    Several stories, not one: the first may only have "Mexico's" or
    "tariffs" where most say "mexico" and "tariff".
    """
    seen: Counter[str] = Counter()
    for text in texts:
        seen.update(fold(text[s:e]) for s, e, _ in find_terms(text, frozenset((term,))))
    return min(seen, key=lambda w: (-seen[w], len(w), w)) if seen else None


def completion_prefix(prefix: str, max_chars: int) -> tuple[str, str] | None:
    """``prefix`` split into the words before the last and the last word folded; None when too short to complete."""
    head, _, last = prefix[:max_chars].rpartition(" ")
    folded = fold(last)
    if len(folded) < MIN_SUGGEST_PREFIX or not folded.isalnum():
        return None
    return head, folded


def completions(
    head: str, start: str, terms: Iterable[tuple[int, str]], surface: Callable[[str], str | None], limit: int
) -> list[str]:
    """Up to ``limit`` of ``head`` + a real word starting with ``start``, from ``(story count, term)`` pairs, commonest first.

    Common words ("the", "for") are not offered: nobody needs them completed, and they would push the
    words people search for out of the list.
    """
    words: list[str] = []
    for _, term in sorted(terms, reverse=True):
        if is_common(term):
            continue
        word = surface(term)
        if word and word.startswith(start) and word not in words:
            words.append(word)
        if len(words) == limit:
            break
    return [f"{head} {w}".strip() for w in words]

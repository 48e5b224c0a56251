"""Choosing the correction for a misspelt word among the index's words.

The candidates come from the index (every word within two edits); this
module picks the nearest, as a typo suggests, and the commonest among
equally near ones (as Norvig's corrector does).  A slip that keeps the
sound (``irak`` -> ``iraq``, ``cofee`` -> ``coffee``, ``stok`` ->
``stock``) counts half an edit, so the commoner ``iran``, one unrelated
letter away, does not win over ``iraq``, nor ``come`` over ``coffee``.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Letters that stand for the same sound often enough to be swapped by mistake.
_VOWELS = "aeiouy"
_SOUNDS = (_VOWELS, "ckq", "sz")
_SOUND_OF = {letter: n for n, group in enumerate(_SOUNDS) for letter in group}
#: Letter pairs often written but not sounded (drought, night, though).
_SILENT = ("gh",)
#: The cost of an edit that keeps the sound (see :func:`distance`).
SLIP = 0.5


def distance(a: str, b: str) -> float:
    """Edits from ``a`` to ``b``: insertions, deletions, swaps of neighbours and substitutions.

    Each costs 1, except the slips that keep a word's sound, which cost
    :data:`SLIP`: a letter for another of its sound group (k/q, e/i), a
    letter left out or put in beside one of its sound (cofee, tomorrrow, stok),
    and a silent pair such as "gh" left out or put in (drout), half each letter.
    """
    previous2: list[float] = []
    previous = [0.0]
    for j in range(1, len(b) + 1):
        previous.append(previous[-1] + _gap(b, j - 1))
    for i, x in enumerate(a, 1):
        row = [previous[0] + _gap(a, i - 1)] + [0.0] * len(b)
        for j, y in enumerate(b, 1):
            row[j] = min(
                previous[j] + _gap(a, i - 1), row[j - 1] + _gap(b, j - 1), previous[j - 1] + _substitution(x, y)
            )
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]


def _gap(word: str, at: int) -> float:
    """The cost of leaving out (or putting in) ``word[at]``.

    A slip beside the same letter (ff, ee) or a consonant of its sound (ck);
    half a slip in a silent pair (gh).
    """
    if word[at : at + 2] in _SILENT or (at > 0 and word[at - 1 : at + 1] in _SILENT):
        return SLIP / 2
    letter = word[at]
    beside = word[max(0, at - 1) : at] + word[at + 1 : at + 2]
    slip = any(b == letter or (letter not in _VOWELS and _substitution(letter, b) < 1.0) for b in beside)
    return SLIP if slip else 1.0


def _substitution(x: str, y: str) -> float:
    if x == y:
        return 0.0
    sound = _SOUND_OF.get(x)
    return SLIP if sound is not None and sound == _SOUND_OF.get(y) else 1.0


def closest(word: str, candidates: Iterable[tuple[str, int]]) -> str | None:
    """The nearest of the ``(word, frequency)`` candidates to ``word``; the most frequent of the nearest."""
    best = min(((distance(word, c), -frequency, c) for c, frequency in candidates), default=None)
    return best[2] if best else None

"""Correcting the misspelt words of a query from a dictionary of the stories' words.

:func:`correct_query` rewrites the words of a query that are probably
typos and leaves everything else as typed: operators, quotes, fields,
wildcards and dates.  A word is corrected when no story has it, or when it
is rare and a close word is far more common (``goverment``, in 8 Reuters
stories, beside ``government``).  The correction is the word of the
dictionary (:class:`Dictionary`, e.g. :class:`~search_service.vocabulary.Vocabulary`)
that best explains the typo in a noisy-channel score: the log of its
frequency, less :data:`EDIT_COST` per edit of :func:`distance`.  A slip that
keeps the sound (``irak`` -> ``iraq``, ``cofee`` -> ``coffee``, ``stok`` ->
``stock``) counts half an edit, so the commoner ``iran``, one unrelated
letter away, does not win over ``iraq``, nor ``come`` over ``coffee``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

from .analysis import STOP, TOKEN_RE, fold, normalize

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
    gaps_a = [_gap(a, i) for i in range(len(a))]
    gaps_b = [_gap(b, j) for j in range(len(b))]
    previous2: list[float] = []
    previous = [0.0]
    for gap in gaps_b:
        previous.append(previous[-1] + gap)
    for i, x in enumerate(a, 1):
        gap_a = gaps_a[i - 1]
        row = [previous[0] + gap_a]
        left = row[0]
        for j, y in enumerate(b, 1):
            left = min(previous[j] + gap_a, left + gaps_b[j - 1], previous[j - 1] + _substitution(x, y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                left = min(left, previous2[j - 2] + 1)
            row.append(left)
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


def within(word: str, candidates: list[str], limit: int) -> list[tuple[str, int]]:
    """``(candidate, edits)`` for the ``candidates`` at most ``limit`` plain edits from ``word`` (each costing 1).

    The edits of :func:`distance`, computed for all candidates at once
    (a row of the edit table at a time, insertions by a running minimum),
    to keep only the few worth weighing one by one.
    """
    if not candidates or not word:
        return [(c, len(c)) for c in candidates if len(c) <= limit]
    width = max(map(len, candidates))
    padded = "".join(c.ljust(width, "\0") for c in candidates).encode("utf-32-le")
    letters = np.frombuffer(padded, dtype=np.uint32).reshape(len(candidates), width)
    columns = np.arange(width + 1)
    previous = np.broadcast_to(columns, letters.shape[:1] + columns.shape).copy()
    previous2 = previous
    codes = [ord(c) for c in word]
    for i, x in enumerate(codes, 1):
        row = np.empty_like(previous)
        row[:, 0] = i
        row[:, 1:] = np.minimum(previous[:, :-1] + (letters != x), previous[:, 1:] + 1)
        if i > 1:
            swapped = (letters[:, :-1] == x) & (letters[:, 1:] == codes[i - 2])
            row[:, 2:] = np.where(swapped, np.minimum(row[:, 2:], previous2[:, :-2] + 1), row[:, 2:])
        row = np.minimum.accumulate(row - columns, axis=1) + columns
        previous2, previous = previous, row
    lengths = np.fromiter(map(len, candidates), dtype=np.intp, count=len(candidates))
    edits = previous[np.arange(len(candidates)), lengths]
    return [(c, n) for c, n in zip(candidates, edits.tolist()) if n <= limit]


class Dictionary(Protocol):
    """Words with the number of stories that have them."""

    #: The highest frequency of any word.
    largest: int

    def frequency(self, word: str) -> int:
        """Stories with ``word`` (folded); 0 for an unknown word."""

    def candidates(self, word: str, edits: int) -> Iterable[str]:
        """Known words within ``edits`` edits of ``word`` (more are harmless: they are measured)."""


#: Log-frequency given up per edit: a word one edit away beats a word two
#: edits away unless that one is about e^EDIT_COST times commoner.
EDIT_COST = 4.0
#: Log-frequency given up per edit as :func:`distance` weighs them, where a
#: slip that keeps the sound is half an edit: between words as many edits
#: away, the one reached by slips wins unless the other is e^(SLIP_COST/2) times commoner.
SLIP_COST = 4.0
#: A word some stories have is corrected only to a word this many times commoner, one edit away at most.
RARER = 50
#: A word no story has, whose stem some stories have, is corrected to a word this many times commoner
#: (or to a spelling of the same stem: see :func:`correct_word`).
FOUND_RARER = 5
#: Words shorter than this are never corrected (too many words are one edit away from them).
MIN_LENGTH = 3
#: A known word must be at least this long to be corrected (``cafe`` is no typo of ``case``).
MIN_KNOWN_LENGTH = 5
#: Words up to this long are corrected by one edit at most.
SHORT = 4
#: What a query may hold besides words: ranges (``published:[2021 TO 2022]``) are left alone.
_RANGE = re.compile(r"\[[^\]]*\]?|\{[^}]*\}?")
_OPERATORS = frozenset(("AND", "OR", "NOT", "TO"))
#: Endings that make another form of a word, not a misspelling of it.
_ENDINGS = frozenset(("s", "es", "d", "ed", "ing", "ly", "er", "ers", "est"))


def correct_word(word: str, dictionary: Dictionary, found: Callable[[str], int]) -> str | None:
    """The word ``word`` was probably meant to be (folded), or None to keep it.

    ``found(word)`` is how many stories a search for the word finds: with
    stemming, a form no story has may still find its stem's stories, and
    is then corrected only to a spelling of the same stem that is not just
    another ending of it (``figurs`` -> ``figures``, but ``accessing`` is
    left alone, not made ``accusing`` or ``access``), or to a far commoner word.
    """
    typed = fold(word)
    if len(typed) < MIN_LENGTH or not typed.isalpha() or typed in STOP:
        return None
    known = dictionary.frequency(typed)
    if known and (len(typed) < MIN_KNOWN_LENGTH or known * RARER > dictionary.largest):
        return None
    searched = 0 if known else found(typed)
    limit = 1 if known or searched or len(typed) <= SHORT else 2
    near = [
        c
        for c in dictionary.candidates(typed, limit)
        if c != typed and c not in STOP and abs(len(c) - len(typed)) <= limit
    ]
    best: tuple[float, int, str] | None = None
    for candidate, edits in within(typed, near, limit):
        frequency = dictionary.frequency(candidate)
        if frequency < known * RARER + searched * FOUND_RARER and not (searched and _respelt(typed, candidate)):
            continue
        cost = EDIT_COST * edits + SLIP_COST * distance(typed, candidate)
        score = (math.log(frequency) - cost, frequency, candidate)
        if best is None or score > best:
            best = score
    return best[2] if best else None


def _respelt(typed: str, candidate: str) -> bool:
    """Whether ``candidate`` is ``typed`` spelt right: the same stem, not just another ending."""
    if normalize(typed) != normalize(candidate):
        return False
    short, long = sorted((typed, candidate), key=len)
    return not (long.startswith(short) and long[len(short) :] in _ENDINGS)


def correct_query(text: str, dictionary: Dictionary, found: Callable[[str], int]) -> str | None:
    """``text`` with its misspelt words corrected (:func:`correct_word`), or None if none is.

    Only words are rewritten, in the case they were typed in; operators,
    quotes, field names, wildcard words and ranges are kept as typed:
    ``"oil explorattion" -opec`` -> ``"oil exploration" -opec``.
    """
    ranges = [m.span() for m in _RANGE.finditer(text)]
    pieces: list[str] = []
    done = 0
    for match in TOKEN_RE.finditer(text):
        start, end = match.span()
        word = match.group()
        if (
            word in _OPERATORS
            or text[end : end + 1] in (":", "*")
            or text[start - 1 : start] == "*"
            or any(a <= start < b for a, b in ranges)
        ):
            continue
        fixed = correct_word(word, dictionary, found)
        if fixed is not None:
            pieces += [text[done:start], _cased_as(fixed, word)]
            done = end
    return "".join(pieces) + text[done:] if pieces else None


def _cased_as(word: str, typed: str) -> str:
    """``word`` in the case of ``typed``: ``OPEC``, ``Iraq`` or ``coffee``."""
    if typed.isupper() and len(typed) > 1:
        return word.upper()
    if typed[:1].isupper():
        return word[:1].upper() + word[1:]
    return word

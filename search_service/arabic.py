"""Arabic and Persian script normalisation, as Lucene's ArabicNormalizer and PersianNormalizer.

Writers of both languages spell the same word several ways: with or without
hamza on alef, teh marbuta or heh at a word's end, the Arabic or the Persian
kaf and yeh, harakat (short vowel marks) or none, a tatweel stretching a
word, a zero-width non-joiner (ZWNJ) inside it (``می‌روند`` and ``میروند``),
Arabic-Indic or Persian digits.  :func:`normalize_script` maps every variant
to one spelling, so any of them finds the others; :mod:`.analysis` calls it
while folding.  No stemming: without an Arabic or Persian test collection
here there was nothing to measure a stemmer's gain (or harm) on.
"""

from __future__ import annotations

#: Characters that belong inside a word although Python's ``\w`` does not
#: match them: combining marks (harakat, Qur'anic marks, Latin accents typed
#: as separate characters) and the zero-width (non-)joiner.  A character class body.
WORD_MARKS = (
    "\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed\u200c\u200d"
)

_ALEF = "\u0627"
_HEH = "\u0647"
_FARSI_YEH = "\u06cc"
_KEHEH = "\u06a9"

_TABLE: dict[int, str | None] = {
    # alef with madda, hamza above, hamza below, wasla -> bare alef
    **dict.fromkeys(map(ord, "\u0622\u0623\u0625\u0671"), _ALEF),
    # teh marbuta, heh with yeh above, heh goal, ae -> heh
    **dict.fromkeys(map(ord, "\u0629\u06c0\u06c1\u06d5"), _HEH),
    # Arabic yeh, alef maksura, yeh barree -> Persian yeh
    **dict.fromkeys(map(ord, "\u064a\u0649\u06d2"), _FARSI_YEH),
    # Arabic kaf -> Persian keheh
    ord("\u0643"): _KEHEH,
    # tatweel, harakat, superscript alef, small high marks, hamza above/below, ZWNJ/ZWJ: dropped
    **dict.fromkeys(
        [0x0640, 0x0670, 0x200C, 0x200D, *range(0x064B, 0x0660), *range(0x0610, 0x061B), *range(0x06D6, 0x06EE)],
        None,
    ),
    # Arabic-Indic and Persian (Extended Arabic-Indic) digits -> ASCII
    **{0x0660 + d: str(d) for d in range(10)},
    **{0x06F0 + d: str(d) for d in range(10)},
}


def has_arabic_script(text: str) -> bool:
    """Whether ``text`` has a character of the Arabic block or the joiners (a cheap test before translating)."""
    return any("\u0600" <= c <= "\u06ff" or c in "\u200c\u200d" for c in text)


def normalize_script(text: str) -> str:
    """``text`` with Arabic and Persian spelling variants mapped to one form (see the module docstring)."""
    return text.translate(_TABLE)


__all__ = ["WORD_MARKS", "has_arabic_script", "normalize_script"]

"""The query language as people type it: malformed syntax repaired into words, with a notice.

Engine-neutral: a backend runs :func:`repair` on the text before its own
parser, and :func:`words_only` when its parser still can't make sense of
the result.  Well-formed syntax passes through unchanged.  What is wrong
is said in the user's terms (:attr:`Repaired.notice`), as Elasticsearch's
``simple_query_string`` does: an error is never the answer to what a person typed.

What is repaired: an unclosed quote (its words are searched), brackets
that don't pair, a dangling ``AND``/``OR``/``NOT`` (searched as a word), a
``+`` or ``-`` with no word after it, a ``*`` anywhere but the end of a word
of at least :data:`MIN_PREFIX` letters, an unknown ``field:`` (its words are
searched), a field with nothing after it, and a date range that is not
``published:[YYYY-MM-DD TO YYYY-MM-DD]`` (left out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from .analysis import TOKEN_RE

#: Fields a query may name.
FIELDS = ("headline", "body", "published")
#: Operators between two parts (Whoosh's undocumented ANDNOT, ANDMAYBE and REQUIRE too), and NOT before one.
BINARY = ("AND", "OR", "ANDNOT", "ANDMAYBE", "REQUIRE")
OPERATORS = (*BINARY, "NOT")
#: Letters a wildcard needs before its ``*``.
MIN_PREFIX = 2
#: Typographic quotes, searched as ``"``.
_QUOTES = str.maketrans({c: '"' for c in "“”„‟«»"})

_LEXEME = re.compile(
    r"""(?P<space>\s+)
    |(?P<quote>"[^"]*("(~\d+)?)?)
    |(?P<range>[\[{][^\]}"]*[\]}]?)
    |(?P<open>\()
    |(?P<close>\))
    |(?P<word>[^\s"()\[{]+)""",
    re.VERBOSE,
)
_FIELD = re.compile(r"([+-]?)([A-Za-z]\w*):(.*)", re.DOTALL)
_DATE = r"\d{4}(?:-\d{1,2}(?:-\d{1,2})?)?"
_RANGE = re.compile(rf"[\[{{]\s*({_DATE})?\s+TO\s+({_DATE})?\s*[\]}}]|[\[{{]\s*({_DATE})?\s+TO\s*[\]}}]")
_SIGNS = "+-"
#: Characters that make text more than words and punctuation.
_SYNTAX = re.compile(r'["()*:+\-\[\]{}^~]')


@dataclass(frozen=True)
class Repaired:
    """The query text to run and what had to be repaired in it (nothing, for well-formed syntax)."""

    text: str
    problems: tuple[str, ...] = ()

    @property
    def notice(self) -> str | None:
        """The line shown with the results: what was searched, and why."""
        if not self.problems:
            return None
        return f"Searched for the words: the query's syntax was incomplete ({'; '.join(self.problems)})"

    def also(self, problem: str) -> Repaired:
        """This repair with one more problem noted (once)."""
        return self if problem in self.problems else replace(self, problems=(*self.problems, problem))


@dataclass
class _Lexeme:
    kind: str
    text: str


def repair(text: str) -> Repaired:
    """``text`` with its malformed syntax made into words; :attr:`Repaired.problems` says what was wrong."""
    problems: list[str] = []
    lexemes = _lex(text.translate(_QUOTES))
    for step in (_quotes, _ranges, _fields, _signs, _stars, _brackets, _operators):
        lexemes = step(lexemes, problems)
    repaired = " ".join("".join(x.text for x in lexemes).split())
    return Repaired(repaired, tuple(dict.fromkeys(problems)))


def words_only(text: str) -> str:
    """The words of ``text`` with no syntax at all: what is searched when nothing else can be."""
    return " ".join(w.lower() if w in OPERATORS else w for w in TOKEN_RE.findall(text))


def as_phrase(text: str) -> str | None:
    """``text`` in quotes, if it is free text with no syntax at all (else None).

    For a query of only common words, which mean something only in order
    ("The Who", "to be or not to be").
    """
    if _SYNTAX.search(text) or set(text.split()) & set(OPERATORS):
        return None
    return f'"{text}"'


def has_words(text: str) -> bool:
    """Whether ``text`` has anything to search for: a word, or a ``*`` for every story."""
    return "*" in text or TOKEN_RE.search(text) is not None


def _lex(text: str) -> list[_Lexeme]:
    return [_Lexeme(str(m.lastgroup), m.group()) for m in _LEXEME.finditer(text)]


def _as_words(text: str) -> list[_Lexeme]:
    """Text that was syntax, now only words (separated, so it can't join a neighbour)."""
    words = words_only(text)
    return [_Lexeme("space", " "), *([_Lexeme("word", words), _Lexeme("space", " ")] if words else [])]


def _quotes(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    out = []
    for x in lexemes:
        if x.kind == "quote" and x.text.count('"') < 2:
            problems.append("unclosed quote")
            out.extend(_as_words(x.text))
        elif x.kind == "quote" and not TOKEN_RE.search(x.text):
            out.append(_Lexeme("space", " "))  # "" or quoted punctuation: nothing to search
        else:
            out.append(x)
    return out


def _ranges(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    """A range is ``[a TO b]`` after a field; other square or curly brackets are text."""
    out = []
    for i, x in enumerate(lexemes):
        field = lexemes[i - 1].text.lower() if i > 0 and lexemes[i - 1].kind == "word" else ""
        after_field = field.endswith(":")
        if field.endswith("published:"):
            out.append(x)  # judged with its field (_fields)
        elif x.kind == "range" and not (after_field and x.text[-1] in "]}" and " TO " in x.text):
            if after_field or " TO " in x.text:
                problems.append("a range needs [ … TO … ]")
            out.extend(_as_words(x.text))
        else:
            out.append(x)
    return out


def _fields(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    out: list[_Lexeme] = []
    skip = False
    for i, x in enumerate(lexemes):
        if skip:
            skip = False
            continue
        match = _FIELD.fullmatch(x.text) if x.kind == "word" else None
        if match is None or match.group(3).startswith("/"):  # not a field, or a web address
            out.append(x)
            continue
        sign, name, value = match.groups()
        following = lexemes[i + 1] if i + 1 < len(lexemes) else None
        attached = following is not None and following.kind in ("quote", "range", "open") and not value
        if name.lower() == "published":
            date_value = following.text if attached and following is not None else value
            if not _is_date_query(date_value):
                problems.append("a date range is written published:[2021-01-01 TO 2021-06-30]")
                out.extend(_as_words(re.sub(rf"\bTO\b|{_DATE}", " ", date_value)))
                skip = attached
                continue
            out.append(_Lexeme("word", f"{sign}published:{value}"))
        elif name.lower() in FIELDS and (value or attached):
            out.append(_Lexeme("word", f"{sign}{name.lower()}:{value}"))
        elif name.lower() in FIELDS:
            problems.append(f"{name}: with nothing after it")
            out.append(_Lexeme("space", " "))
        elif value or attached:
            problems.append(f"{name}: is not a field; the fields are headline:, body: and published:")
            out.append(_Lexeme("word", f"{sign}{name} {value}"))
        else:
            out.append(x)  # "Note:" in prose: a word, not syntax
    return out


def _is_date_query(value: str) -> bool:
    """A whole date range, or one year, month or day, with real dates."""
    match = _RANGE.fullmatch(value) or re.fullmatch(f"({_DATE})", value)
    if match is None:
        return False
    return all(_real_date(part) for part in match.groups() if part)


def _real_date(text: str) -> bool:
    parts = [int(p) for p in text.split("-")] + [1, 1]
    try:
        date(parts[0], parts[1], parts[2])
    except ValueError:
        return False
    return True


def _signs(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    """A ``+`` or ``-`` that applies to nothing (``oil - gas``, ``(+)``) is left out."""
    out = []
    for i, x in enumerate(lexemes):
        following = lexemes[i + 1].kind if i + 1 < len(lexemes) else None
        bare = x.kind == "word" and x.text[0] in _SIGNS and not TOKEN_RE.search(x.text) and "*" not in x.text
        if bare and (x.text.strip(_SIGNS) or following not in ("quote", "range", "open")):
            problems.append(f"a {x.text[0]} with no word after it")
            out.append(_Lexeme("space", " "))
        else:
            out.append(x)
    return out


def _stars(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    """``econom*`` is a wildcard; a ``*`` elsewhere in a word, or after one letter, is left out."""
    for x in lexemes:
        if x.kind != "word" or "*" not in x.text:
            continue
        head, _, value = x.text.rpartition(":") if _FIELD.fullmatch(x.text) else ("", "", x.text)
        sign = value[:1] if value[:1] in _SIGNS else ""
        value = value[len(sign) :]
        stem = re.sub(r"\*+\W*$", "*", value)  # econom*. at the end of a sentence
        letters = stem[:-1] if stem.endswith("*") else stem
        if stem != "*" and "*" in letters:
            problems.append("a * only works at the end of a word, as in econom*")
            stem = " ".join(value.replace("*", " ").split())
        elif stem != "*" and len(letters) < MIN_PREFIX:
            problems.append(f"a * needs at least {MIN_PREFIX} letters before it, as in econom*")
            stem = " ".join(value.replace("*", " ").split())
        x.text = f"{head}{':' if head else ''}{sign}{stem}"
    return lexemes


def _brackets(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    """Brackets pair up; one that doesn't is left out, and so is a pair with nothing inside."""
    opened: list[int] = []
    unpaired: set[int] = set()
    for i, x in enumerate(lexemes):
        if x.kind == "open":
            opened.append(i)
        elif x.kind == "close" and opened:
            start = opened.pop()
            if not any(y.kind in ("word", "quote", "range") for y in lexemes[start:i]):
                unpaired |= {start, i}
        elif x.kind == "close":
            problems.append("a ) with no ( before it")
            unpaired.add(i)
    if opened:
        problems.append("unclosed bracket")
        unpaired |= set(opened)
    return [_Lexeme("space", " ") if i in unpaired else x for i, x in enumerate(lexemes)]


def _operators(lexemes: list[_Lexeme], problems: list[str]) -> list[_Lexeme]:
    """``AND``/``OR`` need something on both sides and ``NOT`` something after it; else they are words."""
    solid = [x for x in lexemes if x.kind != "space"]
    for i, x in enumerate(solid):
        if x.kind != "word" or x.text not in OPERATORS:
            continue
        before = solid[i - 1] if i > 0 else None
        after = solid[i + 1] if i + 1 < len(solid) else None
        nothing_before = x.text != "NOT" and (before is None or before.kind == "open" or before.text in BINARY)
        nothing_after = after is None or after.kind == "close" or after.text in BINARY
        if nothing_before or nothing_after:
            problems.append(f"{x.text} with nothing {'before' if nothing_before else 'after'} it")
            x.text = x.text.lower()
        elif after is not None and after.kind == "word" and after.text[0] in _SIGNS:
            # Whoosh can't read a sign after an operator: 'oil AND -gas' is 'oil AND NOT gas'
            # ('NOT -gas' is taken as 'NOT gas').
            after.text = ("NOT " if after.text[0] == "-" and x.text != "NOT" else "") + after.text[1:]
    return lexemes


__all__ = ["FIELDS", "MIN_PREFIX", "OPERATORS", "Repaired", "as_phrase", "has_words", "repair", "words_only"]

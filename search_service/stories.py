"""Reading news stories from scraped ``.txt`` pages and JSON Lines files.

A scraped story page (``.txt``) looks like this::

     date 2021-06-02 0
    Wednesday 2 June 2021 - 09:08

    Headline

    Story Code : 935898
    Headline
    First paragraph.

    Second paragraph.
    Related Stories
    ...page furniture: Comment, Featured Stories...

The body ends at the first line (after the ``Story Code`` line) that is
exactly ``Related Stories``, ``Comment`` or ``Featured Stories``; that page
furniture holds other stories' headlines and is never part of the body.

A JSON Lines file holds one JSON object per line with ``id``, ``headline``,
``body`` and optional ``published``, ``url`` and ``source``.  The same
validation (:func:`story_from_mapping`) serves the HTTP write API.

:func:`read_file` never raises for bad content: problems become
:class:`Skip` records and :attr:`FileResult.warnings`.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

__all__ = [
    "ID_PATTERN",
    "MAX_ID_LENGTH",
    "STORY_SUFFIXES",
    "FileResult",
    "Skip",
    "Story",
    "StoryError",
    "iter_story_files",
    "parse_json_lines",
    "parse_story_text",
    "public_source",
    "read_file",
    "story_from_mapping",
]

MAX_ID_LENGTH = 128
#: A story id: starts with a letter or digit, then letters, digits, ``._:-``.
#: No ``/``, no spaces, no leading dot, so an id is safe in a path or a URL.
ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_ID_LENGTH - 1}}}")
STORY_SUFFIXES = frozenset({".txt", ".jsonl"})
MAX_URL_LENGTH = 2048

_FURNITURE = frozenset({"Related Stories", "Comment", "Featured Stories"})
_STORY_CODE = "story code"
_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}
# "Wednesday 2 June 2021 - 09:08" (the time part may be missing).  Only
# applied to the two or three header lines before the Story Code line.
_DATELINE = re.compile(
    r"[A-Za-z]+day\s+(\d{1,2})\s+([A-Za-z]+)\s+(\d{4})"
    r"(?:\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v\u00a0]*\n")
#: C0 and C1 control characters (NUL, ESC, ...) other than line breaks and tabs:
#: never text, though scraped pages carry them; in a story they would reach
#: JSON as \u0000 and break terminals and copy-paste.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_URL_OK = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)


# --------------------------------------------------------------------------
# data types


@dataclass(frozen=True)
class Story:
    """One news story, ready to index."""

    id: str
    headline: str
    body: str
    published: datetime | None
    source: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; ``published`` as ISO 8601 or ``None``."""
        return {
            "id": self.id,
            "headline": self.headline,
            "body": self.body,
            "published": self.published.isoformat() if self.published else None,
            "source": self.source,
            "url": self.url,
        }


def public_source(source: str | None) -> str | None:
    """Where a story came from, as a reader may see it: a file's name, never the server's folders.

    A story read from a file has its path as ``source``; the API's and JSON
    Lines' own names (``api``, ``wire``) and web addresses are kept whole.
    """
    if not source:
        return None
    if re.match(r"https?://", source, re.IGNORECASE):
        return source
    return re.split(r"[\\/]", source.rstrip("\\/"))[-1] or None


@dataclass(frozen=True)
class Skip:
    """Something in a file that is not a story, and why."""

    where: str  # "path", or "path:LINE" for JSON Lines
    reason: str


@dataclass
class FileResult:
    path: str
    stories: list[Story] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class StoryError(ValueError):
    """Not a valid story; the message starts with the field at fault."""


# --------------------------------------------------------------------------
# helpers


def _norm(text: str) -> str:
    """Collapse runs of whitespace (incl. no-break spaces) and control characters to one space."""
    return " ".join(_without_controls(text).split())


def _without_controls(text: str) -> str:
    return _CONTROL.sub(" ", text) if _CONTROL.search(text) else text


def _check_id(value: str, what: str = "id") -> str:
    if not ID_PATTERN.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise StoryError(
            f"{what}: {shown!r} is not a valid id (1-{MAX_ID_LENGTH} characters: "
            "letters, digits, '.', '_', ':', '-', starting with a letter or digit)"
        )
    return value


def _body_from_text(text: str) -> str:
    """Paragraphs split at blank lines, each whitespace-normalised."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = (_norm(p) for p in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def _parse_published(value: str) -> datetime:
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise StoryError(f"published: {value!r} is not an ISO 8601 date or datetime") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _decode(data: bytes, path: str, warnings: list[str]) -> str:
    """UTF-8 (BOM tolerated); undecodable bytes replaced, with a warning."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        replaced = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
        warnings.append(
            f"{path}: not valid UTF-8, {replaced} undecodable byte "
            f"sequence{'s' if replaced != 1 else ''} replaced with U+FFFD"
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


# --------------------------------------------------------------------------
# validation shared by JSON Lines and the HTTP write API


def _required_text(data: Mapping[str, Any], name: str, clean: Callable[[str], str]) -> str:
    """The string ``data[name]``, cleaned; a StoryError naming the field if absent or empty."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise StoryError(f"{name}: must be a string, got {type(value).__name__}")
    value = clean(value or "")
    if not value:
        raise StoryError(f"{name}: missing or empty")
    return value


def story_from_mapping(data: Mapping[str, Any], source: str) -> Story:
    """Validate a mapping (a JSON object) and build a :class:`Story`.

    ``id`` (str, or int), ``headline`` and ``body`` (non-empty strings) are
    required; ``published`` (ISO 8601 date or datetime; aware times are
    converted to UTC and made naive), ``url`` (http/https) and ``source``
    are optional.  ``source`` falls back to the *source* argument.  Unknown
    keys are ignored.  Raises :class:`StoryError` naming the field.
    """
    if not isinstance(data, Mapping):
        raise StoryError(f"story: expected a JSON object, got {type(data).__name__}")

    raw_id = data.get("id")
    if raw_id is None:
        raise StoryError("id: missing")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise StoryError(f"id: must be a string or an integer, got {type(raw_id).__name__}")
    story_id = _check_id(str(raw_id))

    headline = _required_text(data, "headline", _norm)
    body = _required_text(data, "body", _body_from_text)

    published_raw = data.get("published")
    published: datetime | None = None
    if published_raw is not None:
        if not isinstance(published_raw, str):
            raise StoryError(
                f"published: must be an ISO 8601 date or datetime string, got {type(published_raw).__name__}"
            )
        if published_raw.strip():
            published = _parse_published(published_raw)

    url = data.get("url")
    if url is not None:
        if not isinstance(url, str):
            raise StoryError(f"url: must be a string, got {type(url).__name__}")
        url = url.strip() or None
        if url is not None and (len(url) > MAX_URL_LENGTH or not _URL_OK.fullmatch(url)):
            raise StoryError(
                f"url: must be an http:// or https:// URL of at most {MAX_URL_LENGTH} characters without spaces"
            )

    given_source = data.get("source")
    if given_source is not None and not isinstance(given_source, str):
        raise StoryError(f"source: must be a string, got {type(given_source).__name__}")
    given_source = (given_source or "").strip()

    return Story(
        id=story_id,
        headline=headline,
        body=body,
        published=published,
        source=given_source or source,
        url=url,
    )


# --------------------------------------------------------------------------
# scraped .txt pages


def _story_code_index(lines: list[str], text: str) -> int:
    """Index of the first ``Story Code`` line, or -1."""
    # Fast path: the exact spelling at the start of a line.
    pos = text.find("Story Code")
    while pos != -1:
        if pos == 0 or text[pos - 1] == "\n" or text[:pos].rpartition("\n")[2].isspace():
            return text.count("\n", 0, pos)
        pos = text.find("Story Code", pos + 1)
    # Slow path: other capitalisation ("Story code", "STORY CODE").
    for i, line in enumerate(lines):
        if line.lstrip()[:10].lower() == _STORY_CODE:
            return i
    return -1


def _header_info(header: list[str]) -> tuple[datetime | None, str]:
    """(published, headline) from the lines before the Story Code line."""
    day: date | None = None
    clock: time | None = None
    line_date: date | None = None  # date written on the weekday line
    headline = ""
    for raw in header:
        line = raw.strip()
        if not line:
            continue
        if day is None and line[:5].lower() == "date ":
            try:
                day = date.fromisoformat(line.split()[1])
                continue
            except (ValueError, IndexError):
                pass
        if clock is None and line_date is None:
            m = _DATELINE.fullmatch(line)
            if m is not None:
                month = _MONTHS.get(m.group(2).lower())
                try:
                    if month is not None:
                        line_date = date(int(m.group(3)), month, int(m.group(1)))
                    if m.group(4) is not None:
                        clock = time(int(m.group(4)), int(m.group(5)), int(m.group(6) or 0))
                    else:
                        clock = time(0, 0)
                except ValueError:
                    pass
                continue
        headline = line  # the last other non-blank line before Story Code
    day = day or line_date
    if day is None:
        return None, headline
    return datetime.combine(day, clock or time(0, 0)), headline


def parse_story_text(text: str, source: str) -> Story:
    """Parse one scraped story page; raise :class:`StoryError` if it is not one."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _without_controls(text)
    if not text.strip():
        raise StoryError("story: empty file")
    lines = text.split("\n")
    code_at = _story_code_index(lines, text)
    if code_at < 0:
        raise StoryError("id: not a story, no 'Story Code :' line")

    value = lines[code_at].strip()[len(_STORY_CODE) :].strip()
    if value.startswith(":"):
        value = value[1:].strip()
    if not value:
        raise StoryError("id: 'Story Code' line has no value")
    story_id = _check_id(value, "id (Story Code)")

    published, headline_before = _header_info(lines[:code_at])

    # The headline is repeated on the first non-blank line after Story Code.
    # If that line is something else, it already belongs to the body.
    i = code_at + 1
    n = len(lines)
    while i < n and not lines[i].strip():
        i += 1
    headline = headline_before
    if i < n:
        first = lines[i].strip()
        if first not in _FURNITURE and (not headline_before or _norm(first) == _norm(headline_before)):
            headline = first
            i += 1
    headline = _norm(headline)
    if not headline:
        raise StoryError("headline: missing or empty")

    paragraphs: list[str] = []
    append = paragraphs.append
    furniture = _FURNITURE
    for line in lines[i:]:
        line = line.strip()
        if line in furniture:
            break
        if line:
            append(" ".join(line.split()))

    return Story(
        id=story_id,
        headline=headline,
        body="\n\n".join(paragraphs),
        published=published,
        source=source,
    )


# --------------------------------------------------------------------------
# files


def parse_json_lines(text: str, source: str) -> Iterator[tuple[int, Story | None, str]]:
    """Each non-blank line of JSON Lines ``text``: its number, and its story or why it is none.

    The one JSON Lines reader: files (:func:`read_file`) and the write API's
    NDJSON bodies both use it.  ``source`` is the stories' default source.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            yield number, None, f"invalid JSON: {msg}" + (f" (column {col})" if col else "")
            continue
        if not isinstance(obj, dict):
            yield number, None, f"not a JSON object (got {type(obj).__name__})"
            continue
        try:
            yield number, story_from_mapping(obj, source), ""
        except StoryError as exc:
            yield number, None, str(exc)


def _read_jsonl(text: str, where: str, result: FileResult) -> None:
    for number, story, reason in parse_json_lines(text, where):
        if story is None:
            result.skips.append(Skip(f"{where}:{number}", reason))
        else:
            result.stories.append(story)


def read_file(path: str | os.PathLike[str]) -> FileResult:
    """Read the stories in one file: ``.jsonl`` as JSON Lines, anything else
    as a scraped ``.txt`` page (0 or 1 story).  Never raises for bad content
    or an unreadable file; those become skips and warnings."""
    where = str(path)
    result = FileResult(path=where, stories=[], skips=[], warnings=[])
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        result.skips.append(Skip(where, f"cannot read file: {exc.strerror or exc}"))
        return result
    if not data.strip():
        result.skips.append(Skip(where, "empty file"))
        return result
    text = _decode(data, where, result.warnings)
    if where.lower().endswith(".jsonl"):
        _read_jsonl(text, where, result)
        return result
    try:
        result.stories.append(parse_story_text(text, where))
    except StoryError as exc:
        result.skips.append(Skip(where, str(exc)))
    return result


def _file_key(path: str) -> tuple[int, int] | str:
    """Identity of a file (device, inode), so a file reached twice is seen once."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


def _walk(folder: str, seen: set[tuple[int, int] | str]) -> Iterator[Path]:
    try:
        device = os.stat(folder).st_dev
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return  # unreadable folder: nothing to yield
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, seen)
                continue
            if os.path.splitext(name)[1].lower() not in STORY_SUFFIXES:
                continue
            broken = entry.is_symlink() and not os.path.exists(entry.path)
            if not broken and not entry.is_file():
                continue
            if broken:
                # A dangling link or a link loop: yielded so the indexer
                # reports it as skipped with the reason, not silently.
                key: tuple[int, int] | str = entry.path
            elif entry.is_symlink():
                st = entry.stat()
                key = (st.st_dev, st.st_ino)
            else:
                key = (device, entry.inode())
        except OSError:
            continue
        if key not in seen:
            seen.add(key)
            yield Path(entry.path)


def iter_story_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yield story files from files and folders, in a deterministic order.

    A file named explicitly is yielded whatever its suffix.  Folders are
    walked recursively in name order, yielding only ``.txt`` and ``.jsonl``
    files (any case); names starting with ``.`` are skipped, and symlinked
    folders are not followed.  A file reached twice is yielded once.

    Every path is checked before anything is yielded: a path that does not
    exist raises :class:`FileNotFoundError` at call time.
    """
    given = [os.fspath(p) for p in paths]
    for p in given:
        if not os.path.exists(p):
            raise FileNotFoundError(errno.ENOENT, "story file or folder does not exist", p)

    def generate() -> Iterator[Path]:
        seen: set[tuple[int, int] | str] = set()
        for p in given:
            if os.path.isdir(p):
                yield from _walk(p, seen)
            else:
                key = _file_key(p)
                if key not in seen:
                    seen.add(key)
                    yield Path(p)

    return generate()

"""Tests for search_service.stories: the story file reader."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from search_service.stories import (
    MAX_ID_LENGTH,
    FileResult,
    Skip,
    Story,
    StoryError,
    iter_story_files,
    parse_story_text,
    read_file,
    story_from_mapping,
)

REPO = Path(__file__).resolve().parents[1]
INDEX_DATA = REPO / "index_data"
SEED = INDEX_DATA / "000_47ec975ba707a393.txt"
SEED_HEADLINE = "Iraqi Asaib Ahl Al-Haq SG: Any American Military Presence in Iraq is a Target for Resistance"
FURNITURE_HEADLINES = [
    "Palestine Slams Europeans",
    "Islam Times",
    "After Gaza Slaughter",
    "UAE Embassy in Tel Aviv",
    "Says Israel Harmful to Palestine",
]


@pytest.fixture(scope="module")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str | bytes, name: str = "story.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_bytes(text.encode("utf-8"))
    else:
        path.write_bytes(text)
    return path


def only_story(result: FileResult) -> Story:
    assert result.skips == [], result.skips
    assert len(result.stories) == 1
    return result.stories[0]


def assert_seed_like(story: Story) -> None:
    assert story.id == "935898"
    assert story.headline == SEED_HEADLINE
    assert story.body.startswith("In an interview aired Tuesday evening")
    assert story.body.endswith("full withdrawal from Iraq.")
    for furniture in FURNITURE_HEADLINES:
        assert furniture not in story.body
    assert "Related Stories" not in story.body
    assert "Featured Stories" not in story.body


# --------------------------------------------------------------------------
# the seed


def test_seed(seed_text: str) -> None:
    result = read_file(SEED)
    story = only_story(result)
    assert result.warnings == []
    assert_seed_like(story)
    assert story.published == datetime(2021, 6, 2, 9, 8)
    assert story.source == str(SEED)
    assert story.url is None
    paragraphs = story.body.split("\n\n")
    assert len(paragraphs) >= 4
    assert all(p == p.strip() and "  " not in p and "\n" not in p for p in paragraphs)
    # curly quotes and apostrophes are kept as they are
    assert "\u201cThis depends on forbearance" in story.body
    assert "Iran won\u2019t negotiate" in story.body
    # the no-break space at the end of a paragraph is gone
    assert "\u00a0" not in story.body


def test_seed_matches_shared_copy(seed_path: Path) -> None:
    assert seed_path.read_bytes() == SEED.read_bytes()


def test_to_dict_is_json_friendly() -> None:
    story = only_story(read_file(SEED))
    data = story.to_dict()
    assert data == {
        "id": "935898",
        "headline": SEED_HEADLINE,
        "body": story.body,
        "published": "2021-06-02T09:08:00",
        "source": str(SEED),
        "url": None,
    }
    json.dumps(data)
    # round trip through the shared validation
    assert story_from_mapping(data, "elsewhere") == story


def test_story_is_frozen() -> None:
    story = only_story(read_file(SEED))
    with pytest.raises(AttributeError):
        story.headline = "x"  # type: ignore[misc]


def test_parse_story_text_directly(seed_text: str) -> None:
    story = parse_story_text(seed_text, "memory")
    assert_seed_like(story)
    assert story.source == "memory"


# --------------------------------------------------------------------------
# robustness: crafted variants of the seed


def test_bom(tmp_path: Path, seed_text: str) -> None:
    result = read_file(write(tmp_path, b"\xef\xbb\xbf" + seed_text.encode()))
    story = only_story(result)
    assert result.warnings == []
    assert_seed_like(story)
    assert story.published == datetime(2021, 6, 2, 9, 8)
    # and when the BOM survives decoding elsewhere
    assert parse_story_text("\ufeff" + seed_text, "x").id == "935898"


def test_crlf(tmp_path: Path, seed_text: str) -> None:
    story = only_story(read_file(write(tmp_path, seed_text.replace("\n", "\r\n"))))
    assert_seed_like(story)
    assert "\r" not in story.body and "\r" not in story.headline
    assert story.published == datetime(2021, 6, 2, 9, 8)
    assert story.body == only_story(read_file(SEED)).body


def test_old_mac_line_endings(tmp_path: Path, seed_text: str) -> None:
    story = only_story(read_file(write(tmp_path, seed_text.replace("\n", "\r"))))
    assert_seed_like(story)


def test_non_breaking_spaces_normalised(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(SEED_HEADLINE, SEED_HEADLINE.replace(" ", "\u00a0")).replace(
        "In an interview aired", "In\u00a0an\u00a0\u00a0interview aired\u00a0"
    )
    story = only_story(read_file(write(tmp_path, text)))
    assert story.headline == SEED_HEADLINE
    assert story.body.startswith("In an interview aired Tuesday evening")
    assert "\u00a0" not in story.body and "\u00a0" not in story.headline


def test_control_characters_become_spaces(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(SEED_HEADLINE, SEED_HEADLINE.replace(" ", "\x00", 1)).replace(
        "In an interview aired", "In an\x1b[31m interview\x07aired"
    )
    story = only_story(read_file(write(tmp_path, text)))
    assert story.headline == SEED_HEADLINE
    assert story.body.startswith("In an [31m interview aired Tuesday evening")
    assert not any(ord(c) < 0x20 and c != "\n" for c in story.headline + story.body)
    posted = story_from_mapping(
        {"id": "x1", "headline": "Zinc\x00prices", "body": "Up\x1b\x00 again\n\nlater\x7f"}, "api"
    )
    assert (posted.headline, posted.body) == ("Zinc prices", "Up again\n\nlater")


def test_curly_quotes_kept(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(SEED_HEADLINE, "\u2018Israeli\u2019 \u201cOccupation\u201d Don\u2019t")
    story = only_story(read_file(write(tmp_path, text)))
    assert story.headline == "\u2018Israeli\u2019 \u201cOccupation\u201d Don\u2019t"
    assert "\u2018Israeli\u2019 occupation entity" in story.body


def test_first_line_without_leading_space(tmp_path: Path, seed_text: str) -> None:
    assert seed_text.startswith(" date ")
    story = only_story(read_file(write(tmp_path, seed_text[1:])))
    assert_seed_like(story)
    assert story.published == datetime(2021, 6, 2, 9, 8)


def test_first_line_with_more_leading_whitespace(tmp_path: Path, seed_text: str) -> None:
    story = only_story(read_file(write(tmp_path, "  \t" + seed_text[1:])))
    assert story.published == datetime(2021, 6, 2, 9, 8)


def _cut_furniture(text: str, *names: str) -> str:
    lines = text.split("\n")
    keep: list[str] = []
    dropping = False
    for line in lines:
        if line.strip() in ("Related Stories", "Comment", "Featured Stories"):
            dropping = line.strip() in names
        if not dropping:
            keep.append(line)
    return "\n".join(keep)


@pytest.mark.parametrize(
    "missing",
    [
        ("Related Stories",),
        ("Comment",),
        ("Featured Stories",),
        ("Related Stories", "Comment"),
        ("Related Stories", "Comment", "Featured Stories"),
    ],
)
def test_missing_furniture_sections(tmp_path: Path, seed_text: str, missing: tuple[str, ...]) -> None:
    text = _cut_furniture(seed_text, *missing)
    for name in missing:
        assert f"\n{name}\n" not in text + "\n"
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)
    assert story.body == only_story(read_file(SEED)).body


def test_body_ends_at_first_furniture_marker_even_if_indented(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace("\nRelated Stories\n", "\n   Related Stories  \t\n")
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)


def test_furniture_words_inside_a_paragraph_do_not_end_the_body(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(
        "In an interview aired",
        "Comment on Related Stories below.\nIn an interview aired",
    )
    story = only_story(read_file(write(tmp_path, text)))
    assert story.body.startswith("Comment on Related Stories below.\n\nIn an interview aired")
    assert story.body.endswith("full withdrawal from Iraq.")


@pytest.mark.parametrize(
    ("replace", "by", "published"),
    [
        ("Wednesday 2 June 2021 - 09:08\n", "", datetime(2021, 6, 2, 0, 0)),  # no time line: the date line's day
        # the weekday line without its time
        ("Wednesday 2 June 2021 - 09:08", "Wednesday 2 June 2021", datetime(2021, 6, 2, 0, 0)),
        # Decision: the weekday line carries the full date too, so use it when the date line is missing or bad.
        (" date 2021-06-02 0\n", "", datetime(2021, 6, 2, 9, 8)),
        (" date 2021-06-02 0", " date 2021-13-45 0", datetime(2021, 6, 2, 9, 8)),
    ],
    ids=["missing-time-line", "weekday-line-without-time", "missing-date-line", "bad-date-line"],
)
def test_date_and_time_lines(tmp_path: Path, seed_text: str, replace: str, by: str, published: datetime) -> None:
    assert replace in seed_text
    story = only_story(read_file(write(tmp_path, seed_text.replace(replace, by))))
    assert_seed_like(story)
    assert story.published == published


def test_missing_date_and_time_lines(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(" date 2021-06-02 0\n", "").replace("Wednesday 2 June 2021 - 09:08\n", "")
    assert text.startswith("\n" + SEED_HEADLINE)
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)
    assert story.published is None


def test_only_story_code_and_headline(tmp_path: Path) -> None:
    story = only_story(read_file(write(tmp_path, "Story Code : 12\nA headline\nBody.\n")))
    assert (story.id, story.headline, story.body, story.published) == ("12", "A headline", "Body.", None)


def test_extra_blank_lines_everywhere(tmp_path: Path, seed_text: str) -> None:
    text = "\n\n" + "\n\n  \n".join(seed_text.split("\n")) + "\n\n\n"
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)
    assert story.published == datetime(2021, 6, 2, 9, 8)
    assert story.body == only_story(read_file(SEED)).body


def test_paragraphs_not_separated_by_blank_lines(tmp_path: Path, seed_text: str) -> None:
    lines = [line for line in seed_text.split("\n")]
    start = lines.index("Story Code : 935898")
    end = lines.index("Related Stories")
    squeezed = lines[: start + 2] + [line for line in lines[start + 2 : end] if line.strip()] + lines[end:]
    story = only_story(read_file(write(tmp_path, "\n".join(squeezed))))
    assert story.body == only_story(read_file(SEED)).body


def test_not_utf8_bytes_replaced_with_warning(tmp_path: Path, seed_text: str) -> None:
    data = seed_text.encode("utf-8").replace(b"Tuesday evening", b"Tuesday \xe9vening\xff\xfe")
    path = write(tmp_path, data)
    result = read_file(path)
    story = only_story(result)
    assert story.body.startswith("In an interview aired Tuesday \ufffdvening\ufffd\ufffd,")
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert str(path) in warning and "not valid UTF-8" in warning and "3" in warning


def test_latin1_file(tmp_path: Path) -> None:
    text = " date 2022-01-03 0\nMonday 3 January 2022 - 10:00\n\nCaf\xe9 in Z\xfcrich\n\nStory Code : 77\nCaf\xe9 in Z\xfcrich\nBody.\n"
    result = read_file(write(tmp_path, text.encode("latin-1")))
    story = only_story(result)
    assert story.headline == "Caf\ufffd in Z\ufffdrich"
    assert "4 undecodable byte sequences" in result.warnings[0]  # 2 per headline line


def test_utf16_file_with_bom(tmp_path: Path, seed_text: str) -> None:
    result = read_file(write(tmp_path, seed_text.encode("utf-16")))
    assert result.warnings == []
    assert_seed_like(only_story(result))


def test_genuine_replacement_character_is_not_counted(tmp_path: Path) -> None:
    data = "Story Code : 5\nHead \ufffd\nBody\n".encode() + b"\xff"
    result = read_file(write(tmp_path, data))
    assert "1 undecodable byte sequence replaced" in result.warnings[0]


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n \n"])
def test_empty_file_is_skipped(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content)
    result = read_file(path)
    assert result.stories == []
    assert len(result.skips) == 1
    assert result.skips[0].where == str(path)
    assert "empty" in result.skips[0].reason


def test_no_story_code_is_skipped(tmp_path: Path, seed_text: str) -> None:
    path = write(tmp_path, seed_text.replace("Story Code : 935898\n", ""))
    result = read_file(path)
    assert result.stories == []
    assert result.skips == [Skip(str(path), result.skips[0].reason)]
    assert "Story Code" in result.skips[0].reason


def test_plain_text_is_skipped(tmp_path: Path) -> None:
    result = read_file(write(tmp_path, "Shopping list\n\nmilk\neggs\n", "notes.txt"))
    assert result.stories == [] and len(result.skips) == 1


def test_empty_headline_is_skipped(tmp_path: Path) -> None:
    text = " date 2021-06-02 0\nWednesday 2 June 2021 - 09:08\n\n\n\nStory Code : 935898\n\nRelated Stories\nOther\n"
    result = read_file(write(tmp_path, text))
    assert result.stories == []
    assert result.skips[0].reason == "headline: missing or empty"


def test_empty_body_is_still_a_story(tmp_path: Path, seed_text: str) -> None:
    head, _, rest = seed_text.partition(SEED_HEADLINE + "\nIn an interview")
    text = head + SEED_HEADLINE + "\n\nRelated Stories\n" + rest.partition("Related Stories\n")[2]
    story = only_story(read_file(write(tmp_path, text)))
    assert story.headline == SEED_HEADLINE
    assert story.body == ""


def test_headline_after_story_code_missing_uses_headline_before(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(f"Story Code : 935898\n{SEED_HEADLINE}\n", "Story Code : 935898\n")
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)


def test_headline_before_story_code_missing_uses_line_after(tmp_path: Path, seed_text: str) -> None:
    text = seed_text.replace(f"\n{SEED_HEADLINE}\n\nStory Code", "\n\nStory Code")
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)
    assert story.published == datetime(2021, 6, 2, 9, 8)


@pytest.mark.parametrize(
    "line",
    [
        "Story Code : 935898",
        "Story Code: 935898",
        "Story Code :935898",
        "Story Code:935898",
        "Story Code   :   935898  ",
        "  Story Code : 935898",
        "Story Code 935898",
        "Story code : 935898",
        "STORY CODE : 935898",
        "Story Code\t:\t935898",
    ],
)
def test_story_code_variants(tmp_path: Path, seed_text: str, line: str) -> None:
    text = seed_text.replace("Story Code : 935898", line)
    story = only_story(read_file(write(tmp_path, text)))
    assert_seed_like(story)


@pytest.mark.parametrize("code", ["", "../etc", "93 58", "a/b", "-1"])
def test_bad_story_code_is_skipped(tmp_path: Path, seed_text: str, code: str) -> None:
    result = read_file(write(tmp_path, seed_text.replace("Story Code : 935898", f"Story Code : {code}")))
    assert result.stories == []
    assert result.skips[0].reason.startswith("id")


def test_parse_story_text_raises_story_error() -> None:
    with pytest.raises(StoryError, match="Story Code"):
        parse_story_text("hello\nworld\n", "x")
    with pytest.raises(StoryError, match="empty"):
        parse_story_text("", "x")


def test_unreadable_path_is_a_skip(tmp_path: Path) -> None:
    missing = tmp_path / "gone.txt"
    result = read_file(missing)
    assert result.stories == []
    assert result.skips[0].where == str(missing)
    assert "cannot read" in result.skips[0].reason
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    assert read_file(folder).skips[0].reason.startswith("cannot read")


def test_source_is_path_as_given(tmp_path: Path, seed_text: str) -> None:
    write(tmp_path, seed_text)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert only_story(read_file("story.txt")).source == "story.txt"
        assert read_file(Path("story.txt")).path == "story.txt"
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------
# JSON Lines


def test_jsonl_good_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"id": "a1", "headline": "First", "body": "Para one.\n\nPara  two.", "published": "2022-03-09T16:05:00"}
        ),
        "",
        "   ",
        json.dumps({"id": 42, "headline": "Int id", "body": "B", "url": "https://example.org/42", "source": "wire"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "../etc", "headline": "H", "body": "B"}),
        json.dumps({"id": "ok", "headline": "", "body": "B"}),
        json.dumps({"id": "ok2", "headline": "H", "body": "B", "published": "yesterday"}),
        json.dumps({"id": "tz", "headline": "H", "body": "B", "published": "2022-03-09T16:05:00+02:00"}),
    ]
    path = write(tmp_path, "\n".join(lines) + "\n", "batch.jsonl")
    result = read_file(path)
    assert [s.id for s in result.stories] == ["a1", "42", "tz"]
    first, second, third = result.stories
    assert first.body == "Para one.\n\nPara two."
    assert first.published == datetime(2022, 3, 9, 16, 5)
    assert first.source == str(path)
    assert second.source == "wire" and second.url == "https://example.org/42"
    assert third.published == datetime(2022, 3, 9, 14, 5)
    where = {skip.where: skip.reason for skip in result.skips}
    p = str(path)
    assert set(where) == {f"{p}:5", f"{p}:6", f"{p}:7", f"{p}:8", f"{p}:9"}
    assert where[f"{p}:5"].startswith("invalid JSON")
    assert "not a JSON object" in where[f"{p}:6"]
    assert where[f"{p}:7"].startswith("id:") and "../etc" in where[f"{p}:7"]
    assert where[f"{p}:8"] == "headline: missing or empty"
    assert where[f"{p}:9"].startswith("published:")
    assert result.warnings == []


def test_jsonl_bom_crlf_and_uppercase_suffix(tmp_path: Path) -> None:
    line = json.dumps({"id": "x", "headline": "H", "body": "B"})
    path = write(tmp_path, b"\xef\xbb\xbf" + (line + "\r\n" + line.replace('"x"', '"y"') + "\r\n").encode(), "A.JSONL")
    result = read_file(path)
    assert [s.id for s in result.stories] == ["x", "y"]
    assert result.skips == []


def test_jsonl_unicode_line_separator_inside_string(tmp_path: Path) -> None:
    line = '{"id": "u", "headline": "H\u2028I", "body": "S\u00e3o Paulo \u201cquoted\u201d"}'
    story = only_story(read_file(write(tmp_path, line, "u.jsonl")))
    assert story.headline == "H I"
    assert story.body == "S\u00e3o Paulo \u201cquoted\u201d"


def test_jsonl_empty_file(tmp_path: Path) -> None:
    result = read_file(write(tmp_path, "", "e.jsonl"))
    assert result.stories == [] and result.skips[0].reason == "empty file"


# --------------------------------------------------------------------------
# story_from_mapping


def good(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {"id": "s-1", "headline": "Head", "body": "Body"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": ...}, "id"),
        ({"id": None}, "id"),
        ({"id": ""}, "id"),
        ({"id": "../etc"}, "id"),
        ({"id": "/"}, "id"),
        ({"id": "a b"}, "id"),
        ({"id": ".hidden"}, "id"),
        ({"id": "x" * (MAX_ID_LENGTH + 1)}, "id"),
        ({"id": True}, "id"),
        ({"id": 1.5}, "id"),
        ({"id": -3}, "id"),
        ({"id": "caf\u00e9"}, "id"),
        ({"headline": ...}, "headline"),
        ({"headline": "  \u00a0 "}, "headline"),
        ({"headline": 5}, "headline"),
        ({"body": ...}, "body"),
        ({"body": "\n\n "}, "body"),
        ({"body": ["a"]}, "body"),
        ({"published": "2021-02-30"}, "published"),
        ({"published": 20210601}, "published"),
        ({"url": 3}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://exa mple.org"}, "url"),
        ({"source": 7}, "source"),
    ],
)
def test_story_from_mapping_refuses(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(StoryError) as info:
        story_from_mapping(good(**overrides), "src")
    assert str(info.value).startswith(field + ":")


def test_story_from_mapping_refuses_non_mapping() -> None:
    with pytest.raises(StoryError):
        story_from_mapping(["id"], "src")  # type: ignore[arg-type]


def test_story_from_mapping_accepts() -> None:
    assert story_from_mapping(good(id=7), "src").id == "7"
    assert story_from_mapping(good(id="x" * MAX_ID_LENGTH), "src").id == "x" * MAX_ID_LENGTH
    assert story_from_mapping(good(id="Reuters:2021.06-02_a"), "src").id == "Reuters:2021.06-02_a"
    story = story_from_mapping(good(published="2021-06-02", url="http://example.org/a?b=1", extra=1), "src")
    assert story.published == datetime(2021, 6, 2)
    assert story.url == "http://example.org/a?b=1"
    assert story.source == "src"
    assert story_from_mapping(good(published="2021-06-02T23:30:00Z"), "s").published == datetime(2021, 6, 2, 23, 30)
    assert story_from_mapping(good(published="2021-06-02T01:30:00-05:00"), "s").published == datetime(2021, 6, 2, 6, 30)
    assert story_from_mapping(good(published=None, url=None, source=None), "s").source == "s"
    assert story_from_mapping(good(published="", url="", source=""), "s").published is None
    story = story_from_mapping(good(headline=" A\u00a0 B ", body="one\n two\n\n\n  three  "), "s")
    assert story.headline == "A B"
    assert story.body == "one two\n\nthree"


# --------------------------------------------------------------------------
# iter_story_files


def test_iter_story_files(tmp_path: Path) -> None:
    for rel in [
        "b.txt",
        "a.TXT",
        "c.jsonl",
        "d.Jsonl",
        "e.json",
        "f.md",
        ".hidden.txt",
        "sub/z.txt",
        "sub/y.jsonl",
        ".git/x.txt",
        "sub/.cache/w.txt",
        "aa/inner.txt",
    ]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    got = [p.relative_to(tmp_path).as_posix() for p in iter_story_files([tmp_path])]
    assert got == ["a.TXT", "aa/inner.txt", "b.txt", "c.jsonl", "d.Jsonl", "sub/y.jsonl", "sub/z.txt"]
    assert all(isinstance(p, Path) for p in iter_story_files([tmp_path]))
    # explicit files are yielded whatever their suffix; duplicates once
    explicit = list(
        iter_story_files([tmp_path / "f.md", str(tmp_path / "b.txt"), tmp_path / "sub", tmp_path / "sub/z.txt"])
    )
    assert [p.relative_to(tmp_path).as_posix() for p in explicit] == ["f.md", "b.txt", "sub/y.jsonl", "sub/z.txt"]
    assert list(iter_story_files([])) == []


def test_iter_story_files_missing_path_raises_up_front(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as info:
        iter_story_files([tmp_path, tmp_path / "nope"])
    assert "nope" in str(info.value) and "does not exist" in str(info.value)


def test_iter_story_files_does_not_follow_symlinked_folders(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text("x")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "link.txt").symlink_to(tmp_path / "real" / "a.txt")
    got = [p.name for p in iter_story_files([tmp_path])]
    assert got == ["a.txt"]


# --------------------------------------------------------------------------
# the shipped samples


def test_index_data_samples() -> None:
    files = list(iter_story_files([INDEX_DATA]))
    assert len(files) == 8
    stories = []
    for path in files:
        result = read_file(path)
        assert result.warnings == [] and result.skips == []
        stories.extend(result.stories)
    assert len({s.id for s in stories}) == 8
    assert {s.published.year for s in stories if s.published} == {2021, 2022, 2023}
    assert all(s.body.count("\n\n") >= 2 for s in stories)
    assert sum("drought" in (s.headline + s.body).lower() for s in stories) >= 2
    assert any("<script>alert(1)</script>" in s.body and "<hia>" in s.headline for s in stories)
    assert any("Z\u00fcrich" in s.body and "S\u00e3o Paulo" in s.body and "\u201c" in s.body for s in stories)
    for story in stories:
        assert "Related Stories" not in story.body and "Featured Stories" not in story.body


# --------------------------------------------------------------------------
# the whole shared Reuters corpus


def featured_headlines(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == "Featured Stories")
    heads = set()
    for line in lines[start + 1 :]:
        line = " ".join(line.split())
        if line and not (line[0].isdigit() and line[-4:].isdigit()):
            heads.add(line)
    return heads


def test_reuters_corpus(reuters_dir: Path) -> None:
    files = list(iter_story_files([reuters_dir]))
    assert len(files) == 19040
    started = time.perf_counter()
    results = [read_file(path) for path in files]
    elapsed = time.perf_counter() - started
    ids: set[str] = set()
    for path, result in zip(files, results):
        assert result.skips == [] and result.warnings == [], path
        assert len(result.stories) == 1, path
        story = result.stories[0]
        assert story.headline, path
        assert story.body, path
        assert story.published is not None, path
        ids.add(story.id)
        lines = story.body.split("\n")
        assert "Related Stories" not in lines and "Featured Stories" not in lines, path
        for head in featured_headlines(path) - {story.headline}:
            assert head not in story.body, (path, head)
    assert len(ids) == 19040
    # generous bound; the measured time is about 0.6-1 s on one core
    assert elapsed < 30, elapsed

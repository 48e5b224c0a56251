"""The indexer as users meet it: real files, real ``search-service index`` processes, a real index on disk.

Covers the "Foundation" promises: incremental runs, duplicate and moved
story codes, skipped files, crash safety (kill -9 at several moments, no
stale lock), the lock against a second writer, Ctrl-C, and a parallel build
that scores exactly like a single-process one.  Helpers shared
with ``test_cli.py`` are in ``conftest.py``.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from search_service.analysis import fold
from search_service.backends.whoosh import WhooshEngine
from search_service.backends.whoosh.indexer import PARALLEL_MIN_FILES, index_paths, open_index
from search_service.model import IndexSummary, SearchRequest

from conftest import PROCESS_TIMEOUT, Summary, generate_stories, parse_summary, run_cli, write_story

pytestmark = pytest.mark.slow  # real indexer processes, killed and interrupted


def _as_from_a_terminal() -> None:
    """Give Ctrl-C its default action, as a command typed at a terminal has it: tests run from a
    background job (``nohup ... &``) inherit SIGINT ignored, and Python then never raises on it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_process(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    """Start ``search-service ARGS`` in its own session (so a test can signal it like a terminal does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "search_service", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_as_from_a_terminal,
        **kwargs,  # type: ignore[call-overload]
    )


def kill_group(process: subprocess.Popen[str]) -> None:
    """Kill whatever is left of a process started by :func:`cli_process` (its workers too)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate(timeout=PROCESS_TIMEOUT)


def index_cli(*paths: Path, index: Path, extra: tuple[str, ...] = ()) -> tuple[Summary, str]:
    """Run ``search-service index``, check it succeeded with one summary line; return it and stderr."""
    done = run_cli("index", *map(str, paths), "--index", str(index), *extra)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return parse_summary(done.stdout), done.stderr


def search_ids(index: Path, query: str) -> list[str]:
    """Ids of every story matching ``query`` (fails if there are more than one page of 100)."""
    result = WhooshEngine(index).search(SearchRequest(q=query, per_page=100))
    assert result.total <= 100, "probe query too broad to see every hit"
    return [hit.id for hit in result.hits]


def story_count(index: Path) -> int:
    """Live stories in the last commit of ``index``."""
    return WhooshEngine(index).stats().stories


# ---------------------------------------------------------------- incremental runs


def test_files_and_folders_recursive_txt_and_jsonl(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    write_story(stories / "a.txt", "101", "Harbour cranes idle", "Dockworkers halted the cranes.")
    write_story(stories / "deep" / "er" / "b.TXT", "102", "Glacier retreat measured", "Surveyors mapped the glacier.")
    (stories / "deep" / "c.jsonl").write_text(
        '{"id": "j1", "headline": "Lighthouse keeper retires", "body": "After forty winters."}\n'
        '{"id": "j2", "headline": "Orchard frost", "body": "Apple blossoms froze overnight."}\n',
        encoding="utf-8",
    )
    (stories / "notes.md").write_text("Story Code : 999\nnot a story file", encoding="utf-8")
    single = write_story(tmp_path / "loose.txt", "103", "Ferry timetable changes", "The ferry sails at dawn.")
    index = tmp_path / "ix"

    summary, stderr = index_cli(stories, single, index=index)

    assert (summary.added, summary.skipped) == (5, 0), stderr
    assert story_count(index) == 5
    assert search_ids(index, "glacier") == ["102"]
    assert search_ids(index, "blossoms") == ["j2"]
    assert search_ids(index, "ferry") == ["103"]
    assert search_ids(index, "forty winters") == ["j1"]


def test_unchanged_rerun_reads_nothing(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    page = write_story(stories / "a.txt", "201", "Bakery strike", "Bakers walked out over pay.")
    write_story(stories / "b.txt", "202", "Canal reopens", "Barges queued at the lock.")
    index = tmp_path / "ix"
    index_cli(stories, index=index)
    # Same size and same mtime, other words: only a run that reads the file could notice.
    before = page.stat()
    page.write_text(page.read_text("utf-8").replace("Bakers walked", "Cobbler wrote"), encoding="utf-8")
    assert page.stat().st_size == before.st_size
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))

    summary, _ = index_cli(stories, index=index)

    assert (summary.added, summary.updated, summary.removed, summary.unchanged) == (0, 0, 0, 2)
    assert search_ids(index, "bakers") == ["201"]
    assert search_ids(index, "cobbler") == []


def test_changed_file_is_reindexed(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    page = write_story(stories / "a.txt", "301", "Vineyard harvest", "Pickers gathered the grapes early.")
    write_story(stories / "b.txt", "302", "Tram line extended", "The tram now reaches the airport.")
    index = tmp_path / "ix"
    index_cli(stories, index=index)
    write_story(page, "301", "Vineyard harvest delayed", "Hailstorms flattened the vines instead.")
    os.utime(page, ns=(time.time_ns(), page.stat().st_mtime_ns + 10**9))

    summary, _ = index_cli(stories, index=index)

    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 1)
    assert story_count(index) == 2
    assert search_ids(index, "hailstorms") == ["301"]
    assert search_ids(index, "pickers") == []


def test_story_of_vanished_file_is_removed_only_under_indexed_folders(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    gone = write_story(first / "a.txt", "401", "Quarry closes", "The limestone quarry shut.")
    write_story(first / "b.txt", "402", "Kite festival", "Kites filled the beach sky.")
    write_story(second / "c.txt", "403", "Beekeepers report", "Hives thrived this spring.")
    index = tmp_path / "ix"
    index_cli(first, second, index=index)
    gone.unlink()

    summary, _ = index_cli(first, index=index)  # the second folder is not part of this run

    assert (summary.added, summary.removed, summary.unchanged) == (0, 1, 1)
    assert search_ids(index, "limestone") == []
    assert search_ids(index, "hives") == ["403"]
    assert story_count(index) == 2


def test_duplicate_codes_in_one_run_are_one_story_later_file_wins(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    write_story(stories / "a.txt", "501", "Tide tables", "Earlier copy mentions walrus.")
    write_story(stories / "b" / "b.txt", "501", "Tide tables revised", "Later copy mentions narwhal.")
    (stories / "c.jsonl").write_text(
        '{"id": "502", "headline": "Salt flats", "body": "first line pelican"}\n'
        '{"id": "502", "headline": "Salt flats", "body": "second line flamingo"}\n',
        encoding="utf-8",
    )
    index = tmp_path / "ix"

    summary, _ = index_cli(stories, index=index)

    assert (summary.added, summary.duplicates) == (2, 2)
    assert story_count(index) == 2
    assert search_ids(index, "narwhal") == ["501"]
    assert search_ids(index, "walrus") == []
    assert search_ids(index, "flamingo") == ["502"]
    assert search_ids(index, "pelican") == []


def test_code_moved_to_another_file_replaces_and_stays_stable(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    old = write_story(stories / "a.txt", "601", "Bridge inspection", "Engineers found rust on the girders.")
    write_story(stories / "b.txt", "602", "Library extends hours", "Readers welcomed late opening.")
    index = tmp_path / "ix"
    index_cli(stories, index=index)
    write_story(old, "603", "Bridge inspection schedule", "Inspections resume in autumn.")
    write_story(stories / "z.txt", "601", "Bridge repainted", "Painters covered the girders in green.")

    moved, _ = index_cli(stories, index=index)
    assert (moved.added, moved.updated, moved.removed) == (1, 1, 0)
    for _ in range(2):  # later runs neither read nor flip anything
        again, _ = index_cli(stories, index=index)
        assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
        assert story_count(index) == 3
        assert search_ids(index, "painters") == ["601"]
        assert search_ids(index, "rust") == []
        assert search_ids(index, "autumn") == ["603"]


# ---------------------------------------------------------------- skips


def test_bad_files_are_skipped_with_reasons_and_strict_fails(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    write_story(stories / "good.txt", "701", "Snowplough fleet grows", "The town bought four ploughs.")
    (stories / "empty.txt").write_text("", encoding="utf-8")
    (stories / "nocode.txt").write_text("Just a note\n\nwith no story code at all\n", encoding="utf-8")
    (stories / "lines.jsonl").write_text(
        '{"id": "j7", "headline": "Hedgehog census", "body": "Volunteers counted hedgehogs."}\n'
        '{"id": "j8", "headline": \n'
        '{"id": "j9", "body": "no headline"}\n',
        encoding="utf-8",
    )
    index = tmp_path / "ix"

    summary, stderr = index_cli(stories, index=index)

    assert (summary.added, summary.skipped) == (2, 4)
    assert re.search(rf"skipped {re.escape(str(stories / 'empty.txt'))}: .*empty", stderr)
    assert re.search(rf"skipped {re.escape(str(stories / 'nocode.txt'))}: .*Story Code", stderr)
    assert re.search(rf"skipped {re.escape(str(stories / 'lines.jsonl'))}:2: .*JSON", stderr)
    assert re.search(rf"skipped {re.escape(str(stories / 'lines.jsonl'))}:3: headline", stderr)
    assert search_ids(index, "hedgehogs") == ["j7"]

    (stories / "nocode.txt").write_text("Still no story code here\n", encoding="utf-8")
    strict = run_cli("index", str(stories), "--index", str(index), "--strict")
    assert strict.returncode != 0
    assert "skipped" in strict.stderr and "--strict" in strict.stderr
    assert "Traceback" not in strict.stderr
    assert parse_summary(strict.stdout).skipped == 4  # the changed file and the three still broken


def test_a_rerun_reports_broken_files_again_and_strict_still_fails(tmp_path: Path) -> None:
    stories = tmp_path / "stories"
    write_story(stories / "good.txt", "702", "Ferry timetable", "The ferry sails at noon.")
    (stories / "nocode.txt").write_text("A note with no story code\n", encoding="utf-8")
    (stories / "lines.jsonl").write_text(
        '{"id": "j10", "headline": "Otters return", "body": "Otters were seen."}\n{"id": "j11"}\n', encoding="utf-8"
    )
    index = tmp_path / "ix"
    index_cli(stories, index=index)

    for _ in range(2):  # nothing changed: the same skips, every run
        again = run_cli("index", str(stories), "--index", str(index), "--strict")
        assert again.returncode != 0 and "--strict" in again.stderr
        summary = parse_summary(again.stdout)
        assert (summary.added, summary.skipped) == (0, 2), again.stdout
        assert ", 2 files unchanged;" in again.stdout and "2 files or lines were skipped (--strict)" in again.stderr
        assert f"skipped {stories / 'nocode.txt'}: " in again.stderr
        assert f"skipped {stories / 'lines.jsonl'}:2: " in again.stderr

    (stories / "lines.jsonl").write_text('{"id": "j10", "headline": "Otters return", "body": "Otters were seen."}\n')
    one = run_cli("index", str(stories), "--index", str(index), "--strict")
    assert "1 file or line was skipped (--strict)" in one.stderr
    write_story(stories / "nocode.txt", "703", "Fixed at last", "The note became a story.")
    fixed = run_cli("index", str(stories), "--index", str(index), "--strict")
    assert fixed.returncode == 0, fixed.stderr
    assert parse_summary(fixed.stdout).skipped == 0
    assert run_cli("index", str(stories), "--index", str(index), "--strict").returncode == 0


def test_the_summary_counts_in_english() -> None:
    one = IndexSummary(unchanged_files=1, duplicates=1, warnings=["w"]).line()
    assert "1 duplicate story code (the later file won), 1 file unchanged, 1 warning;" in one
    two = IndexSummary(unchanged_files=2, duplicates=2, warnings=["w", "v"]).line()
    assert "2 duplicate story codes (the later file won), 2 files unchanged, 2 warnings;" in two


# ---------------------------------------------------------------- crash safety, locking, Ctrl-C


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough generated story files that a parallel run takes a noticeable while."""
    folder = tmp_path_factory.mktemp("big-corpus")
    generate_stories(folder, 6000, seed=11)
    return folder


@pytest.fixture()
def base_index(tmp_path: Path) -> tuple[Path, Path]:
    """A committed index of a few stories, and the folder they came from."""
    folder = tmp_path / "base"
    write_story(folder / "keep.txt", "B1", "Marmalade championship", "Judges tasted marmalade.")
    generate_stories(folder / "more", 99, seed=3, first_code=900_000)
    index = tmp_path / "ix"
    assert index_paths([folder], index).added == 100
    return folder, index


def _index_files(index: Path) -> set[str]:
    try:
        return set(os.listdir(index))
    except FileNotFoundError:
        return set()


def _wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> bool:
    """Poll ``condition`` every millisecond until it holds; False if the process ended first."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.001)
    raise AssertionError("timed out waiting for the indexer")


def _new_file(index: Path, before: set[str], pattern: str) -> Callable[[], bool]:
    """True once a file matching ``pattern`` that was not in ``before`` exists in ``index``."""
    return lambda: any(re.fullmatch(pattern, name) for name in _index_files(index) - before)


def _after(seconds: float) -> Callable[[Path, set[str]], Callable[[], bool]]:
    def moment(index: Path, before: set[str]) -> Callable[[], bool]:
        start = time.monotonic()
        return lambda: time.monotonic() - start > seconds

    return moment


#: When to kill the indexer: by the clock, and at the steps of a run as seen on disk.
MOMENTS: dict[str, Callable[[Path, set[str]], Callable[[], bool]]] = {
    "lock taken, building": lambda ix, before: _new_file(ix, before, r"MAIN_\w+\.pst"),
    "after 0.5 s": _after(0.5),
    "after 1 s": _after(1.0),
    "a worker's segment finished": lambda ix, before: _new_file(ix, before, r"MAIN_\w+\.seg"),
    "manifest written, committing": lambda ix, before: _new_file(ix, before, r"search_service_files_\d+\.json\.gz"),
    "deletion index written, committing": lambda ix, before: _new_file(ix, before, r"search_service_spelling_\d+\.npz"),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_9_leaves_last_commit_searchable_and_next_run_completes(
    moment: str, big_corpus: Path, base_index: tuple[Path, Path]
) -> None:
    base, index = base_index
    before = _index_files(index)
    process = cli_process("index", str(base), str(big_corpus), "--index", str(index), "--procs", "3")
    try:
        reached = _wait_until(MOMENTS[moment](index, before), process)
        process.send_signal(signal.SIGKILL)  # the parent only, as a crash would; workers notice and stop
        process.wait(timeout=PROCESS_TIMEOUT)
        assert reached, f"the run finished before {moment!r}: {process.stderr.read() if process.stderr else ''}"

        # Either the old commit or the whole new one, never a mix, and searchable.
        assert story_count(index) in (100, 6100)
        assert search_ids(index, "marmalade") == ["B1"]

        summary = index_paths([base, big_corpus], index, timeout=0)  # no stale lock: no wait allowed
        assert story_count(index) == 6100
        assert summary.added + summary.updated in (0, 6000)
        assert search_ids(index, "marmalade") == ["B1"]
    finally:
        kill_group(process)


def test_second_indexer_is_refused_with_a_clear_message(big_corpus: Path, base_index: tuple[Path, Path]) -> None:
    base, index = base_index
    before = _index_files(index)
    first = cli_process("index", str(base), str(big_corpus), "--index", str(index))
    try:
        assert _wait_until(_new_file(index, before, r"MAIN_\w+\.pst"), first)
        second = run_cli("index", str(base), "--index", str(index))
        out, err = first.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        kill_group(first)

    assert second.returncode != 0
    assert "another indexer is writing" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err
    assert parse_summary(out).added == 6000
    assert story_count(index) == 6100


def test_ctrl_c_commits_nothing_and_exits_130(big_corpus: Path, base_index: tuple[Path, Path]) -> None:
    base, index = base_index
    before = _index_files(index)
    process = cli_process("index", str(base), str(big_corpus), "--index", str(index))
    try:
        assert _wait_until(_new_file(index, before, r"MAIN_\w+\.pst"), process)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C at a terminal does: the whole group
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        kill_group(process)

    assert process.returncode == 130, err
    assert "interrupted: nothing was committed" in err
    assert "Traceback" not in err
    assert out == ""
    assert story_count(index) == 100
    assert search_ids(index, "marmalade") == ["B1"]
    assert index_paths([base, big_corpus], index, timeout=0).added == 6000


# ---------------------------------------------------------------- parallel build equals a single-process build


def _build_statistics(index: Path, terms: list[str], queries: list[str]) -> dict[str, object]:
    engine = WhooshEngine(index)
    ix = open_index(index)
    with ix.searcher() as searcher:
        reader = searcher.reader()
        stats: dict[str, object] = {
            "docs": searcher.doc_count(),
            "body length": reader.field_length("body"),
            "headline length": reader.field_length("headline"),
            "df": {(f, t): reader.doc_frequency(f, t) for t in terms for f in ("headline", "body")},
            "stored": sorted(
                (d["id"], d["headline"], d["body"]) for d in searcher.all_stored_fields() if d["id"] in DUPLICATED
            ),
        }
    results = {}
    for q in queries:
        found = engine.search(SearchRequest(q=q, per_page=20))
        results[q] = (found.total, [(hit.id, hit.score) for hit in found.hits])
    stats["queries"] = results
    return stats


DUPLICATED = {str(100_000 + i) for i in range(0, 1000, 97)}


def test_parallel_build_scores_like_a_single_process_build(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    generate_stories(corpus, 1000, seed=5)
    # Story codes repeated in later files, so workers must agree on which copy wins.
    for n, code in enumerate(sorted(DUPLICATED)):
        write_story(corpus / "zz" / f"dup{n}.txt", code, f"Revised edition {n}", f"replacement text number {n}")
    assert 1000 + len(DUPLICATED) >= PARALLEL_MIN_FILES

    single, parallel = tmp_path / "one", tmp_path / "three"
    one = index_paths([corpus], single, procs=1)
    three = index_paths([corpus], parallel, procs=3)
    assert (one.added, one.duplicates) == (three.added, three.duplicates) == (1000, len(DUPLICATED))
    assert len({p.name for p in parallel.glob("*.seg")}) > len({p.name for p in single.glob("*.seg")})

    with open_index(single).reader() as reader:
        lexicon = [t.decode("utf-8") for t in reader.lexicon("body")]
        sample = reader.stored_fields(7)
    terms = [*lexicon[:: max(1, len(lexicon) // 12)][:12], "revised"]
    body_words, headline_word = sample["body"].split(), sample["headline"].split()[0].lower()
    queries = [
        *terms[:4],
        f"{terms[4]} {terms[5]}",
        f'"{body_words[0]} {body_words[1]}"',
        f"headline:{headline_word}",
        "revised edition",
    ]
    a, b = _build_statistics(single, terms, queries), _build_statistics(parallel, terms, queries)

    assert a["docs"] == b["docs"] == 1000
    assert a["body length"] == b["body length"] > 0
    assert a["headline length"] == b["headline length"] > 0
    assert a["df"] == b["df"] and any(a["df"].values())  # type: ignore[union-attr]
    assert a["stored"] == b["stored"] and all(h.startswith("Revised") for _, h, _ in a["stored"])  # type: ignore[union-attr]
    for q in queries:
        (total_a, hits_a), (total_b, hits_b) = a["queries"][q], b["queries"][q]  # type: ignore[index]
        assert total_a == total_b > 0, q
        assert sorted(s for _, s in hits_a) == pytest.approx(sorted(s for _, s in hits_b), abs=1e-6), q
        scores_b = dict(hits_b)
        for story_id, score in hits_a:
            if story_id in scores_b:
                assert score == pytest.approx(scores_b[story_id], abs=1e-6), (q, story_id)


# ---------------------------------------------------------------- the Reuters corpus


def test_reuters_index_has_every_story(reuters_index: Path, reuters_dir: Path) -> None:
    assert sum(1 for _ in reuters_dir.rglob("*.txt")) == 19040
    assert story_count(reuters_index) == 19040


def _furniture_headlines(page: str) -> tuple[list[str], list[str]]:
    """(Related, Featured) headlines of a scraped page."""
    lines = [line.strip() for line in page.splitlines()]
    related: list[str] = []
    if "Related Stories" in lines:
        start = lines.index("Related Stories") + 1
        end = lines.index("Comment", start) if "Comment" in lines[start:] else len(lines)
        related = lines[start:end:2]
    featured: list[str] = []
    if "Featured Stories" in lines:
        rest = lines[lines.index("Featured Stories") + 1 :]
        featured = [a for a, b in itertools.pairwise(rest) if a and a == b]
    return related, featured


def _plain(text: str) -> str:
    return " " + " ".join(re.sub(r"[\W_]+", " ", fold(text)).split()) + " "


def test_reuters_page_furniture_is_not_searchable(reuters_index: Path, reuters_dir: Path) -> None:
    engine = WhooshEngine(reuters_index)
    probes = 0
    found_elsewhere = 0
    for page in sorted(reuters_dir.rglob("*.txt"))[::97]:
        story = engine.story(re.search(r"Story Code : (\S+)", page.read_text("utf-8")).group(1))  # type: ignore[union-attr]
        assert story is not None, page
        related, featured = _furniture_headlines(page.read_text("utf-8"))
        own = _plain(story.headline + " " + story.body)
        for headline in related[:1] + featured[:2]:
            if not re.fullmatch(r"[A-Za-z0-9 ]+", headline) or len(headline.split()) < 3:
                continue
            if _plain(headline) in own:
                continue  # the story itself says it: a hit would be right
            result = engine.search(SearchRequest(q=f'"{headline}"', per_page=100))
            ids = [hit.id for hit in result.hits]
            assert result.total <= 100, headline
            assert story.id not in ids, f"{page.name} found by its furniture headline {headline!r}"
            probes += 1
            found_elsewhere += bool(ids)
    assert probes >= 100
    assert found_elsewhere >= probes // 4  # the phrases do find the stories they are the headline of

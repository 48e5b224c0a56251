"""Shared fixtures: the read-only ``shared/`` folder beside the repo.

``shared/`` sits next to the repo (``/work/shared`` for ``/work/main``, and
beside the CI clone too).  Set SEARCH_SERVICE_SHARED to point elsewhere.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SEED_NAME = "000_47ec975ba707a393.txt"
#: Fixtures that read ../shared: their tests are marked ``needs_shared`` (and ``slow``).
SHARED_FIXTURES = {"reuters_dir", "reuters_index", "reuters_server", "seed_path"}
#: Fixtures that start a real server process.
SERVER_FIXTURES = {"sample_server", "reuters_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers from what a test uses: the shared corpora or a server process make it ``slow``."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SHARED_FIXTURES:
            item.add_marker(pytest.mark.needs_shared)
        if used & (SHARED_FIXTURES | SERVER_FIXTURES):
            item.add_marker(pytest.mark.slow)


def shared_dir() -> Path:
    env = os.environ.get("SEARCH_SERVICE_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def reuters_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 19,040 Reuters stories, extracted once per session."""
    tarball = shared_dir() / "corpora" / "reuters-stories.tar.gz"
    if not tarball.is_file():
        pytest.skip("needs ../shared/corpora/reuters-stories.tar.gz (the shared Reuters corpus); present in CI")
    target = tmp_path_factory.mktemp("reuters")
    with tarfile.open(tarball) as tar:
        tar.extractall(target, filter="data")
    return target / "stories_reuters"


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The real scraped seed story in ``shared/seeds``."""
    path = shared_dir() / "seeds" / SEED_NAME
    if not path.is_file():
        pytest.skip(f"needs ../shared/seeds/{SEED_NAME} (the shared seed story); present in CI")
    return path


REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "index_data"


@pytest.fixture(scope="session")
def reuters_index(reuters_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Whoosh index of the whole Reuters corpus, built once per session. Read-only for tests."""
    from search_service.backends.whoosh.indexer import index_paths

    index_dir = tmp_path_factory.mktemp("reuters-index") / "index"
    summary = index_paths([reuters_dir], index_dir)
    assert summary.added == 19040, summary.line()
    return index_dir


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the sample stories shipped in index_data/. Read-only for tests."""
    from search_service.backends.whoosh.indexer import index_paths

    index_dir = tmp_path_factory.mktemp("sample-index") / "index"
    index_paths([SAMPLES], index_dir)
    return index_dir


RTL_STORIES = REPO / "tests" / "stories_rtl"


@pytest.fixture(scope="session")
def rtl_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the Arabic and Persian story files in tests/stories_rtl (and one English). Read-only."""
    from search_service.backends.whoosh.indexer import index_paths

    index_dir = tmp_path_factory.mktemp("rtl-index") / "index"
    summary = index_paths([RTL_STORIES], index_dir)
    assert (summary.added, summary.skips) == (5, []), summary.line()
    return index_dir


class LiveServer:
    """A real ``search-service serve`` process (waitress) on a free port."""

    def __init__(self, index_dir: Path, env: dict[str, str] | None = None, *args: str) -> None:
        import subprocess
        import sys
        import tempfile

        # stderr to a file: a pipe nobody reads would fill up and stall the server.
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="search-service-")  # noqa: SIM115 - closed by stop()
        full_env = {**os.environ, "SEARCH_SERVICE_RATE_LIMIT": "off", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "search_service", "serve", "--index", str(index_dir), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=full_env,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "http://" not in line:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.logged()}")
        self.url = line[line.index("http://") :].split()[0].rstrip("/")

    def logged(self) -> str:
        """What the server has logged on stderr so far."""
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> str:
        """Stop the server; return what it logged on stderr."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        logged = self.logged()
        self.log.close()
        return logged


@pytest.fixture(scope="session")
def sample_server(sample_index: Path):
    """A live server over the sample stories (rate limit off)."""
    server = LiveServer(sample_index)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rtl_server(rtl_index: Path):
    """A live server over the Arabic and Persian stories (rate limit off)."""
    server = LiveServer(rtl_index)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def reuters_server(reuters_index: Path):
    """A live server over the Reuters index (rate limit off)."""
    server = LiveServer(reuters_index)
    yield server
    server.stop()


#: Generous bound against hangs; no speed is asserted here (see bench/).
PROCESS_TIMEOUT = 120

SUMMARY = re.compile(
    r"(?P<added>\d+) added, (?P<updated>\d+) updated, (?P<removed>\d+) removed, (?P<skipped>\d+) skipped"
    r"(?:, (?P<duplicates>\d+) duplicate story codes? \(the later file won\))?"
    r"(?:, (?P<unchanged>\d+) files? unchanged)?"
    r"(?:, \d+ warnings?)?"
    r"; \d+\.\d s, [\d,]+ stories/s$"
)


# ---------------------------------------------------------------- posting blocks

#: Postings a block in tests that need a word's postings in several blocks (the index's are
#: ``schema.CODEC``'s 4,096, which only a corpus of tens of thousands of stories fills).
SMALL_BLOCK = 512


@contextmanager
def small_posting_blocks() -> Iterator[int]:
    """Segments written meanwhile (ours and Whoosh's writer's) have blocks of :data:`SMALL_BLOCK`
    postings; what reads them does not depend on the size."""
    from search_service.backends.whoosh.schema import CODEC

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CODEC, "_blocklimit", SMALL_BLOCK)
        yield SMALL_BLOCK


# ---------------------------------------------------------------- story files and CLI runs (test_indexer, test_cli)


def story_page(
    code: str, headline: str, body: str, related: tuple[str, ...] = (), featured: tuple[str, ...] = ()
) -> str:
    """A scraped story page in the archive's format, page furniture included."""
    furniture = "Related Stories\n" + "".join(f"{h}\nSomewhere - {h} ...\n" for h in related)
    furniture += "Comment\n\n\nFeatured Stories\n" + "".join(f"{h}\n{h}\n2 June 2021\n" for h in featured)
    return (
        f" date 2021-06-02 0\nWednesday 2 June 2021 - 09:08\n\n{headline}\n\n"
        f"Story Code : {code}\n{headline}\n{body}\n{furniture}"
    )


def write_story(path: Path, code: str, headline: str, body: str, **furniture: tuple[str, ...]) -> Path:
    """Write one story page to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(story_page(code, headline, body, **furniture), encoding="utf-8")
    return path


_SYLLABLES = ["ka", "lo", "mi", "ter", "san", "vo", "ru", "pel", "dor", "qui", "zan", "bex", "nu", "fy"]


def generate_stories(folder: Path, count: int, seed: int = 7, first_code: int = 100_000) -> list[Path]:
    """``count`` story files with Zipf-like made-up vocabulary, so term statistics vary like real text."""
    rng = random.Random(seed)
    vocabulary = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(4000)})

    def words(n: int) -> str:
        return " ".join(vocabulary[int(rng.paretovariate(0.9)) % len(vocabulary)] for _ in range(n))

    paths = []
    for i in range(count):
        headline = words(rng.randint(4, 9)).title()
        body = "\n\n".join(words(rng.randint(15, 80)) + "." for _ in range(rng.randint(2, 6)))
        paths.append(
            write_story(
                folder / f"{i // 500:02d}" / f"s{i:05d}.txt",
                str(first_code + i),
                headline,
                body,
                featured=(words(6).title(),),
            )
        )
    return paths


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = PROCESS_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``search-service ARGS`` as a real process with pipes for stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "search_service", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Summary:
    """The counts on the summary line of ``search-service index``."""

    added: int
    updated: int
    removed: int
    skipped: int
    duplicates: int
    unchanged: int


def parse_summary(stdout: str) -> Summary:
    """The counts of the single summary line in ``stdout``."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    found = SUMMARY.search(lines[0])
    assert found, lines[0]
    return Summary(**{k: int(v or 0) for k, v in found.groupdict().items()})


#: The write API's token in tests that turn it on.
TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


#: The keys of a hit and of a search result in the API's JSON, as the OpenAPI document promises them.
HIT_KEYS = {"id", "headline", "published", "score", "highlights", "similar"}
SEARCH_KEYS = {
    "query",
    "total",
    "page",
    "per_page",
    "sort",
    "took_ms",
    "hits",
    "suggestion",
    "facets",
    "corrected_from",
    "notice",
}

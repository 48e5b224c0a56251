"""Shared fixtures: the read-only ``shared/`` folder beside the repo.

``shared/`` sits next to the repo (``/work/shared`` for ``/work/main``, and
beside the CI clone too).  Set SEARCH_SERVICE_SHARED to point elsewhere.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

SEED_NAME = "000_47ec975ba707a393.txt"


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
        pytest.skip(
            "needs ../shared/corpora/reuters-stories.tar.gz "
            "(the shared Reuters corpus); present in CI"
        )
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
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="search-service-")
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

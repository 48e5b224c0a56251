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

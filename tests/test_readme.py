"""Every curl example in README.md works against a live server on the sample stories."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SAMPLES, LiveServer

pytestmark = pytest.mark.slow  # the README against a live server

TOKEN = "secret"


def readme_curls() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.startswith("    curl ")]


def test_readme_has_the_two_commands_first() -> None:
    """The README starts with the serve command and the test command, and .ci/run runs the latter."""
    commands = [line.strip() for line in (REPO / "README.md").read_text().splitlines() if line.startswith("    ")]
    assert commands[0] == "pip install -e . && search-service serve"
    assert commands[1] == "pip install -e '.[test]' && python -m pytest"
    assert commands[1] in (REPO / ".ci" / "run").read_text()


@pytest.fixture(scope="module")
def token_server(sample_index: Path, tmp_path_factory: pytest.TempPathFactory):
    index_dir = tmp_path_factory.mktemp("readme") / "index"
    shutil.copytree(sample_index, index_dir)
    server = LiveServer(index_dir, {"SEARCH_SERVICE_TOKEN": TOKEN})
    yield server
    server.stop()


def run_curl(command: str, base_url: str) -> tuple[int, dict]:
    args = shlex.split(command.replace("http://localhost:8080", base_url))
    done = subprocess.run([*args, "-sS", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command (.ci/run installs it)")
def test_every_curl_example_runs(token_server: LiveServer) -> None:
    examples = readme_curls()
    assert len(examples) >= 10
    results = [run_curl(command, token_server.url) for command in examples]
    statuses = [status for status, _ in results]
    repaired = results[next(i for i, c in enumerate(examples) if "*ought" in c)][1]
    assert "end of a word" in repaired["notice"]
    bad_query = next(i for i, c in enumerate(examples) if "per_page=500" in c)
    assert statuses[bad_query] == 400 and "per_page" in results[bad_query][1]["error"]["message"]
    assert all(200 <= s < 300 for i, s in enumerate(statuses) if i != bad_query), list(zip(examples, statuses))
    first = results[0][1]
    assert first["total"] >= 2 and "<mark>" in first["hits"][0]["highlights"]["headline"] + "".join(
        first["hits"][0]["highlights"]["body"]
    )
    newest = next(body for c, (_, body) in zip(examples, results) if "q=*&" in c)
    assert newest["total"] == len(list(SAMPLES.glob("*.txt"))) and len(newest["hits"]) == 3
    assert [h["published"] for h in newest["hits"]] == sorted((h["published"] for h in newest["hits"]), reverse=True)
    typo = next(body for c, (_, body) in zip(examples, results) if "q=drout" in c)
    assert (typo["query"], typo["corrected_from"]) == ("drought", "drout") and typo["total"] > 0
    added = next(body for c, (_, body) in zip(examples, results) if "-X POST" in c)
    assert added["ids"] == ["demo-1"]

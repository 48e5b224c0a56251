"""``search-service`` as a user runs it: real processes, pipes and pseudo-terminals, a real index on disk."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import requests

from conftest import PROCESS_TIMEOUT, SAMPLES, LiveServer, generate_stories, parse_summary, run_cli

pytestmark = pytest.mark.slow  # real search-service processes

ANSI = "\x1b["


def run_on_terminal(*args: str, terminal: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``search-service ARGS`` with ``terminal`` ("stdout" or "stderr") on a pseudo-terminal.

    Returns (exit code, what the terminal showed, what the other stream's pipe got).
    """
    controller, device = pty.openpty()
    fcntl.ioctl(device, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns, as a real terminal has
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, terminal: device}
    process = subprocess.Popen([sys.executable, "-m", "search_service", *args], cwd=cwd, **streams)  # type: ignore[call-overload]
    os.close(device)
    shown = bytearray()
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], PROCESS_TIMEOUT)
            if not ready:
                raise AssertionError("no output from the process on the terminal")
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        other = process.communicate(timeout=PROCESS_TIMEOUT)[1 if terminal == "stdout" else 0]
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, shown.decode("utf-8", "replace"), other.decode("utf-8", "replace")


@pytest.fixture()
def samples(tmp_path: Path) -> Path:
    """The sample stories of index_data/, copied so the test can't write beside the real ones."""
    folder = tmp_path / "stories"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("index"))
    assert len(list(folder.glob("*.txt"))) == 8
    return folder


@pytest.fixture(scope="module")
def sample_cli_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The samples indexed by the real command; read-only for the tests below."""
    index = tmp_path_factory.mktemp("cli") / "ix"
    done = run_cli("index", str(SAMPLES), "--index", str(index))
    assert done.returncode == 0, done.stderr
    return index


# ---------------------------------------------------------------- help


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ((), ["index", "search", "serve", "--verbose", "Typical use"]),
        (("index",), ["PATHS", "--index", "--strict", "--procs", "SEARCH_SERVICE_INDEX", ".jsonl", "incremental"]),
        (("search",), ["QUERY", "--index", "--limit", "--sort", "relevance"]),
        (("serve",), ["--index", "--stories", "--host", "--port", "--threads", "SEARCH_SERVICE_TOKEN"]),
    ],
)
def test_help_reads_well(command: tuple[str, ...], mentions: list[str]) -> None:
    done = run_cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ")
    for word in mentions:
        assert word in done.stdout, f"{' '.join(command)} --help does not mention {word}"
    assert max(len(line) for line in done.stdout.splitlines()) <= 100


# ---------------------------------------------------------------- index: where, what it prints


def test_default_index_is_index_data_index_in_the_working_folder(tmp_path: Path, samples: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SEARCH_SERVICE_INDEX"}
    done = subprocess.run(
        [sys.executable, "-m", "search_service", "index", str(samples)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{Path('index_data') / 'index'}: 8 added")
    assert list((tmp_path / "index_data" / "index").glob("_MAIN_*.toc"))

    searched = subprocess.run(
        [sys.executable, "-m", "search_service", "search", "drought"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert searched.returncode == 0, searched.stderr
    assert "941207" in searched.stdout


def test_environment_overrides_the_default_index(tmp_path: Path, samples: Path) -> None:
    chosen = tmp_path / "elsewhere" / "ix"
    env = {"SEARCH_SERVICE_INDEX": str(chosen)}
    done = run_cli("index", str(samples), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{chosen}: 8 added")
    assert list(chosen.glob("_MAIN_*.toc"))
    assert not (tmp_path / "index_data").exists()

    searched = run_cli("search", "drought", cwd=tmp_path, env=env)
    assert "941207" in searched.stdout, searched.stderr
    explicit = run_cli("index", str(samples), "--index", str(tmp_path / "given"), cwd=tmp_path, env=env)
    assert explicit.stdout.startswith(f"{tmp_path / 'given'}: 8 added"), explicit.stderr


@pytest.mark.parametrize("command", [("search", "drought"), ("serve", "--port", "0"), ("index", ".")])
def test_a_bad_environment_variable_is_one_line_naming_it(tmp_path: Path, command: tuple[str, ...]) -> None:
    done = run_cli(*command, cwd=tmp_path, env={"SEARCH_SERVICE_WRITE_TIMEOUT": "soon"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: SEARCH_SERVICE_WRITE_TIMEOUT must be a number above 0, not 'soon'"
    ]


def test_an_unknown_engine_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    done = run_cli("search", "drought", cwd=tmp_path, env={"SEARCH_SERVICE_ENGINE": "lucene"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "SEARCH_SERVICE_ENGINE='lucene' names no engine; use one of: whoosh" in done.stderr


def test_piped_index_prints_one_summary_line_and_no_progress_bar(tmp_path: Path) -> None:
    generate_stories(tmp_path / "stories", 300, seed=2)
    done = run_cli("index", str(tmp_path / "stories"), "--index", str(tmp_path / "ix"))
    assert done.returncode == 0, done.stderr
    assert parse_summary(done.stdout).added == 300
    assert re.search(r"; \d+\.\d s, [\d,]+ stories/s\n$", done.stdout)
    assert "\r" not in done.stderr and "indexing" not in done.stderr
    assert done.stderr == ""


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    generate_stories(tmp_path / "stories", 600, seed=4)
    code, terminal, stdout = run_on_terminal(
        "index", str(tmp_path / "stories"), "--index", str(tmp_path / "ix"), terminal="stderr"
    )
    assert code == 0, terminal
    assert "indexing" in terminal and "\r" in terminal and "file" in terminal
    assert parse_summary(stdout).added == 600


# ---------------------------------------------------------------- search


def test_search_prints_hits_without_escapes_on_a_pipe(sample_cli_index: Path) -> None:
    done = run_cli("search", "drought", "--index", str(sample_cli_index))
    assert done.returncode == 0, done.stderr
    found = re.match(r"(\d+) stories match \(\d+ ms\)\n", done.stdout)
    assert found and int(found.group(1)) >= 2, done.stdout
    assert (
        "Drought Pushes Millions in Horn of Africa Toward Hunger, Aid Groups Warn  [941207, 2021-08-14]" in done.stdout
    )
    assert ANSI not in done.stdout and "<mark>" not in done.stdout

    limited = run_cli("search", "drought", "--index", str(sample_cli_index), "-n", "1")
    assert len(re.findall(r"\[\S+, [\d-]+\]", limited.stdout)) == 1


def test_search_marks_matches_in_bold_on_a_terminal(sample_cli_index: Path) -> None:
    code, terminal, _ = run_on_terminal("search", "drought", "--index", str(sample_cli_index), terminal="stdout")
    assert code == 0, terminal
    assert "\x1b[1mdrought\x1b[0m" in terminal.lower()


def test_a_query_past_a_limit_is_a_clear_error(sample_cli_index: Path) -> None:
    done = run_cli("search", "drought " * 600, "--index", str(sample_cli_index))
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    assert "the limit is 4000" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("query", "notice"),
    [
        ("econ*omy", "end of a word"),
        ('"drought', "unclosed quote"),
        ("published:[2021 TO", "published:[2021-01-01 TO 2021-06-30]"),
    ],
)
def test_malformed_syntax_is_searched_and_the_notice_printed(query: str, notice: str, sample_cli_index: Path) -> None:
    done = run_cli("search", query, "--index", str(sample_cli_index))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("Searched for the words") and notice in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_search_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    done = run_cli("search", "drought", "--index", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "search-service index" in done.stderr
    assert "Traceback" not in done.stderr


def test_index_of_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("index", str(tmp_path / "nothing-here"), "--index", str(tmp_path / "ix"))
    assert done.returncode != 0
    assert "nothing-here" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- serve


def test_serve_builds_a_missing_index_from_stories_first(tmp_path: Path, samples: Path) -> None:
    index = tmp_path / "ix"
    server = LiveServer(index, None, "--stories", str(samples))
    try:
        health = requests.get(f"{server.url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["stories"] == 8
        found = requests.get(f"{server.url}/api/search", params={"q": "pastoralists"}, timeout=10).json()
        assert [hit["id"] for hit in found["hits"]] == ["941207"]
    finally:
        log = server.stop()
        if server.process.stdout:  # LiveServer.stop() leaves its stdout pipe open
            server.process.stdout.close()
    assert "building the index" in log and "8 added" in log
    assert list(index.glob("_MAIN_*.toc"))


def test_serve_without_index_or_stories_says_what_to_do(tmp_path: Path) -> None:
    done = run_cli("serve", "--index", str(tmp_path / "ix"), "--stories", str(tmp_path / "none"), "--port", "0")
    assert done.returncode == 1
    assert "search-service index" in done.stderr
    assert "Traceback" not in done.stderr

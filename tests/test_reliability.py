"""Reliability with real processes: indexing under a serving server, kill -9, a full disk, rate limits, logs.

Every scenario runs the real ``search-service`` command in a subprocess
against a real index on disk, and a real server (``LiveServer``) where a
server is involved.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from whoosh import index as whoosh_index
from whoosh.index import LockError
from whoosh.query import Term

from search_service.backends.whoosh.indexer import add_stories, index_paths
from search_service.stories import Story

from conftest import SAMPLES, LiveServer

pytestmark = pytest.mark.slow  # servers and indexers under faults

TIMEOUT = 10
SAMPLE_COUNT = len(list(SAMPLES.glob("*.txt")))
#: A word in the Reuters corpus ("BAHIA COCOA REVIEW") that no sample story has.
REUTERS_ONLY_WORD = "bahia"
#: Made-up words for synthetic stories: random enough that indexes are big, few enough to be realistic.
VOCABULARY = ["".join(random.Random(n).choices("abcdefghijklmnopqrstuvwxyz", k=4 + n % 6)) for n in range(20_000)]


def run_index(paths: list[Path], index_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search_service", "index", *map(str, paths), "--index", str(index_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_index(paths: list[Path], index_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search_service", "index", *map(str, paths), "--index", str(index_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_stories(folder: Path, prefix: str, count: int, words: int, seed: int = 0) -> None:
    """``count`` scraped-page story files of ``words`` made-up words each, ids ``{prefix}-{n}``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        body = " ".join(rng.choices(VOCABULARY, k=words))
        (folder / f"{prefix}_{n:05d}.txt").write_text(
            f"Tuesday 3 May 2022 - 10:00\n\n{prefix} story {n}\n\nStory Code : {prefix}-{n}\n"
            f"{prefix} story {n}\n{body}\n",
            encoding="utf-8",
        )


def committed(index_dir: Path) -> tuple[int, list[str]]:
    """(stories, segment ids) of the last commit, read the way a new reader would."""
    ix = whoosh_index.open_dir(index_dir)
    with ix.searcher() as searcher:
        return searcher.doc_count(), [s.segment_id() for s in ix._segments()]


def uncommitted_bytes(index_dir: Path) -> int:
    """Bytes in the index folder that belong to no committed segment: a run's work in progress."""
    try:
        _, segments = committed(index_dir)
    except Exception:  # a commit is being published right now: ask again
        return 0
    total = 0
    for root, _, files in os.walk(index_dir):
        for name in files:
            if name.startswith("_MAIN_") or name.startswith("search_service_") or name == "MAIN_WRITELOCK":
                continue
            if not any(name.startswith(f"{s}.") for s in segments):
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
    return total


def wait_for(condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


def matches(index_dir: Path, word: str) -> int:
    """Stories of the last commit whose body has ``word``."""
    with whoosh_index.open_dir(index_dir).searcher() as searcher:
        return len(searcher.search(Term("body", word), limit=None))


def searchable_with(index_dir: Path, count: int, word: str) -> None:
    """The last commit opens, has ``count`` stories, and a search for ``word`` finds some."""
    assert committed(index_dir)[0] == count
    assert matches(index_dir, word) > 0


def assert_no_orphans(index_dir: Path) -> None:
    assert uncommitted_bytes(index_dir) == 0, sorted(os.listdir(index_dir))


# ---------------------------------------------------------------- indexing while serving


def test_index_while_serving_fails_no_search_and_shows_the_batch_within_seconds(
    reuters_dir: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    index_paths([SAMPLES], index_dir)
    server = LiveServer(index_dir)
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def client(n: int) -> None:
        queries = ["oil", "prices", "bank", REUTERS_ONLY_WORD, "trade OR tariffs", "government"]
        session = requests.Session()
        while not stop.is_set():
            q = queries[(answered[0] + n) % len(queries)]
            try:
                r = session.get(f"{server.url}/api/search", params={"q": q}, timeout=TIMEOUT)
                if r.status_code != 200 or not isinstance(r.json().get("hits"), list):
                    failures.append(f"{q}: {r.status_code} {r.text[:200]}")
            except Exception as exc:  # a failed search of any kind is what this test counts
                failures.append(f"{q}: {exc!r}")
            answered[0] += 1
        session.close()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    try:
        assert (
            requests.get(
                f"{server.url}/api/search", params={"q": REUTERS_ONLY_WORD, "spell": "off"}, timeout=TIMEOUT
            ).json()["total"]
            == 0
        )
        for thread in clients:
            thread.start()
        first_toc = {p.name for p in index_dir.glob("_MAIN_*.toc")}
        indexer = start_index([reuters_dir], index_dir)
        wait_for(
            lambda: {p.name for p in index_dir.glob("_MAIN_*.toc")} - first_toc or indexer.poll() is not None,
            600,
            "the indexer's commit",
        )
        committed_at = time.monotonic()
        out, err = indexer.communicate(timeout=120)
        assert indexer.returncode == 0, err
        expected = SAMPLE_COUNT + 19040
        assert f"{19040} added" in out, out

        def visible() -> bool:
            health = requests.get(f"{server.url}/healthz", timeout=TIMEOUT).json()
            found = requests.get(
                f"{server.url}/api/search", params={"q": REUTERS_ONLY_WORD, "spell": "off"}, timeout=TIMEOUT
            ).json()
            return health["stories"] == expected and found["total"] > 0

        wait_for(visible, 10, "the new stories in the server")
        delay = time.monotonic() - committed_at
        time.sleep(1)  # a few more rounds on every server thread after the switch
        # Every server thread's searcher agrees on the count: no segment counted twice.
        counts = {requests.get(f"{server.url}/healthz", timeout=TIMEOUT).json()["stories"] for _ in range(32)}
    finally:
        stop.set()
        for thread in clients:
            if thread.ident is None:
                continue
            thread.join(timeout=30)
        server.stop()
    print(
        f"\nindex while serving: {answered[0]} searches by 4 clients, {len(failures)} failed; "
        f"new stories visible {delay:.2f} s after the commit"
    )
    assert failures == []
    assert answered[0] > 20
    assert counts == {expected}
    assert committed(index_dir)[0] == expected


# ---------------------------------------------------------------- kill -9


def test_kill_9_during_a_merge_keeps_the_last_commit_and_the_next_run_completes(tmp_path: Path) -> None:
    """Five runs leave five small segments; the sixth run's commit merges them (Whoosh's MERGE_SMALL).

    The indexer is killed while the merged segment is being written (its
    files grow in the folder), twice, at two sizes; each time the last
    commit still opens with its count, and then a run finishes the job.
    """
    stories, index_dir = tmp_path / "stories", tmp_path / "index"
    for run in range(5):
        write_stories(stories / f"run{run}", f"r{run}", 4, 6_000, seed=run)
        result = run_index([stories], index_dir, "--procs", "1")
        assert result.returncode == 0, result.stderr
    count, segments = committed(index_dir)
    assert (count, len(segments)) == (20, 5)
    write_stories(stories / "final", "final", 1, 50, seed=99)
    for threshold in (150_000, 700_000):
        indexer = start_index([stories], index_dir, "--procs", "1")
        wait_for(
            lambda t=threshold, i=indexer: uncommitted_bytes(index_dir) > t or i.poll() is not None, 120, "the merge"
        )
        assert indexer.poll() is None, "the run ended before its merge could be interrupted"
        indexer.send_signal(signal.SIGKILL)
        indexer.communicate(timeout=30)
        assert committed(index_dir) == (20, segments)
        searchable_with(index_dir, 20, VOCABULARY[7])
    result = run_index([stories], index_dir, "--procs", "1")
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout, result.stdout
    count, merged = committed(index_dir)
    assert count == 21
    assert len(merged) < len(segments), "the run did not merge"
    searchable_with(index_dir, 21, VOCABULARY[7])
    assert_no_orphans(index_dir)


def test_a_stale_lock_after_kill_9_needs_no_one_to_delete_files(tmp_path: Path) -> None:
    stories, index_dir = tmp_path / "stories", tmp_path / "index"
    index_paths([SAMPLES], index_dir)
    write_stories(stories, "lock", 800, 300)
    indexer = start_index([stories], index_dir)
    wait_for(lambda: uncommitted_bytes(index_dir) > 0 or indexer.poll() is not None, 120, "the indexer to write")
    assert indexer.poll() is None
    with pytest.raises(LockError):  # it really holds the lock
        whoosh_index.open_dir(index_dir).writer(timeout=0).cancel()
    os.kill(indexer.pid, signal.SIGKILL)  # the parent only, as a crash would; its workers must notice
    indexer.communicate(timeout=30)
    assert (index_dir / "MAIN_WRITELOCK").exists()  # the lock file stays; the lock on it must not
    result = run_index([stories, SAMPLES], index_dir)
    assert result.returncode == 0, result.stderr
    assert "800 added" in result.stdout, result.stdout
    assert committed(index_dir)[0] == SAMPLE_COUNT + 800
    assert_no_orphans(index_dir)


# ---------------------------------------------------------------- full disk


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB file system (tmpfs; else a loop-mounted ext2 image); skips with the reason if neither mounts."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if tried.returncode != 0:
        image = tmp_path / "disk.img"
        with open(image, "wb") as f:
            f.truncate(3 * 2**20)
        made = subprocess.run(["mkfs.ext2", "-q", "-F", str(image)], capture_output=True, text=True)
        looped = subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], capture_output=True, text=True)
        if made.returncode != 0 or looped.returncode != 0:
            pytest.skip(
                f"cannot mount a small file system here: tmpfs: {tried.stderr.strip()}; "
                f"loop: {made.stderr.strip()} {looped.stderr.strip()}"
            )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.root
def test_full_disk_during_a_commit_fails_cleanly_and_the_next_run_completes(small_disk: Path, tmp_path: Path) -> None:
    index_dir = small_disk / "index"
    big = tmp_path / "big"
    write_stories(big, "big", 500, 1_000)  # a 3 MB+ index: more than the disk holds
    result = run_index([SAMPLES], index_dir)
    assert result.returncode == 0, result.stderr
    word = VOCABULARY[0]
    for procs in ("3", "1"):  # worker processes fill the disk, or the indexer itself does
        result = run_index([SAMPLES, big], index_dir, "--procs", procs)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        message = result.stderr.lower()
        assert "no space left on device" in message and "last committed index is intact" in message, result.stderr
        assert committed(index_dir)[0] == SAMPLE_COUNT
        assert matches(index_dir, word) == 0  # nothing of the failed batch is visible
        assert_no_orphans(index_dir)
    result = run_index([SAMPLES], index_dir)  # the big input is no longer asked for: it just works
    assert result.returncode == 0, result.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    result = run_index([SAMPLES, big], index_dir)
    assert result.returncode == 0, result.stderr
    assert "500 added" in result.stdout, result.stdout
    searchable_with(index_dir, SAMPLE_COUNT + 500, word)


# ---------------------------------------------------------------- rate limiting


def test_rate_limit_per_client_not_on_health_checks(sample_index: Path) -> None:
    server = LiveServer(sample_index, {"SEARCH_SERVICE_RATE_LIMIT": "5/minute"})
    try:
        statuses = [
            requests.get(f"{server.url}/api/search", params={"q": "oil"}, timeout=TIMEOUT).status_code for _ in range(5)
        ]
        assert statuses == [200] * 5
        refused = requests.get(f"{server.url}/api/suggest", params={"q": "oi"}, timeout=TIMEOUT)
        assert refused.status_code == 429
        assert refused.headers["Content-Type"].startswith("application/json")
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        error = refused.json()["error"]
        assert error["request_id"] == refused.headers["X-Request-ID"]
        assert "5 per 1 minute" in error["message"]
        # Waitress clears untrusted proxy headers: a forged address is still this client.
        forged = requests.get(
            f"{server.url}/api/search", params={"q": "oil"}, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=TIMEOUT
        )
        assert forged.status_code == 429
        # Health checks and static files are not limited: a load balancer polls /healthz from one address.
        for path in ("/healthz", "/static/style.css") * 4:
            r = requests.get(f"{server.url}{path}", timeout=TIMEOUT)
            assert r.status_code == 200, (path, r.status_code)
            assert "Retry-After" not in r.headers
    finally:
        logged = server.stop()
    assert re.search(r"GET /api/suggest\?q=oi 429 ", logged), logged[-2000:]


# ---------------------------------------------------------------- logs and request ids


def test_each_request_is_logged_with_status_time_and_the_id_errors_show(sample_server: LiveServer) -> None:
    ok = requests.get(
        f"{sample_server.url}/api/search", params={"q": "oil"}, headers={"X-Request-ID": "trace-ok-1"}, timeout=TIMEOUT
    )
    assert ok.headers["X-Request-ID"] == "trace-ok-1"
    missing = requests.get(f"{sample_server.url}/api/stories/no-such-story", timeout=TIMEOUT)
    bad = requests.get(f"{sample_server.url}/api/search", params={"q": "oil", "page": "x"}, timeout=TIMEOUT)
    for r, status in ((missing, 404), (bad, 400)):
        assert r.status_code == status
        request_id = r.json()["error"]["request_id"]
        assert request_id == r.headers["X-Request-ID"] and len(request_id) >= 8
    logged = sample_server.logged()
    assert re.search(r"GET /api/search\?q=oil 200 [\d.]+ms id=trace-ok-1$", logged, re.M), logged[-2000:]
    assert re.search(
        rf"GET /api/stories/no-such-story 404 [\d.]+ms id={missing.headers['X-Request-ID']}$", logged, re.M
    )
    assert re.search(rf"GET /api/search\?q=oil&page=x 400 [\d.]+ms id={bad.headers['X-Request-ID']}$", logged, re.M)


def test_a_500_shows_only_a_request_id_and_logs_the_traceback_with_it(tmp_path: Path) -> None:
    """A segment file vanishes under a running server (disk trouble, a careless admin): the next search fails."""
    index_dir = tmp_path / "index"
    index_paths([SAMPLES], index_dir)
    server = LiveServer(index_dir, {}, "--threads", "1")
    try:
        assert requests.get(f"{server.url}/api/search", params={"q": "oil"}, timeout=TIMEOUT).status_code == 200
        before = set(os.listdir(index_dir))
        add_stories(
            index_dir, [Story("broken-1", "Vanishing segment", "This segment's files are deleted.", None, "test")]
        )
        for name in set(os.listdir(index_dir)) - before:
            if name.startswith("MAIN_") and name != "MAIN_WRITELOCK":
                os.remove(index_dir / name)
        time.sleep(0.6)  # past the server's refresh interval: its searcher opens the new commit
        r = requests.get(f"{server.url}/api/search", params={"q": "oil"}, timeout=TIMEOUT)
        assert r.status_code == 500
        assert r.headers["Content-Type"].startswith("application/json")
        error = r.json()["error"]
        assert error["code"] == "internal_error"
        assert error["request_id"] == r.headers["X-Request-ID"]
        assert "Traceback" not in r.text and 'File "' not in r.text and "MAIN_" not in r.text
        time.sleep(0.6)  # the failed reopen counts as a check: the next one is due after the interval
        page = requests.get(f"{server.url}/search", params={"q": "oil"}, timeout=TIMEOUT)
        assert page.status_code == 500 and page.headers["Content-Type"].startswith("text/html")
        assert page.headers["X-Request-ID"] in page.text and "Traceback" not in page.text
    finally:
        logged = server.stop()
    at = logged.index(f"unhandled error id={error['request_id']}")
    assert "Traceback (most recent call last)" in logged[at : at + 200], logged[at : at + 500]
    assert re.search(rf"GET /api/search\?q=oil 500 [\d.]+ms id={error['request_id']}$", logged, re.M)

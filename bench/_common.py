"""Helpers shared by the bench scripts: shared data, a work folder, a live server, percentiles.

Benchmarks measure the real thing: the real CLI, a real ``search-service
serve`` process (waitress) on a free loopback port, a real index on disk.
Everything they write goes to ``bench/.work/`` (git-ignored) so repeated runs
reuse the extracted corpus and the built index instead of paying for them
again.
"""

from __future__ import annotations

import http.client
import itertools
import math
import os
import random
import re
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"

sys.path.insert(0, str(REPO))  # run from a checkout without installing


def shared_dir() -> Path:
    """``../shared`` beside the repo, or ``$SEARCH_SERVICE_SHARED`` (as tests/conftest.py)."""
    env = os.environ.get("SEARCH_SERVICE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def work_dir(name: str) -> Path:
    """A folder under ``bench/.work`` for one kind of artefact, created if missing."""
    path = WORK / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(path: Path, what: str) -> Path:
    """``path``, or exit with a message saying what is missing (benchmarks need ../shared)."""
    if not path.exists():
        sys.exit(f"needs {path} ({what}); set SEARCH_SERVICE_SHARED to the shared/ folder")
    return path


def reuters_stories() -> Path:
    """The 19,040 Reuters story files, extracted once into ``bench/.work/reuters``."""
    tarball = require(shared_dir() / "corpora" / "reuters-stories.tar.gz", "the Reuters corpus")
    target = work_dir("reuters")
    stories = target / "stories_reuters"
    done = target / ".extracted"
    if not done.exists():
        with tarfile.open(tarball) as tar:
            tar.extractall(target, filter="data")
        done.touch()
    return stories


def reuters_index(index_dir: Path | None = None) -> Path:
    """An index of the Reuters stories: ``index_dir`` as given, else built in ``bench/.work``.

    Indexing is incremental, so a second run finds every file unchanged and
    returns at once.
    """
    if index_dir is not None:
        return index_dir
    from search_service.backends.whoosh.indexer import index_paths

    built = work_dir("reuters-index") / "index"
    summary = index_paths([reuters_stories()], built)
    print(f"reuters index {built}: {summary.line()}", file=sys.stderr)
    return built


class Server:
    """A real ``search-service serve`` process on a free loopback port (rate limit off).

    Like tests/conftest.py's LiveServer: the URL is read from the line the
    server prints on stdout; stderr (the access log) goes to a file, because a
    pipe nobody reads would fill up and stall the server.
    """

    def __init__(self, index_dir: Path, threads: int | None = None, log_name: str = "server", workers: int = 1) -> None:
        self.log_path = work_dir("logs") / f"{log_name}-{os.getpid()}.log"
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by stop()
        args = [sys.executable, "-m", "search_service", "serve", "--index", str(index_dir), "--port", "0"]
        if threads:
            args += ["--threads", str(threads)]
        args += ["--workers", str(workers)]
        env = {**os.environ, "SEARCH_SERVICE_RATE_LIMIT": "off", "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "http://" not in line:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {self.log_path}")
        self.url = line[line.index("http://") :].split()[0].rstrip("/")
        self.host, _, port = self.url.removeprefix("http://").partition(":")
        self.port = int(port)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The server process and its worker processes (``--workers``)."""
        found = [self.pid]
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass
        return found

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its workers."""
        total = 0.0
        for pid in self.pids():
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
        return total

    def memory_kib(self) -> dict[str, int]:
        """The server's VmRSS, RssAnon and RssFile (KiB) from /proc; empty once it has exited.

        VmRSS counts a file-backed page once per mapping: every server thread's
        searcher maps the index, so RssFile grows with threads while the page
        cache holds one copy.  RssAnon is the memory the process itself owns.
        """
        found: dict[str, int] = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status", encoding="ascii") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in ("VmRSS", "RssAnon", "RssFile"):
                            found[key] = found.get(key, 0) + int(value.split()[0])
            except OSError:
                continue
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def load_note() -> str:
    """The machine's load average: timings taken while other work runs are not comparable."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def stored_stories(index_dir: Path) -> list[dict[str, object]]:
    """Every live story's stored fields (id, headline, body, published, ...), in document order."""
    from search_service.backends.whoosh.indexer import open_index

    with open_index(index_dir).searcher() as searcher:
        return list(searcher.all_stored_fields())


WORD = re.compile(r"\w+(?:[.'’]\w+)*")


def headline_words(headline: str) -> list[str | None]:
    """The headline's words in order: folded alphabetic words of 3+ letters, None for any other token."""
    from search_service.analysis import STOP, fold

    out: list[str | None] = []
    for raw in WORD.findall(headline):
        word = fold(raw)
        out.append(word if word.isalpha() and len(word) >= 3 and word not in STOP else None)
    return out


def headline_vocabulary(stories: list[dict[str, object]], size: int) -> list[str]:
    """The ``size`` words found in the most headlines (ties by spelling): realistic query words."""
    frequency = Counter(w for s in stories for w in set(headline_words(str(s["headline"]))) if w)
    return [w for w, _ in sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadResult:
    """What a load run measured: latencies (ms) and errors per endpoint label."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())

    def all_latencies(self) -> list[float]:
        return [ms for values in self.latencies.values() for ms in values]


Pick = Callable[[random.Random], tuple[str, str]]


def python_load(
    host: str,
    port: int,
    pick: Pick,
    clients: int,
    seconds: float | None = None,
    requests: int | None = None,
    seed: int = 0,
    rate: float | None = None,
) -> LoadResult:
    """``clients`` threads, each on its own keep-alive ``http.client`` connection, until time or count runs out.

    With ``rate`` (requests/s in all), each client sends on a fixed schedule
    instead of as fast as it can, and a latency counts from the scheduled
    time, so a stalled server is charged for the requests it delayed (no
    coordinated omission).

    ``pick(rng)`` returns ``(label, path)`` for the next request; a request
    that fails or is not 200 is an error (the connection is then reopened).
    The client shares the machine's cores with the server: its own CPU use
    slows the server it measures, so figures are a lower bound on capacity.
    """
    if seconds is None and requests is None:
        raise ValueError("give seconds, requests or both")
    result = LoadResult()
    lock = threading.Lock()
    issued = itertools.count()
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else math.inf

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        latencies: dict[str, list[float]] = {}
        errors: dict[str, int] = {}
        samples: list[str] = []
        interval = clients / rate if rate else 0.0
        scheduled = started + n * interval / clients
        while time.perf_counter() < deadline and (requests is None or next(issued) < requests):
            label, path = pick(rng)
            if rate:
                time.sleep(max(0.0, scheduled - time.perf_counter()))
                t0, scheduled = scheduled, scheduled + interval
            else:
                t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, detail = 0, repr(exc)
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            else:
                detail = f"HTTP {status}"
            ms = (time.perf_counter() - t0) * 1000.0
            if status == 200:
                latencies.setdefault(label, []).append(ms)
            else:
                errors[label] = errors.get(label, 0) + 1
                if len(samples) < 5:
                    samples.append(f"{label} {path[:100]}: {detail}")
        conn.close()
        with lock:
            for label, values in latencies.items():
                result.latencies.setdefault(label, []).extend(values)
            for label, count in errors.items():
                result.errors[label] = result.errors.get(label, 0) + count
            result.error_samples.extend(samples)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result

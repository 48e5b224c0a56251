"""A million stories on one machine: build, serve and query, side by side with SQLite FTS5.

    python bench/scale_bench.py                       # 1,000,000 stories (generated once, ~4.4 GB)
    python bench/scale_bench.py --stories 100000      # a smaller archive, same steps
    python bench/scale_bench.py --corpus DIR          # an archive already generated
    python bench/scale_bench.py --reuse               # query the last run's builds again (after a query-side change)

The archive comes from ``../shared/tools/make_scale_corpus.py`` (real Reuters
sentences, new names as in a real archive) into ``bench/.work/scale-N/`` and
is kept for later runs.  Each run then:

1. builds our index with ``search-service index`` (a real process): seconds,
   stories/s, peak RSS of the indexer and its workers, peak disk (the index
   folder's largest size during the build, polled: segments being written,
   Whoosh's temporary files, which all live there), the index's size; then
   the unchanged re-run;
2. builds the peer, an FTS5 table (``porter unicode61``) filled by parsing the
   same files with ``search_service.stories.read_file`` in one thread;
3. draws 100 queries per class (one word, two words, a phrase of two headline
   words) from the archive's headlines, and times them: ours over HTTP, one
   client, ``serve --workers 2``, after one warm-up pass; FTS5 in-process,
   top 10 with highlight and snippet plus a count;
4. loads the server with 16 clients flat out (wrk if installed, else the
   Python client), twice: the three classes' queries (the issue's goal), then
   those and 100 more of each of two classes of common words (three words
   with a common one, only common words: searched as a phrase, the dearest);
   reports req/s and errors of each, and the workers' memory after;
5. adds 1,000 new stories and times that run and the first query after it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from search_service.stories import iter_story_files, read_file

from _common import REPO, Server, percentile, require, shared_dir, table, work_dir
from query_bench import COUNT, TOP10, fts5_match, http_paths, run_python, run_wrk, sample_queries

CLASSES = ("single", "two-term", "phrase")


def generate(out: Path, stories: int) -> None:
    """Write the synthetic archive with the shared tool (skipped when it is complete)."""
    done = out / ".complete"
    if done.exists():
        return
    tool = require(shared_dir() / "tools" / "make_scale_corpus.py", "the scale corpus tool")
    shutil.rmtree(out, ignore_errors=True)
    print(f"generating {stories:,} stories into {out} ...", file=sys.stderr)
    subprocess.run([sys.executable, str(tool), str(out), "--stories", str(stories)], check=True)
    done.write_text(str(stories))


class DiskWatch(threading.Thread):
    """The largest size of a folder while it runs, above its size at the start (polled every 0.2 s)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.start_used = self._used()
        self.peak = 0
        self._done = threading.Event()

    def _used(self) -> int:
        return disk_bytes(self.folder) if self.folder.exists() else 0

    def run(self) -> None:
        while not self._done.wait(0.2):
            self.peak = max(self.peak, self._used() - self.start_used)

    def finish(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (a file deleted while it is read counts nothing)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def children_cpu() -> float:
    """CPU seconds of the finished child processes so far (an indexer and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_indexer(corpus: Path, index: Path, procs: int | None) -> tuple[float, str, int]:
    """``search-service index`` as a process: (seconds, its summary line, peak scratch bytes)."""
    command = [sys.executable, "-m", "search_service", "index", str(corpus), "--index", str(index)]
    if procs:
        command += ["--procs", str(procs)]
    watch = DiskWatch(index)
    watch.start()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    peak = watch.finish()
    if done.returncode != 0:
        raise SystemExit(f"indexing failed: {done.stderr[-2000:]}")
    return seconds, done.stdout.strip().splitlines()[-1], peak


def build_fts5(corpus: Path, path: Path) -> tuple[float, list[str]]:
    """The peer: FTS5 filled by parsing every file in one thread; (seconds, headlines)."""
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    cpu = time.process_time()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "CREATE VIRTUAL TABLE stories USING fts5(id UNINDEXED, headline, body, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    headlines: list[str] = []

    def rows():  # type: ignore[no-untyped-def]
        for file in iter_story_files([corpus]):
            for story in read_file(file).stories:
                headlines.append(story.headline)
                yield story.id, story.headline, story.body

    db.executemany("INSERT INTO stories VALUES (?, ?, ?)", rows())
    db.execute("INSERT INTO stories(stories) VALUES ('optimize')")
    db.commit()
    db.close()
    print(f"FTS5 build: {time.process_time() - cpu:.1f} CPU s")
    return time.perf_counter() - started, headlines


def time_http(server: Server, queries: dict[str, list[str]]) -> dict[str, tuple[list[float], int]]:
    """One client, one request at a time: per-class latencies (ms) and how many were refused."""

    def get(q: str) -> tuple[float, int]:
        url = f"{server.url}/api/search?{urllib.parse.urlencode({'q': q})}"
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        return (time.perf_counter() - started) * 1000.0, status

    for qs in queries.values():  # warm-up pass
        for q in qs:
            get(q)
    out = {}
    for name, qs in queries.items():
        timed = [get(q) for q in qs]
        out[name] = ([ms for ms, _ in timed], sum(1 for _, status in timed if status != 200))
    return out


def time_fts5(path: Path, queries: dict[str, list[str]]) -> dict[str, list[float]]:
    """Top 10 with highlight and snippet, plus a count: per-class latencies (ms), after a warm-up pass."""
    db = sqlite3.connect(path)
    for qs in queries.values():
        for q in qs:
            db.execute(TOP10, (fts5_match(q),)).fetchall()
    out: dict[str, list[float]] = {}
    for name, qs in queries.items():
        out[name] = []
        for q in qs:
            started = time.perf_counter()
            db.execute(TOP10, (fts5_match(q),)).fetchall()
            db.execute(COUNT, (fts5_match(q),)).fetchone()
            out[name].append((time.perf_counter() - started) * 1000.0)
    db.close()
    return out


def add_new_stories(corpus: Path, count: int) -> tuple[Path, str]:
    """``count`` new story files (copies of existing ones with new codes and a new word); the word."""
    folder = corpus / "zz-added"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    word = "zqxaddedword"
    sources = iter_story_files([corpus / "0000"])
    for n, source in zip(range(count), sources):
        text = source.read_text("utf-8")
        # a new code, and the word first in the body (the line after the code repeats the headline)
        text = re.sub(r"Story Code : \S+\n([^\n]*\n)", rf"Story Code : 9{n:08d}\n\1The {word} report. ", text, count=1)
        (folder / f"added-{n:05d}.txt").write_text(text, "utf-8")
    return folder, word


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", type=int, default=1_000_000)
    parser.add_argument("--corpus", type=Path, help="an archive already generated (default: bench/.work/scale-N)")
    parser.add_argument("--procs", type=int, help="indexer worker processes (default: the indexer's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 16-client load")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build both, time the unchanged re-run and adding 1,000 stories; no server, no queries",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="only a cProfile of a one-process build of the archive's first N files (what limits the build)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="serve and query the index and FTS5 table of the last run (builds not timed again)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="with --reuse: only CPU time per query in process, per class, and a cProfile of the slowest class",
    )
    parser.add_argument(
        "--no-add",
        action="store_true",
        help="with --reuse: no 1,000 stories added at the end (the archive folder is left alone, for others using it)",
    )
    args = parser.parse_args()

    work = work_dir(f"scale-{args.stories}")
    corpus = args.corpus or work / "stories"
    if args.corpus is None:
        generate(corpus, args.stories)
    index = work / "index"
    shutil.rmtree(corpus / "zz-added", ignore_errors=True)
    fts5_path = work / "fts5.db"
    if args.profile:
        profile_build(corpus, args.profile)
        return
    if args.reuse and index.exists() and fts5_path.exists():
        headlines = [row[0] for row in sqlite3.connect(fts5_path).execute("SELECT headline FROM stories")]
        print(f"reusing the index and FTS5 table in {work} ({len(headlines):,} stories)")
    else:
        headlines = build(corpus, index, fts5_path, args.procs)
    if args.build_only:
        folder, _ = add_new_stories(corpus, 1000)
        add_s, add_line, _ = run_indexer(corpus, index, args.procs)
        print(f"1,000 new stories: {add_s:.1f} s ({add_line})")
        shutil.rmtree(folder, ignore_errors=True)
        return
    if args.cpu:
        cpu_per_query(index, headlines, args.per_class)
        return
    serve_and_query(corpus, index, fts5_path, headlines, args)


def profile_build(corpus: Path, count: int) -> None:
    """cProfile of ``index_paths`` over the first ``count`` files, one process, sorted by own time."""
    import cProfile
    import pstats
    import tempfile

    from search_service.backends.whoosh.indexer import index_paths

    files = sorted(iter_story_files([corpus]))[:count]
    with tempfile.TemporaryDirectory(dir=work_dir("profile")) as folder:
        profiler = cProfile.Profile()
        profiler.enable()
        summary = index_paths(files, Path(folder) / "index", procs=1)
        profiler.disable()
    print(f"profile, {len(files):,} files, procs=1: {summary.line()} (under cProfile)")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def build(corpus: Path, index: Path, fts5_path: Path, procs: int | None) -> list[str]:
    """Build both, print the build table; the archive's headlines."""
    shutil.rmtree(index, ignore_errors=True)
    cpu = children_cpu()
    build_s, line, scratch = run_indexer(corpus, index, procs)
    cpu = children_cpu() - cpu
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = disk_bytes(index)
    rerun_s, rerun_line, _ = run_indexer(corpus, index, procs)
    print(f"ours: {line}; {cpu:.1f} CPU s (the indexer and its workers)")
    print(f"load average at the end of our build: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"ours, unchanged re-run: {rerun_line}")

    fts5_s, headlines = build_fts5(corpus, fts5_path)
    stories = len(headlines)
    print()
    print(
        table(
            [
                "build",
                "seconds",
                "stories/s",
                "index MB",
                "peak disk MB (x index)",
                "peak RSS MB",
                "unchanged re-run s",
            ],
            [
                [
                    "ours",
                    build_s,
                    stories / build_s,
                    size / 2**20,
                    f"{scratch / 2**20:,.0f} ({scratch / size:.2f}x)",
                    peak_rss,
                    f"{rerun_s:.1f} ({100 * rerun_s / build_s:.1f}%)",
                ],
                ["SQLite FTS5 (1 thread)", fts5_s, stories / fts5_s, fts5_path.stat().st_size / 2**20, "", "", ""],
            ],
        )
    )
    return headlines


def drawn_queries(headlines: list[str], per_class: int) -> dict[str, list[str]]:
    """The queries of every class (those timed over HTTP, and two more the second load sends), drawn from the headlines."""
    sample = random.Random(1).sample(headlines, min(len(headlines), 200_000))
    return sample_queries([{"headline": h} for h in sample], per_class, seed=1)


def cpu_per_query(index: Path, headlines: list[str], per_class: int) -> None:
    """CPU seconds of ``WhooshEngine.search`` per query (steadier than the wall clock on a shared
    machine), per class: in the first pass of a new engine, then warm; a cProfile of the class with
    the most CPU warm; the cache's size."""
    import cProfile
    import pstats

    from search_service.backends.whoosh.engine import WhooshEngine
    from search_service.config import Config, Limits
    from search_service.model import SearchRequest

    queries = drawn_queries(headlines, per_class)
    cache_mb = Config.from_env(index_dir=index).cache_mb  # SEARCH_SERVICE_CACHE_MB, as the server reads it
    engine = WhooshEngine(index, Limits(time_limit=600.0), cache_mb=cache_mb)  # measured, not refused, when loaded

    def cpu_ms(q: str) -> float:
        started = time.thread_time()
        engine.search(SearchRequest(q=q))
        return (time.thread_time() - started) * 1000.0

    cold = {name: [cpu_ms(q) for q in qs] for name, qs in queries.items()}  # the warm-up pass
    rows, means = [], {}
    for name, qs in queries.items():
        times = [cpu_ms(q) for q in qs]
        means[name] = sum(times) / len(times)
        first = cold[name]
        rows.append([name, percentile(first, 50), percentile(first, 99), percentile(times, 50), percentile(times, 99)])
        rows[-1] += [means[name], max(times)]
    print(f"CPU per query in process, {per_class} queries per class, cache {cache_mb:,.0f} MiB; first pass (the")
    print(
        "engine new, the classes in turn: the words read from the index, as a server worker first meets them), then warm"
    )
    print(
        table(["class", "first p50 ms", "first p99 ms", "warm p50 ms", "warm p99 ms", "warm mean ms", "warm max"], rows)
    )
    print(f"cache kept: {engine._cache.size / 2**20:,.0f} MiB")
    slowest = max(means, key=means.__getitem__)
    profiler = cProfile.Profile()
    profiler.enable()
    for q in queries[slowest]:
        engine.search(SearchRequest(q=q))
    profiler.disable()
    print(f"\nprofile of the class with the most CPU, {slowest!r}:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)


def serve_and_query(corpus: Path, index: Path, fts5_path: Path, headlines: list[str], args: argparse.Namespace) -> None:
    """Query both, load ours, add 1,000 stories; print the figures."""
    queries = drawn_queries(headlines, args.per_class)
    with Server(index, workers=args.workers, log_name="scale-bench") as server:
        ours = time_http(server, queries)
        peers = time_fts5(fts5_path, queries)
        rows = []
        for name in CLASSES:
            times, refused = ours[name]
            rows.append(
                [
                    name,
                    percentile(times, 50),
                    percentile(times, 99),
                    refused,
                    percentile(peers[name], 50),
                    percentile(peers[name], 99),
                ]
            )
        print()
        print(f"{args.per_class} queries per class, warm; ours over HTTP, one client; FTS5 in-process, top 10 + count")
        print(table(["class", "ours p50 ms", "ours p99 ms", "refused", "FTS5 p50 ms", "FTS5 p99 ms"], rows))
        print()
        for name, sent in (("the classes above", {c: queries[c] for c in CLASSES}), ("every class", queries)):
            paths = http_paths(sent, 1)
            figures = run_wrk(server, paths, 16, args.seconds) if shutil.which("wrk") else None
            client = "wrk"
            if figures is None:
                figures, client = run_python(server, paths, 16, args.seconds, 1), "Python client"
            print(
                f"16 clients flat out, {name} ({client}, {args.seconds:.0f} s, --workers {args.workers}): "
                f"{figures['requests'] / figures['seconds']:.1f} req/s, p50 {figures['p50']:.0f} ms, "
                f"p99 {figures['p99']:.0f} ms, {int(figures['errors'])} errors"
            )
        memory = server.memory_kib()
        print(
            f"server memory after: RssAnon {memory.get('RssAnon', 0) / 1024:.0f} MiB, "
            f"VmRSS {memory.get('VmRSS', 0) / 1024:.0f} MiB (parent and {args.workers} workers together)"
        )

        if args.no_add:
            return
        folder, word = add_new_stories(corpus, 1000)
        add_s, add_line, _ = run_indexer(corpus, index, args.procs)
        started = time.perf_counter()
        with urllib.request.urlopen(f"{server.url}/api/search?q={word}", timeout=60) as response:
            found = json.loads(response.read())["total"]
        first_ms = (time.perf_counter() - started) * 1000.0
        print(f"1,000 new stories: {add_s:.1f} s ({add_line}); first query {first_ms:.0f} ms, {found:,} of them found")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

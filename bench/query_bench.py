"""Query latency on Reuters: the engine beside SQLite FTS5, then HTTP through waitress.

1. Engine: ``WhooshEngine.search`` with ``per_page=10`` (highlights are always
   computed, and so are the total and the month/year facets) for single-term,
   two-term and phrase queries.  The words are drawn with a fixed seed from
   the 1,000 most frequent headline words (stop words and words under three
   letters left out): single terms are such words; two-term queries are two of
   them from the same headline, in headline order; phrases are two such words
   adjacent in a headline, quoted.
2. SQLite FTS5 on the same stories (read back from the index) with the same
   queries: ``porter unicode61`` tokenizer, ``bm25`` with headline weight 2.0,
   ``highlight()`` on the headline and ``snippet()`` on the body, LIMIT 10;
   timed with and without a ``count(*)`` for the total (the engine always
   returns totals and facets).  Two-term queries are ``a OR b`` in FTS5, as
   free text is an OR (with a coordination bonus) in the engine.
3. HTTP: a real ``search-service serve`` (rate limit off), 16 concurrent
   keep-alive clients for 20 s cycling through the same queries, via ``wrk``
   when it is installed, else a Python client.

    python bench/query_bench.py [--index DIR] [--client auto|wrk|python] [--no-http]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from statistics import mean

from search_service.config import DEFAULT_THREADS  # after _common, which puts the checkout on sys.path

from _common import (
    WORD,
    Server,
    headline_vocabulary,
    headline_words,
    load_note,
    percentile,
    python_load,
    reuters_index,
    stored_stories,
    table,
    work_dir,
)

CLASSES = ("single", "two-term", "phrase", "with-common", "only-common")
VOCABULARY = 1000

WRK_SCRIPT = """
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  counter = tonumber(args[2]) or 0
  think = tonumber(args[3]) or 0
end
delay = function()
  return think
end
request = function()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "mean_us": %f, "max_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# ---------------------------------------------------------------- queries


def sample_queries(stories: list[dict[str, object]], per_class: int, seed: int) -> dict[str, list[str]]:
    """Deterministic query words per class, drawn from frequent-to-medium headline words."""
    rng = random.Random(seed)
    words_per_story = [headline_words(str(s["headline"])) for s in stories]
    vocabulary = set(headline_vocabulary(stories, VOCABULARY))
    pairs, phrases = [], Counter()
    for words in words_per_story:
        known = [w for w in words if w in vocabulary]
        if len(set(known)) >= 2:
            pairs.append(known)
        for a, b in itertools.pairwise(words):
            if a in vocabulary and b in vocabulary and a != b:
                phrases[f"{a} {b}"] += 1
    two_term = []
    for known in rng.sample(pairs, per_class):
        a, b = sorted(rng.sample(range(len(known)), 2))
        two_term.append(f"{known[a]} {known[b]}" if known[a] != known[b] else f"{known[a]} {known[-1]}")
    common_phrases = sorted(p for p, n in phrases.items() if n >= 3)
    queries = {
        "single": rng.sample(sorted(vocabulary), per_class),
        "two-term": two_term,
        "phrase": [f'"{p}"' for p in rng.sample(common_phrases, per_class)],
    }
    with_common, only_common = common_word_runs(stories, vocabulary)
    queries["with-common"] = rng.sample(with_common, per_class)
    queries["only-common"] = rng.sample(only_common, min(per_class, len(only_common)))
    return queries


def common_word_runs(stories: list[dict[str, object]], vocabulary: set[str]) -> tuple[list[str], list[str]]:
    """Runs of three headline words with a common word and a vocabulary word ("cut in rates"), and
    runs of two or three common words ("of the", "it is not"): free text as people type it."""
    from search_service.analysis import STOP, fold

    mixed, common = set(), Counter()
    for story in stories:
        words = [fold(w) for w in WORD.findall(str(story["headline"]))]
        for n in (2, 3):
            for i in range(len(words) - n + 1):
                run = words[i : i + n]
                if all(w in STOP for w in run):
                    common[" ".join(run)] += 1
                elif n == 3 and any(w in STOP for w in run) and any(w in vocabulary for w in run):
                    mixed.add(" ".join(run))
    return sorted(mixed), sorted(r for r, k in common.items() if k >= 3)


def fts5_match(query: str) -> str:
    """The FTS5 MATCH expression for one bench query (words quoted; OR for two terms)."""
    if query.startswith('"'):
        return query
    return " OR ".join(f'"{w}"' for w in query.split())


# ---------------------------------------------------------------- engine and FTS5


def searched(engine: object, q: str) -> int:
    """The total of one search (per_page=10); a query the engine refuses counts as nothing found."""
    from search_service.model import QueryError, SearchRequest

    try:
        return engine.search(SearchRequest(q=q, per_page=10)).total  # type: ignore[attr-defined]
    except QueryError:
        return 0


def time_engine(
    index_dir: Path, queries: dict[str, list[str]], rounds: int, cache: bool = True
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-class latencies (ms) of WhooshEngine.search, after one warm-up pass; mean totals.

    With ``cache=False`` the engine's cache of decoded postings is off, so
    every query reads and decodes its posting lists as on first sight.
    """
    from search_service.backends.whoosh import WhooshEngine
    from search_service.config import DEFAULT_CACHE_MB

    return time_searches(WhooshEngine(index_dir, cache_mb=DEFAULT_CACHE_MB if cache else 0), queries, rounds)


def time_searches(
    engine: object, queries: dict[str, list[str]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-class latencies (ms) of ``engine.search(per_page=10)`` over ``rounds`` passes, after a warm-up pass that also gives the mean totals."""
    totals = {c: mean(searched(engine, q) for q in qs) for c, qs in queries.items()}
    times: dict[str, list[float]] = {c: [] for c in queries}
    for _ in range(rounds):
        for c, qs in queries.items():
            for q in qs:
                t0 = time.perf_counter()
                searched(engine, q)
                times[c].append((time.perf_counter() - t0) * 1000.0)
    return times, totals


def after_commit(index_dir: Path, queries: dict[str, list[str]]) -> list[list[object]]:
    """What a write costs readers: a warm engine, one story added, then the first query and the first pass.

    The engine's per-document arrays start again at every commit, and the
    new segment's postings are read (a copy of the index is written to, so
    the bench index is untouched).
    """
    from search_service.backends.whoosh import WhooshEngine
    from search_service.model import SearchRequest
    from search_service.stories import Story

    copy = work_dir("after-commit") / "index"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(index_dir, copy)
    engine = WhooshEngine(copy)
    mix = [q for qs in queries.values() for q in qs]

    def one_pass() -> list[float]:
        times = []
        for q in mix:
            t0 = time.perf_counter()
            searched(engine, q)
            times.append((time.perf_counter() - t0) * 1000.0)
        return times

    one_pass()
    warm = one_pass()
    engine.upsert([Story("bench-after-commit", "Zinc prices firm", "Zinc prices rose.", None, "bench")])
    t0 = time.perf_counter()
    engine.search(SearchRequest(q="zinc"))
    first = (time.perf_counter() - t0) * 1000.0
    cold = one_pass()
    return [
        ["warm", "", percentile(warm, 50), percentile(warm, 99)],
        ["after one added story", first, percentile(cold, 50), percentile(cold, 99)],
    ]


def build_fts5(stories: list[dict[str, object]], path: Path) -> float:
    """An FTS5 table of the stories at ``path``; returns seconds taken."""
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute(
        "CREATE VIRTUAL TABLE stories USING fts5(id UNINDEXED, headline, body, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    db.executemany("INSERT INTO stories VALUES (?, ?, ?)", ((s["id"], s["headline"], s["body"]) for s in stories))
    db.execute("INSERT INTO stories(stories) VALUES ('optimize')")
    db.commit()
    db.close()
    return time.perf_counter() - started


TOP10 = (
    "SELECT id, highlight(stories, 1, '<mark>', '</mark>'), "
    "snippet(stories, 2, '<mark>', '</mark>', ' … ', 32) "
    "FROM stories WHERE stories MATCH ? ORDER BY bm25(stories, 0.0, 2.0, 1.0) LIMIT 10"
)
COUNT = "SELECT count(*) FROM stories WHERE stories MATCH ?"


def time_fts5(
    path: Path, queries: dict[str, list[str]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    """Per-class latencies (ms) of the FTS5 top 10 with highlights, and of top 10 plus count; mean totals."""
    db = sqlite3.connect(path)
    totals = {c: mean(db.execute(COUNT, (fts5_match(q),)).fetchone()[0] for q in qs) for c, qs in queries.items()}
    top: dict[str, list[float]] = {c: [] for c in queries}
    counted: dict[str, list[float]] = {c: [] for c in queries}
    for _ in range(rounds):
        for c, qs in queries.items():
            for q in qs:
                match = fts5_match(q)
                t0 = time.perf_counter()
                db.execute(TOP10, (match,)).fetchall()
                t1 = time.perf_counter()
                db.execute(COUNT, (match,)).fetchone()
                t2 = time.perf_counter()
                top[c].append((t1 - t0) * 1000.0)
                counted[c].append((t2 - t0) * 1000.0)
    db.close()
    return top, counted, totals


# ---------------------------------------------------------------- HTTP


def http_paths(queries: dict[str, list[str]], seed: int) -> list[str]:
    paths = [f"/api/search?{urllib.parse.urlencode({'q': q})}" for qs in queries.values() for q in qs]
    random.Random(seed).shuffle(paths)
    return paths


def run_wrk(
    server: Server, paths: list[str], clients: int, seconds: float, think_ms: int = 0
) -> dict[str, float] | None:
    """Drive the server with wrk (2 threads): requests, seconds, p50/p99 ms, errors; None if wrk failed.

    ``think_ms``: each connection waits that long between a response and
    its next request, which paces the load below the server's capacity.
    """
    folder = work_dir("wrk")
    (folder / "paths.txt").write_text("\n".join(paths) + "\n")
    (folder / "bench.lua").write_text(WRK_SCRIPT)
    command = [
        "wrk",
        "-t2",
        f"-c{clients}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(folder / "bench.lua"),
        server.url,
        "--",
        str(folder / "paths.txt"),
        "0",
        str(think_ms),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((out for out in done.stdout.splitlines() if out.startswith("WRK_JSON ")), None)
    if line is None:
        print(f"wrk gave no figures ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}", file=sys.stderr)
        return None
    wrk = json.loads(line.removeprefix("WRK_JSON "))
    return {
        "requests": wrk["requests"],
        "seconds": wrk["seconds"],
        "p50": wrk["p50_us"] / 1000.0,
        "p99": wrk["p99_us"] / 1000.0,
        "errors": sum(wrk[k] for k in ("connect", "read", "write", "status", "timeout")),
    }


def run_python(
    server: Server, paths: list[str], clients: int, seconds: float, seed: int, rate: float | None = None
) -> dict[str, float]:
    """The same figures as :func:`run_wrk` from the Python client (threads + http.client), optionally paced."""
    result = python_load(
        server.host,
        server.port,
        lambda rng: ("search", rng.choice(paths)),
        clients=clients,
        seconds=seconds,
        seed=seed,
        rate=rate,
    )
    for sample in result.error_samples:
        print(f"  error: {sample}", file=sys.stderr)
    latencies = result.all_latencies()
    return {
        "requests": result.requests,
        "seconds": result.seconds,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "errors": sum(result.errors.values()),
    }


def http_bench(index_dir: Path, queries: dict[str, list[str]], args: argparse.Namespace) -> None:
    """Load the real server with the bench queries: flat out, then at the goal's fixed rate."""
    paths = http_paths(queries, args.seed)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    rows = []
    with Server(index_dir, threads=args.threads, log_name="query-bench", workers=args.workers) as server:
        python_load(server.host, server.port, lambda rng: ("search", rng.choice(paths)), clients=4, seconds=3)
        runs: list[tuple[str, float | None]] = [("flat out", None), (f"paced at {args.rate:g} req/s", args.rate)]
        for name, paced in runs:
            cpu0 = server.cpu_seconds()
            # Paced with wrk: think time so that the connections together send a little over the rate.
            think = int(args.clients * 1000 / paced * 0.6) if paced else 0
            figures = run_wrk(server, paths, args.clients, args.seconds, think) if use_wrk else None
            client = "wrk" if figures is not None else "Python"
            if figures is None:
                figures = run_python(server, paths, args.clients, args.seconds, args.seed, rate=paced)
            server_cpu = (server.cpu_seconds() - cpu0) / figures["seconds"]
            rate = figures["requests"] / figures["seconds"]
            rows.append(
                [
                    f"{name} ({client})",
                    rate,
                    figures["p50"],
                    figures["p99"],
                    int(figures["errors"]),
                    f"{server_cpu * 100:.0f}% of a core",
                ]
            )
    print()
    print(
        f"HTTP: GET /api/search (per_page=10) through waitress ({args.workers} worker processes x {args.threads} threads), "
        f"{args.clients} keep-alive clients, {args.seconds:.0f} s per run; paced: wrk connections wait "
        "between requests (latency from send), or the Python client's fixed schedule (latency from the "
        "scheduled time)"
    )
    print(table(["run", "req/s", "p50 ms", "p99 ms", "errors", "server CPU"], rows))
    _, paced_rate, _, paced_p99, paced_errors, _ = rows[-1]
    met = paced_p99 <= 50 and paced_rate >= 0.98 * args.rate and args.rate >= 300 and paced_errors == 0
    print(f"goal p99 <= 50 ms at >= 300 req/s with 0 errors: {'met' if met else 'NOT met'}")
    print(
        f"note: the load client runs on the same {os.cpu_count()} cores as the server and takes CPU from it "
        "(the server used the 'server CPU' above; the rest went to the client and the system)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--index", type=Path, default=None, help="existing Reuters index (default: build in bench/.work)"
    )
    parser.add_argument("--per-class", type=int, default=200, help="queries per class (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the queries (default 3)")
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: CPUs)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--seconds", type=float, default=20.0, help="HTTP run length (default 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads per server process (default {DEFAULT_THREADS}, as serve)",
    )
    parser.add_argument("--rate", type=float, default=300.0, help="requests/s of the paced HTTP run (default 300)")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="HTTP load client: wrk if installed (auto), or the Python one",
    )
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP part")
    args = parser.parse_args()

    print(f"before: {load_note()}")
    index_dir = reuters_index(args.index)
    stories = stored_stories(index_dir)
    queries = sample_queries(stories, args.per_class, args.seed)
    print(
        f"{len(stories):,} stories; {args.per_class} queries per class (seed {args.seed}), {args.rounds} timed rounds; "
        f"e.g. {queries['single'][:3]}, {queries['two-term'][:2]}, {queries['phrase'][:2]}, "
        f"{queries['with-common'][:2]}, {queries['only-common'][:2]}"
    )
    fts_path = work_dir("fts5") / "reuters.db"
    print(f"FTS5 (SQLite {sqlite3.sqlite_version}) table built in {build_fts5(stories, fts_path):.1f} s")

    cold, _ = time_engine(index_dir, queries, 1, cache=False)
    engine, engine_totals = time_engine(index_dir, queries, args.rounds)
    top, counted, fts_totals = time_fts5(fts_path, queries, args.rounds)
    rows = []
    for c in CLASSES:
        e99, f99, fc99 = percentile(engine[c], 99), percentile(top[c], 99), percentile(counted[c], 99)
        rows.append(
            [
                c,
                percentile(engine[c], 50),
                e99,
                percentile(top[c], 50),
                f99,
                percentile(counted[c], 50),
                fc99,
                e99 / f99,
                e99 / fc99,
                f"{engine_totals[c]:,.0f} / {fts_totals[c]:,.0f}",
            ]
        )
    print()
    print(
        "Latency in ms (engine: WhooshEngine.search per_page=10 with highlights, total and facets; "
        "FTS5: top 10 with highlight()+snippet(), then also count(*))"
    )
    print(
        table(
            [
                "class",
                "engine p50",
                "engine p99",
                "fts5 p50",
                "fts5 p99",
                "fts5+count p50",
                "fts5+count p99",
                "p99 ratio",
                "p99 ratio vs +count",
                "mean total engine / fts5",
            ],
            rows,
        )
    )
    worst = max(percentile(engine[c], 99) / percentile(counted[c], 99) for c in CLASSES)
    print(f"goal engine p99 <= 3x FTS5 (with count): worst ratio {worst:.2f} -> {'met' if worst <= 3 else 'NOT met'}")
    print()
    print("Engine with its postings cache off (every query decodes its posting lists, as on first sight):")
    print(
        table(
            ["class", "p50", "p99", "p99 ratio vs fts5+count"],
            [
                [
                    c,
                    percentile(cold[c], 50),
                    percentile(cold[c], 99),
                    percentile(cold[c], 99) / percentile(counted[c], 99),
                ]
                for c in CLASSES
            ],
        )
    )
    print()
    print("A write, as readers see it (all classes mixed; ms):")
    print(table(["pass", "first query", "p50", "p99"], after_commit(index_dir, queries)))
    if not args.no_http:
        http_bench(index_dir, queries, args)
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()

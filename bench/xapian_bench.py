"""Xapian shards on Reuters: per-shard and merged latency, 1 database vs 3 shards, beside Whoosh and FTS5.

The queries are those of ``bench/query_bench.py`` (single words, two words,
two-word phrases, drawn with its seed from frequent headline words).  Each
configuration runs ``engine.search`` with ``per_page=10`` (highlights, the
total and the facets, as the service answers), after one warm-up pass:

* ``whoosh``: the Whoosh engine over the same stories (in process);
* ``fts5+count``: SQLite FTS5 with a ``count(*)``, as in query_bench.py;
* ``xapian 1 db (local)``: one Xapian database of every story, in process;
* ``shard I/3 (local)``: each shard's database alone, in process;
* ``xapian 1 db (tcpsrv)``: the one database behind ``xapian-tcpsrv`` on loopback;
* ``xapian 3 shards (tcpsrv)``: the three shards, each behind its own
  ``xapian-tcpsrv``, searched as one (what a frontend does).

The merge overhead is the 3-shard p50 minus the 1-database p50, both over
tcpsrv.  The shards are built as ``search-service index --shard I/3`` builds
them, three processes at once (incrementally: a second run reuses them),
and the one database is ``xapian-compact`` of the three.  All servers share this machine's cores,
so three shards here cost more than one; on three hosts each shard's work
runs on its own host.

With ``--corpus PATH`` (story files or JSON Lines, e.g. a corpus written by
``../shared/tools/make_scale_corpus.py``; ``--stories N`` takes its first N
files, hard-linked into a folder of their own) the Xapian configurations
run on that corpus instead (queries drawn the same way from the headlines
of the stories the databases hold; Whoosh and FTS5 are left out), to see
how latency grows with the collection.  ``--reuse`` searches the last
run's databases again without looking for changed files (a build stopped
part way is searched as far as it got: its shards hold the stories of the
files they had committed); ``--group`` runs ``search-service group`` over
them first (a fresh build always does, after its indexers).

    python bench/xapian_bench.py [--per-class 200] [--rounds 3]
    python bench/xapian_bench.py --corpus ../scale/stories-1m --stories 300000 --per-class 100 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import xapian

from search_service.backends.xapian.document import fields_of
from search_service.backends.xapian.shards import SHARD_KEY
from search_service.config import Config
from search_service.engine import open_engine
from search_service.stories import iter_story_files

from _common import load_note, percentile, reuters_index, reuters_stories, stored_stories, table, work_dir
from query_bench import CLASSES, build_fts5, sample_queries, time_engine, time_fts5, time_searches

SHARDS = 3
CLI = [sys.executable, "-m", "search_service"]


def build(stories: Path, folder: Path, reuse: bool, regroup: bool) -> tuple[list[Path], Path]:
    """The shard databases and one database of all of them (compacted anew); with ``reuse``, the last run's.

    The shards are built at once, each by its own ``search-service index
    --shard I/N`` process (as on their own hosts; incrementally: a second
    run reuses them), and each process's summary line and time are printed;
    then ``search-service group`` groups the versions that lie on different
    shards (again with ``regroup``), as docs/scale-out.md says to.
    """
    dbs = [folder / f"shard{number}" for number in range(1, SHARDS + 1)]
    single = folder / "single"
    fresh = not (reuse and all(db.exists() for db in dbs))
    if fresh:
        index_in_parallel(stories, dbs)
    if fresh or regroup:
        group(dbs)
    elif single.exists():
        return dbs, single
    shutil.rmtree(single, ignore_errors=True)
    subprocess.run(["xapian-compact", "--no-full", *map(str, dbs), str(single)], check=True, capture_output=True)
    merged = xapian.WritableDatabase(str(single), xapian.DB_OPEN)
    merged.set_metadata(SHARD_KEY, "")  # compact kept shard 1's; the merge holds every story
    merged.commit()
    merged.close()
    return dbs, single


def index_in_parallel(stories: Path, dbs: list[Path]) -> None:
    """Index ``stories`` into the shards ``dbs``, one ``search-service index --shard I/N`` process each, at once."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*CLI, "index", str(stories), "--engine", f"xapian:{db}", "--shard", f"{number}/{SHARDS}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for number, db in enumerate(dbs, 1)
    ]
    for number, proc in enumerate(procs, 1):
        out, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"indexing shard {number} failed")
        line = out.strip().splitlines()[-1] if out.strip() else ""
        print(f"shard {number}/{SHARDS}: {line} (done {time.perf_counter() - started:.0f} s after the start)")
    print(f"{SHARDS} shards built in parallel in {time.perf_counter() - started:.0f} s")


def group(dbs: list[Path]) -> None:
    """``search-service group`` over the shards, each behind a writable ``xapian-tcpsrv``; its line and time."""
    started = time.perf_counter()
    with tcpsrv(dbs, writable=True) as addresses:
        done = subprocess.run(
            [*CLI, "group", "--engine", "xapian+tcp://" + ",".join(addresses)], capture_output=True, text=True
        )
    if done.returncode:
        sys.exit(f"grouping across shards failed: {done.stderr.strip()}")
    print(f"search-service group: {done.stdout.strip()} ({time.perf_counter() - started:.0f} s with the servers)")


def subset(corpus: Path, count: int) -> Path:
    """The first ``count`` story files of ``corpus`` (sorted), hard-linked into a folder of their own, once."""
    target = work_dir(f"xapian-corpus-{count}")
    if not any(target.iterdir()):
        for n, path in enumerate(sorted(iter_story_files([corpus]))[:count]):
            folder = target / f"{n // 10_000:04d}"
            folder.mkdir(exist_ok=True)
            os.link(path, folder / Path(path).name)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def tcpsrv(dbs: list[Path], writable: bool = False) -> Iterator[list[str]]:
    """One ``xapian-tcpsrv`` per database on loopback; yields their addresses, kills them (and their children) after."""
    procs, addresses = [], []
    try:
        for db in dbs:
            port = _free_port()
            procs.append(
                subprocess.Popen(
                    [
                        "xapian-tcpsrv",
                        *(["--writable"] if writable else []),
                        "--interface",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        str(db),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            addresses.append(f"127.0.0.1:{port}")
            deadline = time.monotonic() + 15
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("xapian-tcpsrv did not start")
                time.sleep(0.05)
        yield addresses
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=200, help="queries per class (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the queries (default 3)")
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--corpus", type=Path, default=None, help="stories to use instead of Reuters (Xapian only)")
    parser.add_argument("--stories", type=int, default=None, help="only the first N story files of --corpus")
    parser.add_argument("--reuse", action="store_true", help="search the databases of the last run again")
    parser.add_argument("--group", action="store_true", help="with --reuse: run search-service group over them first")
    args = parser.parse_args()
    if not shutil.which("xapian-tcpsrv"):
        sys.exit("needs xapian-tcpsrv: apt-get install xapian-tools")

    print(f"before: {load_note()}")
    runs: dict[str, tuple[dict[str, list[float]], dict[str, float]]] = {}
    if args.corpus is None:
        index_dir = reuters_index()
        stories = stored_stories(index_dir)
        queries = sample_queries(stories, args.per_class, args.seed)
        dbs, single = build(reuters_stories(), work_dir("xapian"), args.reuse, args.group)
        fts_path = work_dir("fts5") / "reuters.db"
        build_fts5(stories, fts_path)
        runs["whoosh"] = time_engine(index_dir, queries, args.rounds)
        _, counted, fts_totals = time_fts5(fts_path, queries, args.rounds)
        runs[f"fts5+count (SQLite {sqlite3.sqlite_version})"] = (counted, fts_totals)
    else:
        folder = subset(args.corpus, args.stories) if args.stories else args.corpus
        name = f"{args.corpus.resolve().name}-{args.stories or 'all'}"
        dbs, single = build(folder, work_dir(f"xapian-{name}"), args.reuse, args.group)
        held = xapian.Database(str(single))
        stories = [{"headline": fields_of(held.get_document(p.docid))["headline"]} for p in held.postlist("")]
        queries = sample_queries(stories, args.per_class, args.seed)
    runs["xapian 1 db (local)"] = time_searches(open_engine(Config(engine=f"xapian:{single}")), queries, args.rounds)
    for number, db in enumerate(dbs, 1):
        runs[f"shard {number}/{SHARDS} (local)"] = time_searches(
            open_engine(Config(engine=f"xapian:{db}")), queries, args.rounds
        )
    with tcpsrv([single, *dbs]) as addresses:
        one = open_engine(Config(engine=f"xapian+tcp://{addresses[0]}"))
        runs["xapian 1 db (tcpsrv)"] = time_searches(one, queries, args.rounds)
        three = open_engine(Config(engine="xapian+tcp://" + ",".join(addresses[1:])))
        runs[f"xapian {SHARDS} shards (tcpsrv)"] = time_searches(three, queries, args.rounds)

    corpus = (
        "Reuters"
        if args.corpus is None
        else f"{args.corpus}, first {args.stories:,}"
        if args.stories
        else str(args.corpus)
    )
    print(
        f"{len(stories):,} stories ({corpus}); {args.per_class} queries per class (seed {args.seed}), "
        f"{args.rounds} timed rounds; search(per_page=10) with highlights, total and facets"
    )
    headers = ["configuration"]
    for c in CLASSES:
        headers += [f"{c} p50", f"{c} p99"]
    headers.append("mean totals " + " / ".join(CLASSES))
    rows = []
    for name, (times, totals) in runs.items():
        row: list[object] = [name]
        for c in CLASSES:
            row += [percentile(times[c], 50), percentile(times[c], 99)]
        row.append(" / ".join(f"{totals[c]:,.0f}" for c in CLASSES))
        rows.append(row)
    print(table(headers, rows))
    merged, base = runs[f"xapian {SHARDS} shards (tcpsrv)"][0], runs["xapian 1 db (tcpsrv)"][0]
    print(
        "merge overhead (3 shards - 1 db, both over tcpsrv), p50 / p99 ms: "
        + ", ".join(
            f"{c} {percentile(merged[c], 50) - percentile(base[c], 50):+.2f} / "
            f"{percentile(merged[c], 99) - percentile(base[c], 99):+.2f}"
            for c in CLASSES
        )
    )
    sizes = [sum(f.stat().st_size for f in db.rglob("*") if f.is_file()) / 2**20 for db in (single, *dbs)]
    print(f"database sizes (MiB): 1 db {sizes[0]:.0f} (compacted); shards " + ", ".join(f"{x:.0f}" for x in sizes[1:]))
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()

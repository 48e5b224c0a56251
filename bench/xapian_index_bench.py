"""Indexing, one process each, on the same story files: the Whoosh builder and the Xapian indexer, CPU per story.

Each round runs ``search-service index DIR`` into a fresh folder three ways,
one after the other: the Whoosh engine with ``--procs 1`` (one worker: the
per-worker rate of its segment builder), the Xapian engine (one process, its
writer is single-threaded) and, with ``--before PATH``, the Xapian engine of
another checkout (``PATH`` holds its ``search_service`` package, e.g. an
export of main) for before/after in the same run.  The CPU seconds of each
process (user + system, from ``getrusage`` of the children) are what the
machine's load changes least; wall seconds are printed beside them.

    python bench/xapian_index_bench.py DIR [--rounds 2] [--before PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import load_note, table, work_dir


def run(label: str, args: list[str], pythonpath: str | None) -> tuple[str, int, float, float]:
    """One indexing process: (label, stories indexed, CPU seconds, wall seconds)."""
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "search_service", "index", *args], capture_output=True, text=True, env=env, cwd="/"
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{label} failed: {done.stderr.strip()}")
    line = done.stdout.strip().splitlines()[-1]
    stories = int(line.split(": ", 1)[1].split(" added")[0]) if ": " in line else 0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return label, stories, cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stories", type=Path, help="a folder of story files")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, default=None, help="a checkout's folder holding search_service")
    args = parser.parse_args()
    folder = work_dir("xapian-index-bench")
    stories = str(args.stories.resolve())
    print(f"before: {load_note()}")
    rows = []
    for round_ in range(1, args.rounds + 1):
        runs = [
            ("whoosh --procs 1", ["--index", str(folder / "whoosh"), "--procs", "1"], None),
            ("xapian", ["--engine", f"xapian:{folder / 'xapian'}"], None),
        ]
        if args.before:
            runs.append(("xapian, --before", ["--engine", f"xapian:{folder / 'before'}"], str(args.before.resolve())))
        for label, extra, pythonpath in runs:
            for name in ("whoosh", "xapian", "before"):
                shutil.rmtree(folder / name, ignore_errors=True)
            label, count, cpu, wall = run(label, [stories, *extra], pythonpath)
            rows.append([round_, label, count, cpu, count / cpu, wall, count / wall])
    print(table(["round", "indexer", "stories", "CPU s", "stories/CPU s", "wall s", "stories/s"], rows))
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()

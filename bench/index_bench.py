"""Indexing speed: the 19,040 Reuters stories into a fresh index, then an unchanged re-run.

What a user waits for when running ``search-service index`` on an archive:
the full build (stories/s, seconds), how much memory it takes (peak RSS of
this process, and of the largest worker process, from ``getrusage``), how
big the index is on disk, and how long the incremental re-run over the same,
unchanged files takes (as a percentage of the full build).

The corpus is ``shared/corpora/reuters-stories.tar.gz`` (``shared/`` beside
the repo; ``--shared`` or ``$SEARCH_SERVICE_SHARED`` to point elsewhere),
extracted once into ``bench/.work/reuters``.  Each repeat builds into a new
temporary folder under ``bench/.work``, removed afterwards.

``--profile`` also runs a single-process build of a 3,000-file subset under
cProfile and prints the functions with the most time of their own.

    python bench/index_bench.py                 # default worker count
    python bench/index_bench.py --procs 1 --repeat 3
    python bench/index_bench.py --profile
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from search_service.backends.whoosh.indexer import default_procs, index_paths

from _common import WORK, reuters_stories, table  # also puts the repo on sys.path

PROFILE_FILES = 3000


def disk_bytes(folder: Path) -> int:
    """Bytes of all files in ``folder`` (the index as it sits on disk)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def peak_rss_mib(who: int) -> float:
    """Peak resident set size in MiB (``ru_maxrss`` is KiB on Linux); for children, the largest one."""
    return resource.getrusage(who).ru_maxrss / 1024


def build_once(stories: Path, procs: int) -> tuple[str, float, float, int, float, int]:
    """Build a fresh index and re-run it unchanged: (summary line, build s, stories/s, bytes, re-run s, unchanged files)."""
    folder = Path(tempfile.mkdtemp(prefix="index-bench-", dir=WORK))
    try:
        index = folder / "index"
        started = time.perf_counter()
        summary = index_paths([stories], index, procs=procs)
        seconds = time.perf_counter() - started
        size = disk_bytes(index)
        started = time.perf_counter()
        again = index_paths([stories], index, procs=procs)
        rerun = time.perf_counter() - started
        if again.indexed or again.removed:
            raise SystemExit(f"the unchanged re-run was not a no-op: {again.line()}")
        return summary.line(), seconds, summary.indexed / seconds, size, rerun, again.unchanged_files
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def profile_subset(stories: Path, count: int) -> None:
    """cProfile of a single-process build of the first ``count`` files; top functions by own time."""
    files = sorted(stories.rglob("*.txt"))[:count]
    folder = Path(tempfile.mkdtemp(prefix="index-profile-", dir=WORK))
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        summary = index_paths(files, folder / "index", procs=1)
        profiler.disable()
        print(f"\nprofile, {len(files)} files, procs=1: {summary.line()} (under cProfile)")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=default_procs(), help="worker processes (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="full builds to time (default: 1)")
    parser.add_argument("--shared", type=Path, default=None, help="the shared/ folder (default: beside the repo)")
    parser.add_argument(
        "--profile", action="store_true", help=f"also profile a {PROFILE_FILES:,}-file single-process build"
    )
    args = parser.parse_args()
    if args.shared is not None:
        os.environ["SEARCH_SERVICE_SHARED"] = str(args.shared)

    WORK.mkdir(parents=True, exist_ok=True)
    stories = reuters_stories()
    print(
        f"corpus: {stories} ({sum(1 for _ in stories.rglob('*.txt')):,} files); "
        f"procs={args.procs}, cpus={os.cpu_count()}"
    )
    rows = []
    for n in range(1, args.repeat + 1):
        line, seconds, rate, size, rerun, unchanged = build_once(stories, args.procs)
        print(f"run {n}: {line}")
        rows.append([f"run {n}", rate, seconds, size / 2**20, rerun, 100.0 * rerun / seconds, unchanged])
    print()
    print(table(["build", "stories/s", "seconds", "index MiB", "re-run s", "re-run %", "unchanged files"], rows))
    print(
        f"\npeak RSS: this process {peak_rss_mib(resource.RUSAGE_SELF):.0f} MiB, "
        f"largest worker {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB"
    )
    if args.profile:
        profile_subset(stories, PROFILE_FILES)


if __name__ == "__main__":
    main()

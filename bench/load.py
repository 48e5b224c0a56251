"""Mixed load on a live server over Reuters: latency per endpoint, errors, and memory over time.

N keep-alive clients (threads + ``http.client``) send a fixed-seed mix for M
seconds or R requests in all:

* 60% ``/api/search``: one or two headline words, a quoted two-word phrase or
  a trailing wildcard; pages 1-5, per_page 10-50, every sort order, and a date
  window on 30% of them;
* 15% ``/api/stories/<id>``, 10% ``/api/stories/<id>/related``;
* 15% ``/api/suggest`` with a 2-5 letter prefix of a headline word.

Every answer must be a 200 (all ids are real, all parameters valid): anything
else is an error.  The server's VmRSS is read from /proc every second; a
stable server shows no growth between the first and the last tenth of the run.

    python bench/load.py [--index DIR] [--clients 8] [--seconds 30 | --requests 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
import urllib.parse
from datetime import datetime, timedelta
from pathlib import Path
from statistics import mean

from _common import (
    Server,
    headline_vocabulary,
    load_note,
    percentile,
    python_load,
    reuters_index,
    stored_stories,
    table,
)

SORTS = ("relevance", "recent", "newest", "oldest")


class Mix:
    """Draws the next request of the mix; see the module docstring for the shares."""

    def __init__(self, stories: list[dict[str, object]]) -> None:
        self.ids = [str(s["id"]) for s in stories]
        self.words = headline_vocabulary(stories, 2000)
        dates = sorted(p for s in stories if isinstance(p := s.get("published"), datetime))
        self.first, self.last = dates[0].date(), dates[-1].date()

    def __call__(self, rng: random.Random) -> tuple[str, str]:
        r = rng.random()
        if r < 0.60:
            return "search", "/api/search?" + urllib.parse.urlencode(self._search(rng))
        if r < 0.75:
            return "story", f"/api/stories/{urllib.parse.quote(rng.choice(self.ids), safe='')}"
        if r < 0.85:
            return "related", f"/api/stories/{urllib.parse.quote(rng.choice(self.ids), safe='')}/related"
        word = rng.choice(self.words)
        return "suggest", "/api/suggest?" + urllib.parse.urlencode({"q": word[: rng.randint(2, 5)]})

    def _search(self, rng: random.Random) -> dict[str, object]:
        a, b = rng.sample(self.words, 2)
        kind = rng.random()
        q = a if kind < 0.45 else f"{a} {b}" if kind < 0.8 else f'"{a} {b}"' if kind < 0.9 else f"{a[:4]}*"
        params: dict[str, object] = {
            "q": q,
            "page": rng.choice((1, 1, 1, 2, 3, 5)),
            "per_page": rng.choice((10, 10, 20, 50)),
            "sort": rng.choice(SORTS),
        }
        if rng.random() < 0.3:
            start = self.first + timedelta(days=rng.randint(0, (self.last - self.first).days))
            params["from"] = start.isoformat()
            params["to"] = (start + timedelta(days=rng.randint(7, 120))).isoformat()
        return params


class RssSampler(threading.Thread):
    """Reads the server's VmRSS every ``interval`` seconds until stopped."""

    def __init__(self, server: Server, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []  # (seconds since start, KiB by kind)
        self._done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._done.is_set():
            memory = self.server.memory_kib()
            if memory:
                self.samples.append((time.monotonic() - started, memory))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def slope_mib_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares RSS trend (MiB per minute) over ``samples``."""
    if len(samples) < 2:
        return 0.0
    ts, vs = [t for t, _ in samples], [v / 1024 for _, v in samples]
    mt, mv = mean(ts), mean(vs)
    var = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / var if var else 0.0


def report_memory(before: dict[str, int], samples: list[tuple[float, dict[str, int]]]) -> None:
    """Peak, first-tenth vs last-tenth growth and second-half trend of VmRSS and RssAnon."""
    print(
        f"server memory, {len(samples)} samples (1/s); idle before the run: "
        + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in before.items())
    )
    for kind in ("VmRSS", "RssAnon"):
        series = [(t, m[kind]) for t, m in samples if kind in m]
        mib = [v / 1024 for _, v in series]
        if not mib:
            continue
        tenth = max(1, len(mib) // 10)
        first, last = mean(mib[:tenth]), mean(mib[-tenth:])
        print(
            f"  {kind}: peak {max(mib):.0f} MiB; mean of the first 10% {first:.1f} MiB, of the last 10% "
            f"{last:.1f} MiB, growth {last - first:+.1f} MiB ({(last - first) / first * 100:+.1f}%); "
            f"trend over the second half {slope_mib_per_minute(series[len(series) // 2 :]):+.2f} MiB/min"
        )
        step = max(1, len(mib) // 20)
        print("    over time (MiB): " + " ".join(f"{m:.0f}" for m in mib[::step]))
    print("  (VmRSS counts the mmapped index once per server thread's searcher; RssAnon is the process's own memory)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--index", type=Path, default=None, help="existing Reuters index (default: build in bench/.work)"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="run length when --requests is not given (default 30)"
    )
    parser.add_argument("--requests", type=int, default=None, help="total requests instead of a run length")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="hard stop for a --requests run (default 3600)"
    )
    parser.add_argument("--seed", type=int, default=1987)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: CPUs)")
    args = parser.parse_args()

    print(f"before: {load_note()}")
    index_dir = reuters_index(args.index)
    mix = Mix(stored_stories(index_dir))
    seconds = args.seconds if args.requests is None else args.max_seconds
    with Server(index_dir, log_name="load", workers=args.workers) as server:
        before = server.memory_kib()
        sampler = RssSampler(server)
        sampler.start()
        cpu0 = server.cpu_seconds()
        result = python_load(
            server.host, server.port, mix, clients=args.clients, seconds=seconds, requests=args.requests, seed=args.seed
        )
        server_cpu = (server.cpu_seconds() - cpu0) / result.seconds
        sampler.stop()
    rows = []
    for label in ("search", "story", "related", "suggest"):
        ms = result.latencies.get(label, [])
        rows.append(
            [
                label,
                len(ms),
                percentile(ms, 50),
                percentile(ms, 99),
                max(ms, default=float("nan")),
                result.errors.get(label, 0),
            ]
        )
    everything = result.all_latencies()
    rows.append(
        [
            "all",
            len(everything),
            percentile(everything, 50),
            percentile(everything, 99),
            max(everything, default=float("nan")),
            sum(result.errors.values()),
        ]
    )
    print(
        f"{result.requests:,} requests from {args.clients} clients in {result.seconds:.1f} s = "
        f"{result.requests / result.seconds:,.0f} req/s; server CPU {server_cpu * 100:.0f}% of a core "
        f"(the Python client shares the {os.cpu_count()} cores)"
    )
    print(table(["endpoint", "ok", "p50 ms", "p99 ms", "max ms", "errors"], rows))
    errors = sum(result.errors.values())
    print(f"errors: {errors} ({'OK' if errors == 0 else 'must be 0'})")
    for sample in result.error_samples:
        print(f"  error: {sample}")
    report_memory(before, sampler.samples)
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()

"""What an index's disk space goes to: each part of its segments, and the files beside them.

A Whoosh segment is one compound file (``.seg``) holding several parts: the
postings (documents, frequencies and positions), the term index, the stored
fields (the stories' text, compressed a story at a time) and per-document
columns (field lengths, dates). Beside the segments are the spelling files,
the near-duplicate tables and the file manifest. Sizes in MiB (2**20 bytes),
as ``scale_bench.py`` prints them; several folders are printed side by side.

    python bench/index_size.py bench/.work/scale-1000000/index
    python bench/index_size.py OLD_INDEX NEW_INDEX
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from whoosh.filedb.compound import CompoundStorage
from whoosh.filedb.structfile import StructFile

from _common import table

#: (what a file or segment part is, a pattern of its name), the first that matches
COMPONENTS = [
    ("postings (documents, frequencies, positions)", r"\.pst$"),
    ("term index", r"\.trm$"),
    ("stored fields (the stories, compressed)", r"_stored\.col$"),
    ("field lengths", r"_len\.col$"),
    ("other columns (dates)", r"\.col$"),
    ("words files (spelling, one per segment)", r"\.words$"),
    ("spelling deletion index (one per commit)", r"^search_service_spelling_"),
    ("near-duplicate band table", r"^search_service_bands_"),
    ("near-duplicate groups", r"^search_service_groups_"),
    ("file manifest", r"^search_service_files_"),
    ("other", r""),
]


def component(name: str) -> str:
    return next(what for what, pattern in COMPONENTS if re.search(pattern, name))


def sizes(index: Path) -> Counter[str]:
    """Bytes per component of the index in ``index``."""
    found: Counter[str] = Counter()
    for path in index.iterdir():
        if path.suffix == ".seg":
            with open(path, "rb") as raw:
                parts = CompoundStorage(StructFile(raw), use_mmap=False)
                for name in parts.list():
                    found[component(name)] += parts.file_length(name)
                found["other"] += path.stat().st_size - sum(parts.file_length(name) for name in parts.list())
        elif path.is_file():
            found[component(path.name)] += path.stat().st_size
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", nargs="+", type=Path, help="index folders")
    args = parser.parse_args()
    found = [sizes(index) for index in args.index]
    rows = [[what, *(f[what] / 2**20 for f in found)] for what, _ in COMPONENTS if any(f[what] for f in found)]
    rows.append(["total", *(sum(f.values()) / 2**20 for f in found)])
    print(table(["MiB", *(str(index) for index in args.index)], rows))


if __name__ == "__main__":
    main()

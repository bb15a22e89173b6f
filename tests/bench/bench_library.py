"""The library at scale: 100,000 registered pieces (synthetic records), measured in one run.

    python -m tests.bench.bench_library [--pieces 100000] [--queries 50]

(a) registering: the time to add one piece (two small files copied, its row, files, tags
    and full-text entry committed), median over the last 200 registrations into the full
    library; target < 20 ms;
(b) ``list`` with a filter (style, key and mode, tempo range, instrument, tag, rating,
    collection; newest first, 50 rows) and ``search`` (FTS5, one and two words): median and
    worst time per query over ``--queries`` queries each; target < 50 ms.
The bulk of the library is written straight through the store's `_index` (the same rows as
`register`, without copying files) so that building 100,000 pieces takes about a minute;
then the library is closed and opened again, as by the next command.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from engine.library.store import FileEntry, Library

STYLES = ("chorale", "waltz", "jazz", "folk", "march", "lullaby", "blues", "baroque", "pop")
KEYS = ("C", "G", "D", "A", "E", "F", "Bb", "Eb")
PARTS = ("Soprano", "Alto", "Tenor", "Bass", "Violin", "Viola", "Cello", "Piano", "Flute")
MOODS = ("calm", "melancholy", "bright", "tense", "gentle", "lively", "dark", "festive")
REGISTER_TARGET_MS = 20.0
QUERY_TARGET_MS = 50.0


def record(rng: random.Random, i: int) -> dict:
    style, key = rng.choice(STYLES), rng.choice(KEYS)
    mode = rng.choice(("major", "minor"))
    parts = rng.sample(PARTS, rng.randint(1, 4))
    prompt = f"a {rng.choice(MOODS)} {style} in {key} {mode} for {', '.join(parts).lower()}"
    return {
        "format": 2,
        "prompt": prompt,
        "request": {"seed": i, "model": "score-base"},
        "plan": {
            "style": style,
            "key": key,
            "mode": mode,
            "meter": rng.choice(("4/4", "3/4", "6/8")),
            "tempo_bpm": float(rng.randint(50, 180)),
            "bars": rng.choice((8, 16, 32)),
            "parts": [{"name": p} for p in parts],
        },
        "seed": i,
        "model": {"name": "score-base", "sha256": f"{i % 7:064x}"},
        "outputs": {"music.mid": {"sha256": f"{i:064x}", "bytes": 1000}},
        "created": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00+00:00",
    }


def build(lib: Library, n: int, rng: random.Random) -> None:
    t0 = time.perf_counter()
    for i in range(n):
        entries = [
            FileEntry("music.mid", f"{i:064x}", 1000),
            FileEntry("generation.json", f"{i + n:064x}", 3000),
        ]
        lib._index(f"b{i:07d}", record(rng, i), entries, origin=None, title=None)
        if i % 10 == 9:
            lib.db.execute("INSERT INTO tags (piece, tag) VALUES (?, ?)", (i + 1, "keep"))
        if i % 13 == 0:
            lib.db.execute("UPDATE pieces SET rating = ? WHERE n = ?", (1 + i % 5, i + 1))
        if (i + 1) % 20000 == 0:
            print(f"  {i + 1:,} pieces in {time.perf_counter() - t0:.0f} s", flush=True)
    lib.collection_add("favourites", [f"b{i:07d}" for i in range(0, n, 97)])


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pieces", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library.open(Path(tmp) / "lib")
        print(f"building a library of {args.pieces:,} pieces …", flush=True)
        build(lib, args.pieces, rng)
        lib.close()  # as each command does (closing lets SQLite gather the planner's statistics)
        lib = Library.open(Path(tmp) / "lib")
        src = Path(tmp) / "src"
        src.mkdir()
        reg = []
        for i in range(200):
            (src / "music.mid").write_bytes(rng.randbytes(2000))
            rec = record(rng, args.pieces + i)
            (src / "generation.json").write_text(str(rec))
            files = {"music.mid": src / "music.mid", "generation.json": src / "generation.json"}
            reg.append(timed(lambda files=files, rec=rec: lib.register(files, rec)))
        filters = [
            {"style": "waltz"},
            {"key": "D", "mode": "minor"},
            {"tempo_min": 60, "tempo_max": 80, "style": "chorale"},
            {"instrument": "Cello"},
            {"tag": "keep", "style": "jazz"},
            {"min_rating": 4},
            {"collection": "favourites"},
            {"model": "score-base", "meter": "3/4", "sort": "tempo"},
        ]
        words = ["waltz", "melancholy cello", "bright", "chorale soprano", "keep", "festive"]
        lists, searches = [], []
        for q in range(args.queries):
            f = filters[q % len(filters)]
            lists.append(timed(lambda f=f: lib.list(**f)))
            w = words[q % len(words)]
            searches.append(timed(lambda w=w: lib.search(w)))
        total = lib.count()
        lib.close()
    rows = [
        ("register one piece", reg, REGISTER_TARGET_MS),
        ("list with a filter (50 rows)", lists, QUERY_TARGET_MS),
        ("search (FTS5, 50 rows)", searches, QUERY_TARGET_MS),
    ]
    print(f"\nlibrary of {total:,} pieces")
    print("| operation | median ms | worst ms | target ms | met |")
    print("|---|---:|---:|---:|---|")
    for name, times, target in rows:
        med, worst = statistics.median(times), max(times)
        met = "yes" if med < target else "NO"
        print(f"| {name} | {med:.2f} | {worst:.2f} | < {target:g} | {met} |")


if __name__ == "__main__":
    main()

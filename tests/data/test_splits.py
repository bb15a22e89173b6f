"""Splits: by ratio with a seed, grouped by song, optionally stratified."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.data.splits import assign, parse_ratios, split_counts, split_dataset
from engine.data.store import Dataset, DatasetError, Item, item_id


def songs(n_songs: int, chunks: int = 3, genres=("funk", "jazz")) -> list[Item]:
    items = []
    for s in range(n_songs):
        for c in range(chunks):
            path = f"song{s:03d}~{c:03d}.wav"
            item = Item(item_id(path), path, "0" * 64, "audio", 1, group=f"g{s}")
            items.append(item.with_meta({"genre": genres[s % len(genres)]}, "user"))
    return items


@pytest.mark.parametrize("seed", range(8))
def test_chunks_of_one_song_never_straddle_splits(seed):
    items = songs(60)
    chosen = assign(items, (0.8, 0.1, 0.1), seed)
    by_group: dict[str, set[str]] = {}
    for i in items:
        by_group.setdefault(i.group, set()).add(chosen[i.id])
    assert all(len(s) == 1 for s in by_group.values())
    counts = Counter(chosen.values())
    assert abs(counts["train"] / len(items) - 0.8) <= 0.05
    assert abs(counts["validation"] / len(items) - 0.1) <= 0.05
    assert abs(counts["test"] / len(items) - 0.1) <= 0.05


def test_the_same_seed_gives_the_same_splits_and_another_seed_others():
    items = songs(40)
    assert assign(items, seed=3) == assign(items, seed=3)
    assert assign(items, seed=3) != assign(items, seed=4)


@pytest.mark.parametrize("seed", range(8))
def test_stratified_splits_give_each_genre_its_share(seed):
    items = songs(40, chunks=1, genres=("funk",) * 3 + ("jazz",))  # 30 funk, 10 jazz
    chosen = assign(items, (0.8, 0.1, 0.1), seed, stratify="genre")
    for genre, total in (("funk", 30), ("jazz", 10)):
        got = Counter(chosen[i.id] for i in items if i.meta["genre"] == genre)
        assert abs(got["train"] - 0.8 * total) <= 1, (genre, got)
        assert got["validation"] >= 1 and got["test"] >= 1


def test_ratios_are_read_and_checked():
    assert parse_ratios("80,10,10") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_ratios("0.9,0.1") == pytest.approx((0.9, 0.1, 0.0))
    for bad in ("a,b", "1,2,3,4", "-1,1,1", "0,5,5", "0,0,0"):
        with pytest.raises(DatasetError):
            parse_ratios(bad)
    with pytest.raises(DatasetError, match="stratify"):
        assign(songs(2), stratify="colour")


def test_split_dataset_is_a_recorded_version(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    with ds.change({"name": "import"}, "add") as ch:
        h = ch.put_bytes(b"x")
        for item in songs(10):
            item.hash = h
            ch.put(item)
    v = split_dataset(ds, (0.8, 0.1, 0.1), seed=1, command=["disco-musica", "data", "split"])
    assert v == ds.head
    step = ds.version(v).step
    assert step == {
        "name": "split",
        "ratios": [0.8, 0.1, 0.1],
        "seed": 1,
        "stratify": None,
        "grouped_by": "group",
    }
    assert sum(split_counts(ds.items()).values()) == 30
    assert "unassigned" not in split_counts(ds.items())
    assert split_dataset(ds, (0.8, 0.1, 0.1), seed=1) is None  # nothing to change
    with pytest.raises(DatasetError, match="no items"):
        split_dataset(Dataset.create(tmp_path / "empty"))

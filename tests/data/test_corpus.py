"""Corpus builder and training windows on real music21 pieces."""

from __future__ import annotations

import json

import numpy as np

from engine.data import corpus as corpus_mod
from engine.data.corpus import build_corpus, corpus_files, duplicate_of, style_of
from engine.data.dataset import ScoreDataset, TrainStream
from engine.progress import ProgressLog
from engine.symbolic.tokenizer import STYLES, TONICS


def test_small_corpus_metadata_and_split(small_corpus):
    summary = json.loads((small_corpus / "summary.json").read_text())
    assert summary["failed"] == 0
    assert set(summary["by_style"]) == set(STYLES)
    rows = [json.loads(line) for line in open(small_corpus / "pieces.jsonl")]
    bwv = next(r for r in rows if r["id"] == "bach/bwv66.6.mxl")
    assert (bwv["style"], bwv["tonic"], bwv["mode"], bwv["meter"]) == (
        "chorale",
        6,
        "minor",
        "4/4",
    )
    assert len(bwv["tracks"]) == 4 and {t["program"] for t in bwv["tracks"]} == {52}
    split = json.loads((small_corpus / "split.json").read_text())
    assert split["seed"] == corpus_mod.SPLIT_SEED and split["val"]
    assert set(split["val"]) <= {r["id"] for r in rows}


def test_split_is_deterministic(small_corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(again, paths=[p for p in _paths(small_corpus)], workers=1)
    assert (again / "split.json").read_text() == (small_corpus / "split.json").read_text()
    assert np.array_equal(np.load(again / "tokens.npy"), np.load(small_corpus / "tokens.npy"))


def _paths(directory):
    ids = [json.loads(line)["id"] for line in open(directory / "pieces.jsonl")]
    return sorted({i.split("#")[0] for i in ids})


def test_failing_pieces_are_reported_and_skipped(tmp_path, monkeypatch):
    real = corpus_mod._scores_of

    def flaky(path):
        if path.startswith("luca/"):
            raise ValueError("cannot parse this file")
        return real(path)

    monkeypatch.setattr(corpus_mod, "_scores_of", flaky)
    out = tmp_path / "c"
    log = ProgressLog()
    summary = build_corpus(
        out, paths=["bach/bwv66.6.mxl", "luca/gloria.xml"], workers=1, progress=log
    )
    assert summary["pieces"] == 1 and summary["failed"] == 1
    # one "files" event a file, naming the piece read (or the file that failed)
    assert [(e.stage, e.done, e.total) for e in log] == [("files", 1, 2), ("files", 2, 2)]
    assert log[0].message.startswith("bach/bwv66.6") and log[1].message == "luca/gloria.xml"
    failed = [json.loads(line) for line in open(out / "failed.jsonl")]
    assert failed == [{"id": "luca/gloria.xml", "error": "ValueError: cannot parse this file"}]
    assert not (tmp_path / "c.partial").exists()


def test_corpus_file_selection():
    files = corpus_files()
    paths = {f.path for f in files}
    assert "bach/bwv66.6.mxl" in paths
    assert not any(p.endswith(".rntxt") for p in paths)  # analyses, not music
    assert "essenFolksong/han1.abc" not in paths  # Chinese songs are not European folk
    assert style_of("essenFolksong/irl.abc") == "celtic"
    assert duplicate_of("bach/bwv277.krn", {"bach/bwv277.krn", "bach/bwv277.mxl"}) == (
        "bach/bwv277.mxl"
    )
    assert {f.style for f in files} == set(STYLES)


def test_transposition_moves_pitches_and_key(small_corpus):
    ds = ScoreDataset(small_corpus)
    tok = ds.tokenizer
    piece = next(p for p in ds.pieces if p.id == "bach/bwv66.6.mxl")
    a = ds.window(piece, 0, max_tokens=1024)
    b = ds.window(piece, 0, max_tokens=1024, transpose=3)
    pa = tok.pitch_of[np.array(a)]
    pb = tok.pitch_of[np.array(b)]
    assert np.array_equal(pb[pa >= 0], pa[pa >= 0] + 3)
    ca, _ = tok.split(a)
    cb, _ = tok.split(b)
    assert TONICS.index(cb["key"]) == (TONICS.index(ca["key"]) + 3) % 12


def test_track_permutation_and_stream_resume(small_corpus):
    ds = ScoreDataset(small_corpus)
    piece = next(p for p in ds.pieces if p.id == "bach/bwv66.6.mxl")
    a = ds.window(piece, 0, max_tokens=1024)
    b = ds.window(piece, 0, max_tokens=1024, order=[3, 2, 1, 0])
    _, ta = ds.tokenizer.split(a)
    _, tb = ds.tokenizer.split(b)
    assert [t.bars for t in tb] == [t.bars for t in reversed(ta)]
    s1 = TrainStream(ds, max_tokens=512, tokens_per_batch=2048, seed=5)
    next(s1)
    state = s1.state_dict()
    x1, n1 = next(s1)
    s2 = TrainStream(ds, max_tokens=512, tokens_per_batch=2048, seed=99)
    s2.load_state_dict(state)
    x2, n2 = next(s2)
    assert np.array_equal(x1, x2) and np.array_equal(n1, n2)
    assert x1.shape[1] <= 512


def test_built_corpus_folders_are_searchable(small_corpus):
    """Every folder of a built corpus has its search bit (the tokenizer/ folder once came out
    0644, which a user who is not root cannot open files in)."""
    import stat

    for d in (small_corpus, *(p for p in small_corpus.rglob("*") if p.is_dir())):
        assert d.stat().st_mode & stat.S_IXUSR, f"{d} is {stat.filemode(d.stat().st_mode)}"

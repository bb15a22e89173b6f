"""``disco-musica detect``: the watermark, the metadata statement and the library's piece."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from engine.audio.render import write_audio
from engine.cli import main
from engine.library.marks import inspect_file, marks_of
from engine.library.store import Library

SR = 44100


def _music(seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    """Chords with a little noise: something with a spectrum to hide a mark in."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for k, f in enumerate((220.0, 277.2, 329.6, 440.0, 659.3, 880.0)):
        x += np.sin(2 * np.pi * f * t + k) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.3 + k / 7) * t))
    x = 0.08 * x + 0.01 * rng.standard_normal(t.size)
    return np.stack([x, np.roll(x, 37)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marked")
    write_audio(_music(), SR, folder / "music.wav")
    sf.write(folder / "plain.wav", _music(seed=1), SR)  # another program's file
    return folder


def test_a_written_file_is_found_by_its_watermark_and_its_statement(marked):
    found = inspect_file(marked / "music.wav")
    assert found.ours and found.watermark and found.kind == "audio"
    assert found.mark == marks_of({"music.wav": marked / "music.wav"})["music.wav"]
    assert found.statement == f"AI-generated with Disco-Musica ({found.mark})"
    plain = inspect_file(marked / "plain.wav")
    assert not plain.ours and plain.mark is None and plain.statement is None


def test_the_library_names_the_piece_by_file_and_by_mark_after_conversion(marked, tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        rec = {"prompt": "chords", "request": {"seed": 1}, "outputs": {}}
        (tmp_path / "generation.json").write_text(json.dumps(rec))
        files = {"music.wav": marked / "music.wav", "generation.json": tmp_path / "generation.json"}
        piece = lib.register(files, rec, marks=marks_of(files))
        same = inspect_file(marked / "music.wav", lib)
        assert same.pieces == [{"id": piece.id, "title": "chords", "how": "same file"}]
        # Converted by another program (tags gone), cut, made quieter: found by its mark.
        x, _ = sf.read(marked / "music.wav", dtype="float32")
        cut = tmp_path / "cut.ogg"
        sf.write(cut, 0.5 * x[SR : 7 * SR], SR, format="OGG")
        found = inspect_file(cut, lib)
        assert found.watermark and found.statement is None
        assert found.pieces == [{"id": piece.id, "title": "chords", "how": "mark"}]


def test_detect_exits_0_for_ours_1_otherwise_and_gives_json(marked, capsys, tmp_path):
    lib = tmp_path / "empty-lib"
    Library.open(lib).close()
    code = main(["detect", str(marked / "music.wav"), "--library", str(lib)])
    out = capsys.readouterr().out
    assert code == 0 and "made with Disco-Musica — watermark dm:" in out
    code = main(
        [
            "detect",
            str(marked / "music.wav"),
            str(marked / "plain.wav"),
            "--json",
            "--library",
            str(lib),
        ]
    )
    found = json.loads(capsys.readouterr().out)
    assert code == 1 and [f["ours"] for f in found] == [True, False]
    assert found[0]["mark"].startswith("dm:") and len(found[0]["mark"]) == 11


def test_midi_and_musicxml_are_ours_by_their_statement(tmp_path):
    from symusic import Note, Score, Track

    from engine.symbolic.midi import midi_bytes

    score = Score(480)
    track = Track("Piano", 0)
    track.notes.append(Note(0, 480, 60, 80))
    score.tracks.append(track)
    path = tmp_path / "a.mid"
    path.write_bytes(midi_bytes(score))
    found = inspect_file(path)
    assert found.ours and not found.watermark and found.statement.startswith("AI-generated")
    other = tmp_path / "b.mid"
    other.write_bytes(bytes(score.dumps_midi()))
    assert not inspect_file(other).ours
    assert (
        hashlib.sha256(path.read_bytes()).hexdigest()
        != hashlib.sha256(other.read_bytes()).hexdigest()
    )

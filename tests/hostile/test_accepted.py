"""Odd but valid inputs: they must work (exit 0, a warning at most), not be refused.

6 channels, 8-bit at 8 kHz, 24-bit and float at 192 kHz, a WAV named .flac or .mp3, a
MIDI file named .txt (its content is MIDI: read it, or refuse it saying so; "corrupt" is
wrong), 1 tick a beat, 20 tracks for harmonize, an empty prompt, and replacing our own earlier
output.  Each case checks that the outputs exist and that no
file that was there before was changed or removed.
"""

from __future__ import annotations

import pytest

ACCEPTED = [
    # (id, argv, input files, outputs that must exist afterwards, relative to here/)
    *[
        (f"transcribe-{name}", ["transcribe", name], [name], [f"{stem}.mid", f"{stem}.json"])
        for name, stem in (
            ("short.wav", "short"),
            ("six-channel.wav", "six-channel"),
            ("pcm8-8k.wav", "pcm8-8k"),
            ("pcm24-192k.wav", "pcm24-192k"),
            ("float-8k.wav", "float-8k"),
            ("float-192k.wav", "float-192k"),
            ("wav-named.mp3", "wav-named"),
            ("wav-named.flac", "wav-named"),
        )
    ],
    *[
        (
            f"accompany-{name}",
            ["accompany", name, "--part", "drums", "--out", "acc"],
            [name],
            ["acc/generation.json", "acc/part.mid", "acc/mix.wav"],
        )
        for name in (
            "pulse-6ch.wav",
            "pulse-8k-pcm8.wav",
            "pulse-192k-float.wav",
            "pulse-24bit.wav",
            "pulse-named.flac",
        )
    ],  # fmt: skip
    (
        "harmonize-pcm24-192k.wav",
        ["harmonize", "pcm24-192k.wav", "--formats", "mid", "--seed", "1", "--out", "h"],
        ["pcm24-192k.wav"],
        ["h/generation.json", "h/music.mid"],
    ),
    (
        "harmonize-twenty-tracks.mid",
        ["harmonize", "twenty-tracks.mid", "--formats", "mid", "--seed", "1", "--out", "h"],
        ["twenty-tracks.mid"],
        ["h/generation.json", "h/music.mid"],
    ),
    (
        "add-tracks-midi-named.txt",
        ["add-tracks", "midi-named.txt", "--parts", "bass", "--seed", "1", "--out", "x.mid"],
        ["midi-named.txt"],
        ["x.mid", "x.json"],
    ),
    (
        "add-tracks-tpq1.mid",
        ["add-tracks", "tpq1.mid", "--parts", "bass", "--seed", "1", "--out", "x.mid"],
        ["tpq1.mid"],
        ["x.mid", "x.json"],
    ),
    *[
        (
            f"generate-prompt={name}",
            ["generate", text, "--formats", "mid", "--bars", "2", "--seed", "1", "--out", "g"],
            [],
            ["g/generation.json", "g/music.mid"],
        )
        for name, text in (("empty", ""), ("spaces", "   "), ("punctuation", "!!! ??? ..."))
    ],  # fmt: skip
    (
        "generate-out=empty-folder+overwrite",
        [
            "generate",
            "",
            "--formats",
            "mid",
            "--bars",
            "2",
            "--seed",
            "1",
            "--out",
            "empty-folder",
            "--overwrite",
        ],
        ["empty-folder"],
        ["empty-folder/generation.json", "empty-folder/music.mid"],
    ),  # fmt: skip
    (
        "accompany-part=BASS-with-spaces",
        ["accompany", "tune.mid", "--part", " BASS ", "--out", "acc"],
        ["tune.mid"],
        ["acc/generation.json", "acc/part.mid"],
    ),
    ("prompt-empty", ["prompt", ""], [], []),
    ("models", ["models"], [], []),
    ("soundfonts", ["soundfonts"], [], []),
    ("soundfonts-json", ["soundfonts", "--json"], [], []),
    ("soundfonts-get-builtin", ["soundfonts", "get", "timgm6mb"], [], []),  # already there
]


@pytest.mark.parametrize(
    ("argv", "files", "outputs"),
    [pytest.param(a, f, o, id=i) for i, a, f, o in ACCEPTED],
)
def test_accepted(argv, files, outputs, sandbox):
    sandbox.build(files)
    r = sandbox.run(argv, timeout=180)  # the first audio analysis compiles librosa's kernels
    assert r.exc is None, r.exc
    assert r.code == 0, r.err[-3000:]
    assert "Traceback" not in r.err
    for line in r.err.strip().splitlines():
        assert not line.startswith("error"), r.err
    for out in outputs:
        assert (sandbox.here / out).exists(), f"{out} was not written; {r.changes}"
    kept = [c for c in r.changes if not c.startswith("created ")]
    touched = [c for c in kept if not c.endswith("(size, mtime)") and not c.endswith("(mtime)")]
    assert not touched, touched  # folders gain entries; no file may change or vanish


def test_replacing_our_own_output_is_allowed(sandbox):
    """--overwrite / --force replace what Disco-Musica wrote before (only that)."""
    first = ["generate", "", "--formats", "mid", "--bars", "2", "--seed", "1", "--out", "g"]
    assert sandbox.run(first).code == 0
    r = sandbox.run([*first[:-1], "g", "--seed", "2", "--overwrite"])
    assert r.exc is None, r.exc
    assert r.code == 0, r.err[-2000:]
    assert (sandbox.here / "g" / "generation.json").is_file()
    sketch = ["sketch", "--bars", "2", "--seed", "1", "--out", "s.mid"]
    assert sandbox.run(sketch).code == 0
    r = sandbox.run([*sketch, "--force"])
    assert r.exc is None, r.exc
    assert r.code == 0, r.err[-2000:]
    assert (sandbox.here / "s.json").is_file()

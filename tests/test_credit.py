"""engine.credit: every file Disco-Musica writes states that it is AI-generated, in the tags
other programs read (mutagen, music21, mido, Verovio), without touching the music; read_credit
finds the statement again and nothing in files of other programs."""

from __future__ import annotations

import io

import mido
import mutagen
import numpy as np
import pytest
import soundfile as sf
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine import __version__
from engine.audio.render import write_audio
from engine.credit import STATEMENT_PREFIX, Credit, CreditError, find_statement, read_credit
from engine.symbolic.midi import midi_bytes, read_midi, with_copyright
from engine.symbolic.notation import score_to_music21, write_musicxml

MARK = "dm:1a2b3c4d"
SR = 44100
# name, suffix, bit depth, whether its samples decode exactly as written
AUDIO = [
    ("wav16", "wav", 16),
    ("wav24", "wav", 24),
    ("flac16", "flac", 16),
    ("flac24", "flac", 24),
    ("ogg", "ogg", 16),
    ("mp3", "mp3", 16),
]
LOSSLESS = {"wav16", "wav24", "flac16", "flac24"}


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.01 * rng.standard_normal((t.size, 2))
    return tone.astype(np.float32)


@pytest.fixture(scope="module")
def score() -> Score:
    s = Score(480)
    s.tempos.append(Tempo(0, 100))
    s.time_signatures.append(TimeSignature(0, 3, 4))
    for program, name, pitches in ((0, "Piano", (60, 64, 67, 72)), (33, "Bass", (36, 43))):
        track = Track(name, program, False)
        for i, p in enumerate(pitches):
            track.notes.append(Note(i * 480, 480, p, 80))
        s.tracks.append(track)
    return s


def _mutagen_statements(path) -> list[str]:
    """The comment texts mutagen reads from ``path`` (ID3 COMM frames or Vorbis COMMENT)."""
    tags = mutagen.File(path).tags
    if hasattr(tags, "getall"):  # ID3 (MP3, and WAV's id3 chunk)
        return [t for frame in tags.getall("COMM") for t in frame.text]
    return list(tags.get("comment", []))


# ---------------------------------------------------------------------------------------------
# The statement


def test_the_statement_names_the_release_and_the_mark():
    assert Credit().statement == "AI-generated with Disco-Musica"  # no release: stable bytes
    assert Credit(MARK).statement == f"AI-generated with Disco-Musica ({MARK})"
    assert Credit().software == "Disco-Musica"
    assert Credit(version=__version__).statement == f"AI-generated with Disco-Musica {__version__}"
    for credit in (Credit(), Credit(MARK), Credit(MARK, version="1.2.3rc1")):
        assert Credit.parse(credit.statement) == credit
    assert Credit.parse(STATEMENT_PREFIX) == Credit(version=None)  # ID3v1's cut copy


@pytest.mark.parametrize("mark", ["", "two words", "a(b)", "é", "x" * 65, "line\nbreak"])
def test_a_mark_that_could_not_be_read_back_is_a_bug(mark):
    with pytest.raises(ValueError, match="printable ASCII"):
        Credit(mark)


def test_only_our_statement_counts():
    assert Credit.parse("Made with Disco-Musica 0.5.0") is None
    assert Credit.parse("not AI-generated with Disco-Musica 0.5.0") is None
    assert Credit.parse("AI-generated with Disco-Musica 0.5.0 and friends") is None
    cut = STATEMENT_PREFIX
    assert find_statement(["x", cut, Credit(MARK).statement, 3]) == Credit(MARK).statement
    assert find_statement(["Lavf60.3.100", ""]) is None


# ---------------------------------------------------------------------------------------------
# Audio


@pytest.mark.parametrize("name, fmt, depth", AUDIO, ids=[a[0] for a in AUDIO])
def test_audio_states_it_in_tags_mutagen_reads(tmp_path, audio, name, fmt, depth):
    path = write_audio(
        audio, SR, tmp_path / f"a.{fmt}", bit_depth=depth, credit=Credit(MARK), mark=False
    )
    assert Credit(MARK).statement in _mutagen_statements(path)
    assert read_credit(path) == Credit(MARK).statement
    plain = write_audio(audio, SR, tmp_path / f"plain.{fmt}", bit_depth=depth, mark=False)
    assert read_credit(plain) == Credit().statement  # no credit given: the statement still
    assert sf.info(path).format == sf.info(plain).format  # still the format asked for


@pytest.mark.parametrize("name, fmt, depth", AUDIO, ids=[a[0] for a in AUDIO])
def test_audio_with_its_statement_keeps_the_same_bytes(tmp_path, audio, name, fmt, depth):
    a = write_audio(
        audio, SR, tmp_path / f"a.{fmt}", bit_depth=depth, credit=Credit(MARK), mark=False
    )
    b = write_audio(
        audio, SR, tmp_path / f"b.{fmt}", bit_depth=depth, credit=Credit(MARK), mark=False
    )
    c = write_audio(
        audio, SR, tmp_path / f"c.{fmt}", bit_depth=depth, credit=Credit("dm:other"), mark=False
    )
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("name, fmt, depth", AUDIO, ids=[a[0] for a in AUDIO])
def test_the_statement_does_not_touch_the_samples(tmp_path, audio, name, fmt, depth):
    """The samples decode exactly as those of the same file written without any tag."""
    path = write_audio(
        audio, SR, tmp_path / f"a.{fmt}", bit_depth=depth, credit=Credit(MARK), mark=False
    )
    subtype = {"ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}.get(fmt, f"PCM_{depth}")
    bare = io.BytesIO()
    sf.write(bare, np.clip(audio, -1, 1), SR, format=fmt.upper(), subtype=subtype)
    bare.seek(0)
    dtype = "int32" if name in LOSSLESS else "float32"
    tagged, rate = sf.read(path, dtype=dtype)
    untagged, _ = sf.read(bare, dtype=dtype)
    assert rate == SR and tagged.shape == untagged.shape
    assert np.array_equal(tagged, untagged)
    if name in LOSSLESS:  # and they are the samples given, to the bit depth's step
        step = 2.0 ** (1 - depth)
        assert np.abs(tagged / 2.0**31 - audio).max() <= step


def test_a_wav_states_it_in_riff_info_too(tmp_path, audio):
    """A WAV keeps the statement in RIFF INFO (ICMT) when its id3 chunk is taken out."""
    path = write_audio(audio, SR, tmp_path / "a.wav", credit=Credit(MARK), mark=False)
    data = path.read_bytes()
    chunks, pos = [], 12
    while pos < len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunks.append((data[pos : pos + 4], data[pos : pos + 8 + size + (size & 1)]))
        pos += 8 + size + (size & 1)
    assert [c for c, _ in chunks] == [b"fmt ", b"LIST", b"data", b"id3 "]
    assert b"ICMT" in chunks[1][1] and Credit(MARK).statement.encode() in chunks[1][1]
    body = b"WAVE" + b"".join(raw for cid, raw in chunks if cid != b"id3 ")
    stripped = tmp_path / "stripped.wav"
    stripped.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    assert mutagen.File(stripped).tags is None
    assert sf.SoundFile(stripped).comment == Credit(MARK).statement
    assert read_credit(stripped) == Credit(MARK).statement


# ---------------------------------------------------------------------------------------------
# MIDI


def _notes(score: Score) -> list[tuple]:
    return [
        (t.name, t.program, n.time, n.duration, n.pitch, n.velocity)
        for t in score.tracks
        for n in t.notes
    ]


def test_midi_states_it_in_a_copyright_notice(score):
    data = midi_bytes(score, credit=Credit(MARK))
    first = mido.MidiFile(file=io.BytesIO(data)).tracks[0]
    assert first[0].type == "copyright" and first[0].time == 0
    assert first[0].text == Credit(MARK).statement
    texts = [m for t in mido.MidiFile(file=io.BytesIO(data)).tracks for m in t if m.is_meta]
    assert sum(m.type == "copyright" for m in texts) == 1
    plain = mido.MidiFile(file=io.BytesIO(midi_bytes(score))).tracks[0][0]
    assert plain.type == "copyright" and plain.text == Credit().statement
    assert midi_bytes(score, credit=Credit(MARK)) == data  # the same score, the same bytes


def test_midi_readers_ignore_the_notice(score):
    from engine.symbolic.tokenizer import ScoreTokenizer

    data = midi_bytes(score, credit=Credit(MARK))
    again = read_midi(data)
    assert _notes(again) == _notes(score)
    assert [t.name for t in again.tracks] == ["Piano", "Bass"]
    assert list(again.markers) == [] and all(len(t.lyrics) == 0 for t in again.tracks)
    assert midi_bytes(again, credit=Credit(MARK)) == data  # read, written again: one notice
    assert data == with_copyright(bytes(score.dumps_midi()), Credit(MARK).statement)
    tok = ScoreTokenizer()
    ours, bare = tok.encode_score(again), tok.encode_score(Score.from_midi(score.dumps_midi()))
    assert [(t.program, t.name, t.bars) for t in ours.tracks] == [
        (t.program, t.name, t.bars) for t in bare.tracks
    ]


def test_a_midi_file_without_tracks_gets_one_for_the_notice():
    empty = b"MThd\x00\x00\x00\x06\x00\x01\x00\x00\x01\xe0"
    data = with_copyright(empty, Credit().statement)
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert len(midi.tracks) == 1 and midi.tracks[0][0].text == Credit().statement


def test_read_credit_of_midi(tmp_path, score):
    path = tmp_path / "piece.mid"
    path.write_bytes(midi_bytes(score, credit=Credit(MARK)))
    assert read_credit(path) == Credit(MARK).statement


# ---------------------------------------------------------------------------------------------
# MusicXML


def test_musicxml_states_it_and_music21_reads_the_same_notes(tmp_path, score):
    import music21

    path = write_musicxml(score, tmp_path / "piece.musicxml", credit=Credit(MARK))
    text = path.read_text()
    statement = Credit(MARK).statement
    assert f"<rights>{statement}</rights>" in text
    assert f"<software>{Credit().software}</software>" in text
    assert "<credit-type>rights</credit-type>" in text
    assert text.index("<credit page") < text.index("<part-list>")  # where MusicXML has it
    parsed = music21.converter.parse(path)
    assert str(parsed.metadata.copyright) == statement
    boxes = list(parsed.getElementsByClass("TextBox"))
    assert [b.content for b in boxes] == ["piece", statement]  # the title, then the credit

    def notes(s):
        return [
            (p.partName, float(n.offset), n.pitch.midi, float(n.quarterLength))
            for p in s.parts
            for n in p.flatten().notes
        ]

    assert notes(parsed) == notes(score_to_music21(score, title="piece"))
    assert read_credit(path) == statement
    (tmp_path / "again").mkdir()
    again = write_musicxml(score, tmp_path / "again" / "piece.musicxml", credit=Credit(MARK))
    assert again.read_bytes() == path.read_bytes()


def test_verovio_reads_and_prints_the_credit(tmp_path, score):
    verovio = pytest.importorskip("verovio")
    path = write_musicxml(score, tmp_path / "piece.musicxml")
    tk = verovio.toolkit()
    assert tk.loadFile(str(path))
    assert "AI-generated with Disco-Musica" in tk.renderToSVG(1)


def test_read_credit_of_compressed_musicxml(tmp_path, score):
    import zipfile

    xml = write_musicxml(score, tmp_path / "piece.musicxml", credit=Credit(MARK))
    mxl = tmp_path / "piece.mxl"
    with zipfile.ZipFile(mxl, "w") as z:
        z.writestr(
            "META-INF/container.xml",
            '<container><rootfiles><rootfile full-path="piece.musicxml"/></rootfiles></container>',
        )
        z.write(xml, "piece.musicxml")
    assert read_credit(mxl) == Credit(MARK).statement


# ---------------------------------------------------------------------------------------------
# Files of other programs, damaged files, paths that are not files


def _foreign_files(tmp_path, audio, score) -> dict:
    import music21

    out = {}
    for fmt, comment in (("wav", None), ("flac", "Recorded live"), ("ogg", "Disco-Musica rocks")):
        path = tmp_path / f"other.{fmt}"
        with sf.SoundFile(path, "w", SR, 2, format=fmt.upper()) as f:
            if comment:
                f.comment = comment
            f.write(audio)
        out[fmt] = path
    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("copyright", text="(c) 2024 Someone")]))
    midi.tracks[0].append(mido.Message("note_on", note=60, velocity=80))
    midi.tracks[0].append(mido.Message("note_off", note=60, time=480))
    out["mid"] = tmp_path / "other.mid"
    midi.save(out["mid"])
    out["musicxml"] = tmp_path / "other.musicxml"
    music21.converter.parse("tinyNotation: 4/4 c4 d e f").write("musicxml", out["musicxml"])
    out["text"] = tmp_path / "notes.txt"
    out["text"].write_text("This file is AI-generated with Disco-Musica 0.5.0, it says.\n")
    out["empty"] = tmp_path / "empty.mp3"
    out["empty"].write_bytes(b"")
    return out


def test_files_of_other_programs_state_nothing(tmp_path, audio, score):
    for kind, path in _foreign_files(tmp_path, audio, score).items():
        assert read_credit(path) is None, kind


def _damaged(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3", "mid", "musicxml"])
def test_a_damaged_file_gives_none_or_the_statement_it_still_holds(tmp_path, audio, score, suffix):
    """Damage never raises: a file cut short keeps the statement if its tags survive; garbage
    in its place, or a file cut inside its header, states nothing."""
    path = tmp_path / f"piece.{suffix}"
    if suffix == "mid":
        path.write_bytes(midi_bytes(score))
    elif suffix == "musicxml":
        write_musicxml(score, path)
    else:
        write_audio(audio, SR, path, mark=False)
    whole = path.read_bytes()
    for keep in (0.01, 0.5, 0.99):
        path.write_bytes(_damaged(whole, keep))
        assert read_credit(path) in (None, Credit().statement), keep
    path.write_bytes(whole[:4] + bytes(range(256)) * 4)
    assert read_credit(path) is None
    path.write_bytes(whole[:12])
    assert read_credit(path) is None


def test_a_path_that_cannot_be_read_is_a_one_line_error(tmp_path):
    with pytest.raises(CreditError, match="no such file"):
        read_credit(tmp_path / "missing.wav")
    with pytest.raises(CreditError, match="is a folder"):
        read_credit(tmp_path)

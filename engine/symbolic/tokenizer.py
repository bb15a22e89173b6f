"""Score tokenizer: MidiTok's MMM (REMI inside each track) plus Disco-Musica's own tokens.

A model sequence is::

    BOS  Style_x Key_x Mode_x Meter_x Tempo_x Voices_n          # conditions, fixed order
    Track_Start Program_p Register_r  Bar TimeSig_x Position_i Pitch_k Duration_d ... Track_End
    Track_Start ...                                              Track_End
    EOS

Everything between ``Track_Start`` and ``Track_End`` except ``Register_r`` is plain MidiTok
MMM (base tokenizer REMI, no velocities, no tempo tokens): it is what MidiTok encodes and
decodes.  The condition and register tokens are appended after MidiTok's vocabulary and are
stripped before decoding.  ``docs/tokenization.md`` explains the choice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from miditok import MMM, TokenizerConfig, TokSequence
from symusic import Score, Tempo, TimeSignature
from symusic import Track as SymTrack

from engine import names
from engine.atomic import write_text_atomic
from engine.errors import UserError

STYLES = names.STYLES
STYLE_DESCRIPTIONS = {
    "chorale": "four-part chorales (J. S. Bach)",
    "renaissance": "renaissance polyphony (Palestrina, Josquin, Lusitano)",
    "madrigal": "madrigals (Monteverdi)",
    "medieval": "medieval and trecento music (Ciconia, Landini, da Firenze...)",
    "celtic": "Celtic and British folk tunes (O'Neill, Ryan's Mammoth, Aird, Nottingham)",
    "folk": "European folk songs (Essen collection and other folk)",
    "classical": "classical and romantic works (Haydn, Mozart, Beethoven, Schubert...)",
}
TONICS = names.TONICS
MODES = names.MODES
METERS = ("2/4", "3/4", "4/4", "5/4", "6/4", "3/8", "6/8", "9/8", "12/8", "2/2", "3/2", "4/2")
TEMPO_BANDS = ("slow", "moderate", "fast")
TEMPO_BAND_EDGES_BPM = (76.0, 120.0)  # slow < 76 <= moderate < 120 <= fast
TEMPO_BAND_DEFAULT_BPM = {"slow": 60.0, "moderate": 96.0, "fast": 132.0}
MAX_VOICES = names.MAX_VOICES
# Register of a track = bin of its median MIDI pitch. Edges are the lowest pitch of bins 1..5.
REGISTER_EDGES = (45, 53, 60, 67, 74)
REGISTER_NAMES = names.REGISTER_NAMES
CONDITION_ORDER = ("style", "key", "mode", "meter", "tempo", "voices")
CONDITION_PREFIX = {
    "style": "Style",
    "key": "Key",
    "mode": "Mode",
    "meter": "Meter",
    "tempo": "Tempo",
    "voices": "Voices",
}
CONDITION_VALUES: dict[str, tuple[str, ...]] = {
    "style": STYLES,
    "key": TONICS,
    "mode": MODES,
    "meter": METERS,
    "tempo": TEMPO_BANDS,
    "voices": tuple(str(n) for n in range(1, MAX_VOICES + 1)),
}
PITCH_RANGE = (21, 109)  # MIDI pitches 21..108 (piano range)
POSITIONS_PER_BEAT = 8
TOKENIZER_FILE = "tokenizer.json"
EXTRA_TOKENS_FILE = "score_tokens.json"


class TokenizerError(UserError, ValueError):
    """A user-facing problem with a MIDI file or token sequence."""


def miditok_config() -> TokenizerConfig:
    return TokenizerConfig(
        pitch_range=PITCH_RANGE,
        beat_res={(0, 4): POSITIONS_PER_BEAT, (4, 12): 4},
        use_programs=True,
        use_time_signatures=True,
        use_tempos=False,
        use_velocities=False,
        base_tokenizer="REMI",
        time_signature_range={8: [3, 6, 9, 12], 4: [2, 3, 4, 5, 6], 2: [2, 3, 4]},
    )


def tempo_band(bpm: float) -> str:
    """Tempo band name of a tempo in beats per minute."""
    if bpm < TEMPO_BAND_EDGES_BPM[0]:
        return "slow"
    return "moderate" if bpm < TEMPO_BAND_EDGES_BPM[1] else "fast"


def register_of(median_pitch: float) -> int:
    """Register index (0..5) of a median MIDI pitch."""
    return int(np.searchsorted(REGISTER_EDGES, median_pitch, side="right"))


def tonic_index(name: str) -> int:
    """Pitch class of a tonic name (``"F#"``, ``"Gb"``, ``"bb"``...)."""
    aliases = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "E#": "F"}
    aliases.update({"Fb": "E", "B#": "C"})
    key = name.strip()
    key = key[:1].upper() + key[1:].replace("-", "b").replace("♭", "b").replace("♯", "#")
    key = aliases.get(key, key)
    if key not in TONICS:
        raise TokenizerError(f"unknown key tonic {name!r}; use one of {', '.join(TONICS)}")
    return TONICS.index(key)


@dataclass
class Track:
    """One track of a tokenized piece: its program and its bars as MidiTok token ids.

    ``bars[i]`` starts with ``Bar_None`` and its ``TimeSig`` token.
    """

    program: int
    bars: list[list[int]]
    name: str = ""


@dataclass
class Piece:
    """A tokenized piece: tracks of equal bar counts plus its condition values."""

    tracks: list[Track]
    conditions: dict[str, str] = field(default_factory=dict)

    @property
    def num_bars(self) -> int:
        return max((len(t.bars) for t in self.tracks), default=0)


class ScoreTokenizer:
    """MMM tokens for music plus condition and register tokens, in one vocabulary."""

    def __init__(self, base: MMM | None = None):
        self.base = base if base is not None else MMM(miditok_config())
        names = list(self.base.vocab)  # MidiTok ids are 0..len-1 in this order
        assert all(self.base.vocab[n] == i for i, n in enumerate(names))
        self.extra: list[str] = []
        for cat in CONDITION_ORDER:
            self.extra += [f"{CONDITION_PREFIX[cat]}_{v}" for v in CONDITION_VALUES[cat]]
        self.extra += [f"Register_{i}" for i in range(len(REGISTER_NAMES))]
        self.tokens = names + self.extra
        self.vocab = {t: i for i, t in enumerate(self.tokens)}
        self.base_size = len(names)
        self.pad_id = self.vocab["PAD_None"]
        self.bos_id = self.vocab["BOS_None"]
        self.eos_id = self.vocab["EOS_None"]
        self.track_start_id = self.vocab["Track_Start"]
        self.track_end_id = self.vocab["Track_End"]
        self.bar_id = self.vocab["Bar_None"]
        self._kind = np.array([t.split("_")[0] for t in self.tokens])
        self._value = [t.split("_", 1)[1] if "_" in t else "" for t in self.tokens]
        self.pitch_of = np.full(len(self), -1, dtype=np.int32)
        for i, t in enumerate(self.tokens):
            if t.startswith("Pitch_"):
                self.pitch_of[i] = int(t[6:])

    def __len__(self) -> int:
        return len(self.tokens)

    # ---- vocabulary helpers -------------------------------------------------------------
    def ids_of_kind(self, kind: str) -> np.ndarray:
        """Ids of all tokens of one kind (``"Pitch"``, ``"Position"``, ``"Style"``...)."""
        return np.flatnonzero(self._kind == kind)

    def kind(self, token_id: int) -> str:
        return str(self._kind[token_id])

    def value(self, token_id: int) -> str:
        return self._value[token_id]

    def condition_id(self, category: str, value: str) -> int:
        if category not in CONDITION_PREFIX:
            raise TokenizerError(f"unknown condition {category!r}")
        name = f"{CONDITION_PREFIX[category]}_{value}"
        if name not in self.vocab:
            known = ", ".join(CONDITION_VALUES[category])
            raise TokenizerError(f"unknown {category} {value!r}; known: {known}")
        return self.vocab[name]

    def program_id(self, program: int) -> int:
        name = f"Program_{int(program)}"
        if name not in self.vocab:
            raise TokenizerError(f"program {program} is not a General MIDI program (0..127)")
        return self.vocab[name]

    def register_id(self, register: int) -> int:
        return self.vocab[f"Register_{int(register)}"]

    def timesig_id(self, meter: str) -> int:
        name = f"TimeSig_{meter}"
        if name not in self.vocab:
            raise TokenizerError(f"unsupported meter {meter!r}; use one of {', '.join(METERS)}")
        return self.vocab[name]

    def bar_positions(self, timesig_id: int) -> int:
        """Number of Position values in a bar of this time signature."""
        num = int(self.value(timesig_id).split("/")[0])
        return num * POSITIONS_PER_BEAT

    # ---- encoding ------------------------------------------------------------------------
    def encode_score(self, score: Score, name: str = "the MIDI file") -> Piece:
        """Tokenize a MIDI score into per-track bars (no conditions).

        ``name`` is how an error names the input (its path as the user gave it)."""
        if score.note_num() == 0:
            raise TokenizerError(f"{name} has no notes")
        if score.start() < 0:
            raise TokenizerError(  # (never from engine.symbolic.score_api.read_midi)
                f"{name} has notes before its start (negative times: ticks past 2**31 that "
                "wrapped?); fix its timing in a MIDI editor"
            )
        seq = self.base.encode(score)
        ids = seq.ids if isinstance(seq, TokSequence) else seq[0].ids
        names = [t.name for t in score.tracks if not t.is_drum and t.note_num() > 0]
        tracks: list[Track] = []
        cur: Track | None = None
        for i in ids:
            k = self.kind(i)
            if k == "Track" and self.value(i) == "Start":
                cur = Track(program=-1, bars=[])
            elif k == "Track":
                if cur is not None and any(
                    self.kind(t) == "Pitch" for bar in cur.bars for t in bar
                ):
                    tracks.append(cur)
                cur = None
            elif cur is None:
                continue
            elif k == "Program" and cur.program < 0:
                cur.program = int(self.value(i))
            elif k == "Bar":
                cur.bars.append([i])
            elif cur.bars:
                cur.bars[-1].append(i)
        if not tracks:
            lo, hi = PITCH_RANGE
            raise TokenizerError(
                f"{name} has no pitched notes the model can read (drum tracks and pitches "
                f"outside {lo}..{hi - 1} are left out)"
            )
        n = max(len(t.bars) for t in tracks)
        for j, t in enumerate(tracks):
            t.name = names[j] if j < len(names) else ""
            t.program = max(t.program, 0)
            pad_ts = t.bars[-1][1] if len(t.bars[-1]) > 1 else self.timesig_id("4/4")
            t.bars += [[self.bar_id, pad_ts] for _ in range(n - len(t.bars))]
        return Piece(tracks=tracks)

    def track_register(self, bars: Sequence[Sequence[int]]) -> int:
        pitches = self.pitch_of[np.concatenate([np.asarray(b, np.int64) for b in bars])]
        pitches = pitches[pitches >= 0]
        return register_of(float(np.median(pitches))) if pitches.size else 3

    def condition_ids(self, conditions: dict[str, str]) -> list[int]:
        return [self.condition_id(c, conditions[c]) for c in CONDITION_ORDER]

    def build_sequence(
        self, conditions: dict[str, str], tracks: Sequence[Track], *, eos: bool = True
    ) -> list[int]:
        """Full model sequence: BOS, conditions, tracks, EOS."""
        ids = [self.bos_id] + self.condition_ids(conditions)
        for t in tracks:
            ids += [self.track_start_id, self.program_id(t.program)]
            ids.append(self.register_id(self.track_register(t.bars)))
            for bar in t.bars:
                ids += bar
            ids.append(self.track_end_id)
        if eos:
            ids.append(self.eos_id)
        return ids

    # ---- decoding ------------------------------------------------------------------------
    def split(self, ids: Sequence[int]) -> tuple[dict[str, str], list[Track]]:
        """Parse a model sequence back into conditions and tracks."""
        conditions: dict[str, str] = {}
        inverse = {p: c for c, p in CONDITION_PREFIX.items()}
        tracks: list[Track] = []
        cur: Track | None = None
        for i in ids:
            k = self.kind(i)
            if k in inverse:
                conditions[inverse[k]] = self.value(i)
            elif i == self.track_start_id:
                cur = Track(program=0, bars=[])
                tracks.append(cur)
            elif i == self.track_end_id:
                cur = None
            elif cur is None or k == "Register":
                continue
            elif k == "Program" and not cur.bars:
                cur.program = int(self.value(i))
            elif k == "Bar":
                cur.bars.append([i])
            elif cur.bars:
                cur.bars[-1].append(i)
        return conditions, tracks

    def decode(self, ids: Sequence[int], *, tempo_bpm: float | None = None) -> Score:
        """Decode a model sequence (complete or truncated) into a MIDI score.

        Every track of the sequence becomes one MIDI track, in sequence order, even if it
        has no notes, so callers can map tracks back to their requests.
        """
        conditions, tracks = self.split([int(i) for i in ids])
        score = Score(self.base.time_division)
        for t in tracks:
            ids_t = [self.track_start_id, self.program_id(t.program)]
            for bar in t.bars:
                ids_t += bar
            ids_t.append(self.track_end_id)
            has_notes = any(self.kind(i) == "Pitch" for bar in t.bars for i in bar)
            part = self.base.decode(TokSequence(ids=ids_t)) if has_notes else None
            if part is not None and len(part.tracks):
                score.tracks.append(part.tracks[0])
                if not len(score.time_signatures):
                    score.time_signatures = part.time_signatures
            else:
                score.tracks.append(SymTrack(program=t.program))
        if not len(score.time_signatures):
            meter = conditions.get("meter", "4/4")
            num, den = (int(x) for x in meter.split("/"))
            score.time_signatures = [TimeSignature(0, num, den)]
        if tempo_bpm is None:
            tempo_bpm = TEMPO_BAND_DEFAULT_BPM.get(conditions.get("tempo", ""), 96.0)
        score.tempos = [Tempo(0, float(tempo_bpm))]
        return score

    def ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    # ---- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.base.save(directory / TOKENIZER_FILE)
        write_text_atomic(directory / EXTRA_TOKENS_FILE, json.dumps({"extra": self.extra}))

    @classmethod
    def load(cls, directory: str | Path) -> ScoreTokenizer:
        directory = Path(directory)
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise TokenizerError(f"no tokenizer in {directory} (missing {TOKENIZER_FILE})")
        tok = cls(MMM(params=path))
        saved = json.loads((directory / EXTRA_TOKENS_FILE).read_text())["extra"]
        if saved != tok.extra:
            raise TokenizerError(
                f"tokenizer in {directory} was made by another version of Disco-Musica"
            )
        return tok

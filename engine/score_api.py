"""Python API of the symbolic score model.

>>> from engine.score_api import load
>>> model = load("score-base")                      # ships inside the package
>>> piece = model.generate(style="chorale", key="G", mode="major", bars=8, seed=1)
>>> piece.save_midi("chorale.mid")
>>> satb = model.add_tracks("melody.mid", parts=["alto", "tenor", "bass"], style="chorale")
>>> longer = model.continue_score("sketch.mid", bars=4)
>>> varied = model.regenerate_bars("piece.mid", start_bar=4, end_bar=5)

Every call takes keyword-only parameters with named defaults and returns a
:class:`GeneratedScore` (a symusic score plus the tokens and settings that made it).
"""

from __future__ import annotations

from engine.errors import UserError
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from symusic import KeySignature, Score

from engine.atomic import write_bytes_atomic
from engine.grammar import GrammarError, ScoreGrammar, TrackPlan
from engine.steer import Steering
from engine.tokenizer import (
    CONDITION_VALUES,
    MAX_VOICES,
    METERS,
    REGISTER_NAMES,
    STYLES,
    TEMPO_BAND_DEFAULT_BPM,
    TONICS,
    ScoreTokenizer,
    TokenizerError,
    Track,
    register_of,
    tempo_band,
    tonic_index,
)

MODELS_DIR = Path(__file__).parent / "assets" / "models"
DEFAULT_MODEL = "score-base"
DEFAULT_TEMPERATURE = 0.9
DEFAULT_TOP_K = 0
DEFAULT_TOP_P = 0.95
DEFAULT_BARS = 8
DEFAULT_CONTINUE_BARS = 4
DEFAULT_SEED = 0
# Logit bonus for pitches of the requested key's scale (0 = the model alone). The model
# follows its Key condition only partly; this documented nudge makes keys audible.
DEFAULT_KEY_STRENGTH = 1.5
MAX_KEY_STRENGTH = 10.0
TRIAD_BONUS = 0.5  # extra share of key_strength for the tonic triad's pitch classes
MAX_TEMPERATURE = 5.0
TOKENS_PER_BAR_ESTIMATE = 20  # one voice, one bar: a generous average over the corpus
MAX_BARS = 64
MIN_TEMPO_BPM = 20.0
MAX_TEMPO_BPM = 300.0
VOCAL_PROGRAMS = (52, 53, 54)
# Part names accepted by add_tracks → register index (see engine.tokenizer.REGISTER_NAMES).
PART_REGISTERS = {
    "soprano": 4,
    "melody": 4,
    "alto": 3,
    "tenor": 2,
    "bass": 1,
    "bassline": 1,
    "high": 5,
    "low": 0,
}

# Pitch range (MIDI, inclusive) that generated notes of a named part keep to: the usual
# choral ranges, a little widened; the grammar masks pitches outside.
PART_RANGES = {
    "soprano": (59, 84),
    "melody": (55, 91),
    "alto": (52, 77),
    "tenor": (45, 70),
    "bass": (36, 64),
    "bassline": (28, 60),
    "high": (67, 108),
    "low": (21, 57),
}
# Default layout of small ensembles (top to bottom), as in four-part writing.
DEFAULT_PARTS = {
    2: ("soprano", "bass"),
    3: ("soprano", "alto", "bass"),
    4: ("soprano", "alto", "tenor", "bass"),
}

ProgressFn = Callable[[int, int], None]


class ScoreModelError(UserError, ValueError):
    """A user-facing problem: a bad parameter, file or model name."""


@dataclass
class GeneratedScore:
    """The result of a generation call."""

    score: Score
    tokens: list[int]
    conditions: dict[str, str]
    finish_reason: str
    settings: dict = field(default_factory=dict)

    @property
    def num_tracks(self) -> int:
        return len(self.score.tracks)

    def to_midi_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "out.mid"
            self.score.dump_midi(path)
            return path.read_bytes()

    def save_midi(self, path: str | Path) -> Path:
        """Write a standard MIDI file atomically; return its path."""
        return write_bytes_atomic(path, self.to_midi_bytes())


def available_models() -> list[str]:
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if (p / "config.json").is_file():
        return p
    if (MODELS_DIR / str(name_or_path) / "config.json").is_file():
        return MODELS_DIR / str(name_or_path)
    known = available_models()
    import difflib

    near = difflib.get_close_matches(str(name_or_path), known, n=3)
    hint = (
        f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(known) or 'none'}"
    )
    raise ScoreModelError(f"unknown score model {str(name_or_path)!r}{hint}")


def load(name_or_path: str | Path = DEFAULT_MODEL) -> ScoreModel:
    """Load a score model by name (``"score-base"``) or from a model folder."""
    return ScoreModel.load(name_or_path)


def read_midi(source: str | Path | Score | bytes) -> Score:
    """A symusic Score from a path, MIDI bytes or a Score; clear errors for bad files."""
    if isinstance(source, Score):
        return source
    try:
        if isinstance(source, bytes):
            score = Score.from_midi(source)
        else:
            path = Path(source)
            if path.is_dir():
                raise ScoreModelError(f"{path} is a folder, not a MIDI file")
            if not path.is_file():
                raise ScoreModelError(f"{path}: no such file")
            if path.stat().st_size == 0:
                raise ScoreModelError(f"{path}: the file is empty")
            head = path.read_bytes()[:4]
            if head != b"MThd":
                raise ScoreModelError(f"{path}: not a MIDI file (it does not start with MThd)")
            score = Score(path)
    except ScoreModelError:
        raise
    except Exception as e:  # symusic raises RuntimeError/ValueError on corrupt data
        raise ScoreModelError(
            f"{source if not isinstance(source, bytes) else 'MIDI data'}: corrupt MIDI file ({e})"
        ) from None
    if score.note_num() == 0:
        raise ScoreModelError("the MIDI file has no notes")
    _check_timing(score)
    return score


MAX_MIDI_HOURS = 3.0


def _check_timing(score: Score) -> None:
    """Refuse tempo 0 (or absurd tempi) and absurd lengths before anything allocates for them."""
    for t in score.tempos:
        qpm = float(t.qpm)
        if not math.isfinite(qpm) or not 1.0 <= qpm <= 1000.0:
            shown = f"{qpm:g} BPM" if math.isfinite(qpm) else f"{t.mspq} microseconds a beat"
            raise ScoreModelError(
                f"the MIDI file sets an impossible tempo ({shown}); fix its tempo (1..1000 BPM) "
                "in a MIDI editor"
            )
    seconds = score.to("second").end()
    if not math.isfinite(seconds) or seconds > MAX_MIDI_HOURS * 3600:
        hours = seconds / 3600
        raise ScoreModelError(
            f"the MIDI file lasts {hours:,.0f} hours (absurd tick values?); the limit is "
            f"{MAX_MIDI_HOURS:g} hours"
        )


class ScoreModel:
    """A loaded score model: MLX weights plus its tokenizer."""

    def __init__(self, model, config: dict, tokenizer: ScoreTokenizer, path: Path | None = None):
        self.model = model
        self.config = config
        self.tokenizer = tokenizer
        self.path = path
        self.context = int(config.get("max_position_embeddings", 1024))

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MODEL) -> ScoreModel:
        from engine.models import load_model

        path = resolve_model_path(name_or_path)
        model, config = load_model(path)
        return cls(model, config, ScoreTokenizer.load(path / "tokenizer"), path)

    # ---- public calls ------------------------------------------------------------------------
    def generate(
        self,
        *,
        style: str | None = None,
        key: str | None = None,
        mode: str | None = None,
        meter: str | None = None,
        tempo_bpm: float | None = None,
        voices: int | None = None,
        programs: Sequence[int] | None = None,
        parts: Sequence[str] | None = None,
        bars: int = DEFAULT_BARS,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        pitch_ranges: Sequence[tuple[int, int]] | None = None,
        registers: Sequence[int] | None = None,
        steer: Steering | None = None,
        progress: ProgressFn | None = None,
    ) -> GeneratedScore:
        """A new piece from condition tokens alone. Unset conditions are chosen by the model.

        ``parts`` names the register of each track (soprano, alto, tenor, bass...; see
        ``PART_REGISTERS``); by default 2 to 4 voices are laid out as soprano (alto, tenor)
        and bass, more voices are left to the model.  ``pitch_ranges`` (one (low, high) MIDI
        pair per track) replaces the parts' ranges, e.g. with instruments' ranges, and
        ``registers`` (0..5 per track, see ``REGISTER_NAMES``) their register tokens.
        ``steer`` applies harmony, density, syncopation and contour controls while sampling
        (`engine.steer.Steering`).
        """
        _check_bars(bars)
        if parts is not None:
            _check_parts(parts)
            if voices is not None and voices != len(parts):
                raise ScoreModelError(f"{voices} voices but {_plural(len(parts), 'part')}")
            voices = len(parts)
        if programs is not None:
            if voices is not None and voices != len(programs):
                raise ScoreModelError(
                    f"{voices} voices but {len(programs)} programs; give one program per voice"
                )
            voices = len(programs)
        conditions = self._conditions(style, key, mode, meter, tempo_bpm, voices)
        sampling = self._sampling(temperature, top_k, top_p, seed, key_strength)
        n = int(conditions["voices"]) if "voices" in conditions else None
        first = min(bars, self._section_bars(n or 4))
        if parts is None and n is not None:
            parts = DEFAULT_PARTS.get(n)
        if pitch_ranges is not None:
            pitch_ranges = _check_ranges(pitch_ranges, n or 1)
        elif parts:
            pitch_ranges = [PART_RANGES[p] for p in parts]
        if registers is not None:
            registers = [int(r) for r in registers]
            if len(registers) != (n or 1) or not all(
                0 <= r < len(REGISTER_NAMES) for r in registers
            ):
                raise ScoreModelError(
                    f"registers must be one of 0..{len(REGISTER_NAMES) - 1} for each track"
                )
        elif parts:
            registers = [PART_REGISTERS[p] for p in parts]

        def first_plans(b: int) -> list[TrackPlan]:
            return [
                TrackPlan(
                    program=(programs[i] if programs else None),
                    register=registers[i] if registers else None,
                    pitch_range=pitch_ranges[i] if pitch_ranges else None,
                    free_bars=b,
                )
                for i in range(n or 1)
            ]

        result, first = _fitting(
            first,
            lambda b: self._run(
                conditions, first_plans(b), meter, tempo_bpm, sampling, progress, steer
            ),
        )
        done, section = first, 0
        while done < bars and result.finish_reason == "stop":
            # Longer than one window: continue section by section, all conditions now fixed.
            section += 1
            cond, tracks = self.tokenizer.split(result.tokens)

            def next_section(b: int, tracks=tracks, cond=cond, section=section, done=done):
                keep = self._bars_that_fit(tracks, extra_bars=b)
                plans = self._continuation_plans(tracks, keep, b, pitch_ranges)
                r = self._run(
                    cond,
                    plans,
                    meter,
                    tempo_bpm,
                    {**sampling, "seed": seed + section},
                    progress,
                    steer,
                    bar_offset=done - keep,
                )
                r.settings["kept_bars"] = keep
                return r

            step = min(bars - done, self._section_bars(len(tracks)))
            nxt, step = _fitting(step, next_section)
            keep = nxt.settings["kept_bars"]
            _, new_tracks = self.tokenizer.split(nxt.tokens)
            _check_complete(new_tracks, len(tracks))
            for t, t_new in zip(tracks, new_tracks, strict=True):
                t.bars = t.bars[: len(t.bars) - keep] + t_new.bars
            tokens = self.tokenizer.build_sequence(cond, tracks)
            result = self._result(tokens, conditions, tempo_bpm, sampling, nxt.finish_reason)
            result.settings["sections"] = section + 1
            done += step
        if n is not None:
            _check_complete(result.score.tracks, n)
        if parts:  # tracks in the requested order, named after their parts
            for t, part in zip(result.score.tracks, parts, strict=True):
                t.name = part.capitalize()
        elif programs is None and pitch_ranges is None and registers is None:
            # (with programs, ranges or registers per track the caller's order stands)
            _sort_tracks_by_pitch(result.score)
        return result

    def _continuation_plans(
        self,
        tracks: list[Track],
        keep: int,
        bars: int,
        ranges: Sequence[tuple[int, int]] | None = None,
    ) -> list[TrackPlan]:
        """Plans that copy the last ``keep`` bars of every track and add ``bars`` new ones."""
        return [
            TrackPlan(
                program=t.program,
                register=self.tokenizer.track_register(t.bars),
                prefix=t.bars[-keep:],
                free_bars=bars,
                pitch_range=ranges[i] if ranges else None,
            )
            for i, t in enumerate(tracks)
        ]

    def _section_bars(self, voices: int) -> int:
        """Bars of ``voices`` tracks that safely fit 60 % of the window (20 tokens a bar)."""
        return max(1, int(0.6 * self.context / (voices * TOKENS_PER_BAR_ESTIMATE)))

    def continue_score(
        self,
        prefix: str | Path | Score | bytes,
        *,
        bars: int = DEFAULT_CONTINUE_BARS,
        style: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        key: str | None = None,
        mode: str | None = None,
        pitch_ranges: Sequence[tuple[int, int]] | None = None,
        steer: Steering | None = None,
        progress: ProgressFn | None = None,
    ) -> GeneratedScore:
        """The given music followed by ``bars`` new bars in every track (same key, meter).

        ``key``/``mode`` default to the key music21 hears in the input; ``pitch_ranges``
        (one (low, high) per track) keeps new notes in range; ``steer`` as in `generate`,
        with bars counted from the start of the input.
        """
        _check_bars(bars)
        score = read_midi(prefix)
        piece_tracks, info = self._encode_input(score)
        keep = self._bars_that_fit(piece_tracks, extra_bars=bars)
        if pitch_ranges is not None:
            pitch_ranges = _check_ranges(pitch_ranges, len(piece_tracks))
        plans = self._continuation_plans(piece_tracks, keep, bars, pitch_ranges)
        conditions = self._conditions(
            style,
            key or info["key"],
            mode or info["mode"],
            info["meter"],
            info["tempo_bpm"],
            len(piece_tracks),
        )
        result = self._run(
            conditions,
            plans,
            None,
            info["tempo_bpm"],
            self._sampling(temperature, top_k, top_p, seed, key_strength),
            progress,
            steer,
            bar_offset=len(piece_tracks[0].bars) - keep,
        )
        result.settings.update(prefix_bars_used=keep, prefix_bars=len(piece_tracks[0].bars))
        if keep < len(piece_tracks[0].bars):
            result.score = _join_prefix(score, result.score, len(piece_tracks[0].bars) - keep)
        _copy_names(score, result.score)
        return result

    def add_tracks(
        self,
        existing: str | Path | Score | bytes,
        *,
        parts: Sequence[str] = ("alto", "tenor", "bass"),
        programs: Sequence[int] | None = None,
        style: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        progress: ProgressFn | None = None,
        steer: Steering | None = None,
    ) -> GeneratedScore:
        """New tracks written against the given ones (e.g. alto, tenor, bass under a soprano).

        ``parts`` names the register of each new track (soprano, alto, tenor, bass, melody,
        bassline, high, low); ``programs`` their General MIDI programs (default: the program
        of the first given track).  The given tracks are kept note for note. ``steer``
        (`engine.steer.Steering`) applies its controls to the new tracks while sampling: a
        progression (one chord a bar from the first bar) is a bonus for chord tones, and a
        hard constraint for the track numbered ``steer.bass_track`` (given tracks first,
        then the new ones in order).
        """
        if not parts:
            raise ScoreModelError("add_tracks needs at least one part to add")
        _check_parts(parts)
        if programs is not None and len(programs) != len(parts):
            raise ScoreModelError(
                f"{_plural(len(parts), 'part')} but {_plural(len(programs), 'program')}; "
                "give one program per part"
            )
        score = read_midi(existing)
        given, info = self._encode_input(score)
        if len(given) + len(parts) > MAX_VOICES:
            raise ScoreModelError(
                f"{len(given)} given + {len(parts)} new tracks is more than {MAX_VOICES} voices"
            )
        nbars = len(given[0].bars)
        plans = [
            TrackPlan(
                program=t.program,
                register=self.tokenizer.track_register(t.bars),
                prefix=t.bars,
                free_bars=0,
            )
            for t in given
        ]
        for i, part in enumerate(parts):
            prog = programs[i] if programs is not None else given[0].program
            plans.append(
                TrackPlan(
                    program=prog,
                    register=PART_REGISTERS[part],
                    pitch_range=PART_RANGES[part],
                    free_bars=nbars,
                )
            )
        conditions = self._conditions(
            style, info["key"], info["mode"], info["meter"], info["tempo_bpm"], len(plans)
        )
        self._check_fits(given, len(parts))
        result = self._run(
            conditions,
            plans,
            None,
            info["tempo_bpm"],
            self._sampling(temperature, top_k, top_p, seed, key_strength),
            progress,
            steer,
        )
        _copy_names(score, result.score)
        _sort_tracks_by_pitch(result.score)
        return result

    def regenerate_bars(
        self,
        source: str | Path | Score | bytes,
        *,
        start_bar: int,
        end_bar: int,
        tracks: Sequence[int] | None = None,
        style: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        progress: ProgressFn | None = None,
    ) -> GeneratedScore:
        """Rewrite bars ``start_bar..end_bar`` (0-based, inclusive) of some tracks; keep the rest.

        Each regenerated track is written after all kept tracks, so it hears them in full,
        including the bars after ``end_bar``; its own later bars are copied back unchanged.
        """
        score = read_midi(source)
        given, info = self._encode_input(score)
        nbars = len(given[0].bars)
        if not 0 <= start_bar <= end_bar < nbars:
            raise ScoreModelError(
                f"bars {start_bar}..{end_bar} are outside the piece (bars 0..{nbars - 1})"
            )
        chosen = list(range(len(given))) if tracks is None else list(tracks)
        bad = [t for t in chosen if not 0 <= t < len(given)]
        if bad or not chosen:
            raise ScoreModelError(
                f"track {bad[0] if bad else '(none)'} does not exist; the "
                f"piece has tracks 0..{len(given) - 1}"
            )
        order = [i for i in range(len(given)) if i not in chosen] + chosen
        plans = []
        for i in order:
            t = given[i]
            plan = TrackPlan(program=t.program, register=self.tokenizer.track_register(t.bars))
            if i in chosen:
                plan.prefix = t.bars[:start_bar]
                plan.free_bars = end_bar - start_bar + 1
                plan.suffix = t.bars[end_bar + 1 :]
            else:
                plan.prefix, plan.free_bars = t.bars, 0
            plans.append(plan)
        self._check_fits(given, 0)
        conditions = self._conditions(
            style, info["key"], info["mode"], info["meter"], info["tempo_bpm"], len(given)
        )
        result = self._run(
            conditions,
            plans,
            None,
            info["tempo_bpm"],
            self._sampling(temperature, top_k, top_p, seed, key_strength),
            progress,
        )
        inverse = [order.index(i) for i in range(len(given))]
        result.score.tracks = [result.score.tracks[j] for j in inverse]
        _copy_names(score, result.score)
        result.settings.update(start_bar=start_bar, end_bar=end_bar, tracks=chosen)
        return result

    # ---- internals ---------------------------------------------------------------------------
    def _sampling(
        self, temperature: float, top_k: int, top_p: float, seed: int, key_strength: float
    ) -> dict:
        if not 0 <= temperature <= MAX_TEMPERATURE:
            raise ScoreModelError(f"temperature {temperature} is outside 0..{MAX_TEMPERATURE:g}")
        if top_k < 0 or top_k > len(self.tokenizer):
            raise ScoreModelError(f"top_k {top_k} is outside 0..{len(self.tokenizer)}")
        if not 0 < top_p <= 1:
            raise ScoreModelError(f"top_p {top_p} is outside (0, 1]")
        if not isinstance(seed, int) or seed < 0:
            raise ScoreModelError(f"seed {seed!r} must be a non-negative integer")
        if not 0 <= key_strength <= MAX_KEY_STRENGTH:
            raise ScoreModelError(f"key_strength {key_strength} is outside 0..{MAX_KEY_STRENGTH:g}")
        return {
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "seed": seed,
            "key_strength": key_strength,
        }

    def _conditions(self, style, key, mode, meter, tempo_bpm, voices) -> dict[str, str]:
        c: dict[str, str] = {}
        if style is not None:
            if style not in STYLES:
                import difflib

                near = difflib.get_close_matches(style, STYLES, n=2)
                hint = f"did you mean {' or '.join(near)}? " if near else ""
                raise ScoreModelError(
                    f"unknown style {style!r}; {hint}known styles: {', '.join(STYLES)}"
                )
            c["style"] = style
        if key is not None:
            try:
                c["key"] = TONICS[tonic_index(key)]
            except TokenizerError as e:
                raise ScoreModelError(str(e)) from None
        if mode is not None:
            if mode not in CONDITION_VALUES["mode"]:
                raise ScoreModelError(f"unknown mode {mode!r}; use major or minor")
            c["mode"] = mode
        if meter is not None:
            if meter not in METERS:
                raise ScoreModelError(
                    f"unsupported meter {meter!r}; use one of {', '.join(METERS)}"
                )
            c["meter"] = meter
        if tempo_bpm is not None:
            if not MIN_TEMPO_BPM <= float(tempo_bpm) <= MAX_TEMPO_BPM:
                raise ScoreModelError(
                    f"tempo {tempo_bpm} BPM is outside {MIN_TEMPO_BPM:g}..{MAX_TEMPO_BPM:g}"
                )
            c["tempo"] = tempo_band(float(tempo_bpm))
        if voices is not None:
            if not 1 <= int(voices) <= MAX_VOICES:
                raise ScoreModelError(f"voices must be 1..{MAX_VOICES}, not {voices}")
            c["voices"] = str(int(voices))
        return c

    def _encode_input(self, score: Score) -> tuple[list[Track], dict]:
        from engine.quality import analyze_key

        tok = self.tokenizer
        try:
            piece = tok.encode_score(score)
        except TokenizerError as e:
            raise ScoreModelError(str(e)) from None
        if len(piece.tracks) > MAX_VOICES:
            raise ScoreModelError(
                f"the MIDI file has {len(piece.tracks)} tracks; the model writes at most "
                f"{MAX_VOICES}"
            )
        tonic, mode = analyze_key(score)
        ts = piece.tracks[0].bars[0][1]
        bpm = float(score.tempos[0].qpm) if len(score.tempos) else 96.0
        bpm = min(max(bpm, MIN_TEMPO_BPM), MAX_TEMPO_BPM)
        return piece.tracks, {
            "key": TONICS[tonic],
            "mode": mode,
            "meter": tok.value(ts),
            "tempo_bpm": bpm,
        }

    def _bars_that_fit(self, tracks: list[Track], extra_bars: int) -> int:
        """How many of the last bars of a prefix fit the context with room for new bars."""
        n = len(tracks[0].bars)
        per_bar = [sum(len(t.bars[b]) for t in tracks) for b in range(n)]
        avg = max(8.0, float(np.mean(per_bar)))
        budget = self.context - 16 - 4 * len(tracks) - int(avg * extra_bars * 1.5)
        if budget <= avg:
            raise ScoreModelError(
                f"{_plural(extra_bars, 'new bar')} of {_plural(len(tracks), 'track')} do not fit "
                f"the model's "
                f"{self.context}-token window; ask for fewer bars"
            )
        keep, used = 0, 0
        for b in range(n - 1, -1, -1):
            if used + per_bar[b] > budget:
                break
            used += per_bar[b]
            keep += 1
        return max(keep, 1)

    def _check_fits(self, tracks: list[Track], new_tracks: int) -> None:
        n_tok = sum(len(bar) for t in tracks for bar in t.bars)
        per_track = n_tok / max(1, len(tracks))
        if n_tok + per_track * new_tracks + 16 > self.context:
            raise ScoreModelError(
                f"the input is too long for the model's {self.context}-token window "
                f"({len(tracks[0].bars)} bars, about {int(n_tok)} tokens); "
                "split it into shorter sections"
            )

    def _run(
        self,
        conditions,
        plans,
        meter,
        tempo_bpm,
        sampling,
        progress,
        steer: Steering | None = None,
        bar_offset: int = 0,
    ) -> GeneratedScore:
        from engine.generate import generate_step
        from engine.sample import make_sampler

        tok = self.tokenizer
        grammar = ScoreGrammar(tok, conditions=conditions, plans=plans, meter=meter)
        # The longest run of forced tokens is the prompt (prefilled in one pass).
        prompt: list[int] = []
        while not grammar.done:
            allowed = grammar.allowed()
            if allowed.sum() != 1:
                break
            t = int(np.flatnonzero(allowed)[0])
            grammar.feed(t)
            prompt.append(t)
        if len(prompt) >= self.context - 1:
            raise ScoreModelError(
                f"the request needs more than the model's {self.context}-token window; "
                "ask for fewer bars or tracks"
            )
        seen = [len(prompt)]

        strength = sampling["key_strength"]
        key_bias: list[np.ndarray | None] = []  # computed once the key is known
        steering = steer.bind(tok) if steer is not None and steer.active else None

        def allowed_fn(tokens: list[int]) -> np.ndarray:
            for t in tokens[seen[0] :]:
                grammar.feed(t)
            seen[0] = len(tokens)
            allowed = grammar.allowed()
            bias = None
            if strength and grammar.state in ("pitch", "event"):
                if not key_bias:
                    key_bias.append(self._key_bias(grammar.tokens, strength))
                bias = key_bias[0]
            if steering is not None:
                extra = steering(grammar, bar_offset)
                if extra is not None:
                    bias = extra if bias is None else bias + extra
            if bias is None:
                return allowed
            biased = np.where(allowed, bias, -np.inf).astype(np.float32)
            if not np.isfinite(biased).any():  # a hard constraint left nothing: drop it
                biased = np.where(allowed, 0.0, -np.inf).astype(np.float32)
            return biased

        sampler = make_sampler(sampling["temperature"], sampling["top_k"], sampling["top_p"])
        tokens = list(prompt)
        reason = "stop"
        budget = self.context - len(prompt)
        if not grammar.done:
            for r in generate_step(
                self.model,
                prompt,
                sampler=sampler,
                max_tokens=budget,
                seed=sampling["seed"],
                eos_id=tok.eos_id,
                allowed_fn=allowed_fn,
            ):
                tokens.append(r.token)
                if progress is not None:
                    progress(len(tokens), self.context)
                if r.finish_reason is not None:
                    reason = r.finish_reason
        try:
            for t in tokens[seen[0] :]:
                grammar.feed(t)
        except GrammarError as e:  # internal bug: the mask was not honoured
            raise RuntimeError(f"sampled sequence broke the grammar: {e}") from e
        return self._result(tokens, conditions, tempo_bpm, sampling, reason)

    def _key_bias(self, tokens: list[int], strength: float) -> np.ndarray | None:
        """Bias [V]: ``strength`` on pitches of the scale named by the Key/Mode conditions."""
        from engine.quality import scale_pitch_classes

        cond, _ = self.tokenizer.split(tokens)
        if not strength or "key" not in cond or "mode" not in cond:
            return None
        tonic = TONICS.index(cond["key"])
        scale = scale_pitch_classes(tonic, cond["mode"])
        third = 4 if cond["mode"] == "major" else 3
        triad = [tonic, (tonic + third) % 12, (tonic + 7) % 12]
        pitch = self.tokenizer.pitch_of
        bias = np.zeros(len(self.tokenizer), dtype=np.float32)
        bias[(pitch >= 0) & np.isin(pitch % 12, list(scale))] = strength
        # The tonic triad a little more, so the tonic (not the relative key) is heard.
        bias[(pitch >= 0) & np.isin(pitch % 12, triad)] += TRIAD_BONUS * strength
        return bias

    def _result(self, tokens, conditions, tempo_bpm, sampling, reason) -> GeneratedScore:
        """Decode a finished token sequence into a named, key-signed score."""
        tok = self.tokenizer
        cond, _ = tok.split(tokens)
        bpm = (
            float(tempo_bpm)
            if tempo_bpm is not None
            else TEMPO_BAND_DEFAULT_BPM.get(cond.get("tempo", ""), 96.0)
        )
        score = tok.decode(tokens, tempo_bpm=bpm)
        _name_tracks(score)
        if "key" in cond and "mode" in cond:
            score.key_signatures = [
                KeySignature(
                    0, _key_sharps(cond["key"], cond["mode"]), 0 if cond["mode"] == "major" else 1
                )
            ]
        settings = {**sampling, "requested_conditions": conditions, "tempo_bpm": bpm}
        return GeneratedScore(score, tokens, cond, reason, settings)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _check_parts(parts: Sequence[str]) -> None:
    unknown = [p for p in parts if p not in PART_REGISTERS]
    if unknown:
        raise ScoreModelError(
            f"unknown part {unknown[0]!r}; use one of {', '.join(PART_REGISTERS)}"
        )


def _fitting(bars: int, run: Callable[[int], GeneratedScore]) -> tuple[GeneratedScore, int]:
    """``run(bars)``, halving ``bars`` while the model's window fills up before the end."""
    while True:
        result = run(bars)
        if result.finish_reason != "length" or bars == 1:
            return result, bars
        bars = max(1, bars // 2)


def _check_complete(tracks, expected: int) -> None:
    if len(tracks) < expected:
        raise ScoreModelError(
            f"the model's window filled up after {len(tracks)} of {expected} parts even for one "
            "bar; ask for fewer parts"
        )


def _check_ranges(ranges: Sequence[tuple[int, int]], tracks: int) -> list[tuple[int, int]]:
    ranges = [(int(lo), int(hi)) for lo, hi in ranges]
    if len(ranges) != tracks:
        raise ScoreModelError(f"{len(ranges)} pitch ranges for {_plural(tracks, 'track')}")
    for lo, hi in ranges:
        if not 0 <= lo <= hi <= 127:
            raise ScoreModelError(f"pitch range {lo}-{hi} is not within MIDI pitches 0..127")
    return ranges


def _check_bars(bars: int) -> None:
    if not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
        raise ScoreModelError(f"bars must be a whole number 1..{MAX_BARS}, not {bars!r}")


def _key_sharps(tonic: str, mode: str) -> int:
    """Number of sharps (negative: flats) of a key signature."""
    pc = TONICS.index(tonic)
    if mode == "minor":
        pc = (pc + 3) % 12  # relative major
    fifths = (pc * 7) % 12  # C=0, G=1, D=2 ...
    return fifths - 12 if fifths > 6 else fifths


def _name_tracks(score: Score) -> None:
    from miditok.constants import MIDI_INSTRUMENTS

    for t in score.tracks:
        if len(t.notes) and t.program in VOCAL_PROGRAMS:
            med = float(np.median([n.pitch for n in t.notes]))
            t.name = REGISTER_NAMES[register_of(med)].capitalize()
        else:
            t.name = MIDI_INSTRUMENTS[t.program]["name"]


def _median_pitch(track) -> float:
    return float(np.median([n.pitch for n in track.notes])) if len(track.notes) else -1.0


def _sort_tracks_by_pitch(score: Score) -> None:
    """Score order: highest voice first."""
    score.tracks = sorted(score.tracks, key=_median_pitch, reverse=True)


def _copy_names(source: Score, target: Score) -> None:
    names = [t.name for t in source.tracks if not t.is_drum and t.note_num() > 0]
    for name, t in zip(names, target.tracks, strict=False):
        if name:
            t.name = name


def _join_prefix(original: Score, generated: Score, dropped_bars: int) -> Score:
    """Put back the first bars of a long prefix that did not fit the model's window."""
    out = original.resample(generated.ticks_per_quarter)
    ts = generated.time_signatures[0]
    shift = dropped_bars * generated.ticks_per_quarter * 4 * ts.numerator // ts.denominator
    tracks = [t for t in out.tracks if not t.is_drum and t.note_num() > 0]
    for t_orig, t_gen in zip(tracks, generated.tracks, strict=False):
        t_gen.shift_time(shift, inplace=True)
        for n in t_orig.notes:
            if n.time < shift:
                t_gen.notes.append(n)
        t_gen.notes.sort(inplace=True)
    return generated

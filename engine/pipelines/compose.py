"""Text to music: a prompt and options in, a finished piece (MIDI, audio, MusicXML) out.

>>> from engine.pipelines.compose import compose
>>> piece = compose("a calm chorale in G major for choir, 8 bars", seed=1)
>>> piece.save("calm-chorale")          # music.mid, music.wav, music.musicxml, generation.json

`compose` reads the prompt (`engine.pipelines.prompt`), lets explicit options override what the
words
said, fills what neither said from documented defaults (`plan`), writes the score with the
score model section by section (`engine.symbolic.score_api`), applies dynamics and articulation, and
returns a `Composition`.  Everything it decided is recorded in ``generation.json``, so
`replay` makes the same MIDI bytes again, and the same audio with the same SoundFont.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine import names
from engine.errors import UserError
from engine.progress import Progress, ProgressFn
from engine.record import (
    DEFAULT_ROOT,
    GENERATION_FILE,
    OutputFolder,
    check_new_folder,
    file_info,
    forget_made_dirs,
    make_dirs,
    prompt_words,
    remove_made_dirs,
    unique_folder,
    with_replaced,
    write_record,
)
from engine.seeds import check_seed, derive_seed
from engine.symbolic.model_versions import weights_sha256

MAX_SECONDS = names.COMPOSE_MAX_SECONDS
MAX_TOTAL_BARS = names.COMPOSE_MAX_BARS
DEFAULT_BARS = names.COMPOSE_DEFAULT_BARS
DEFAULT_SECTION_BARS = names.DEFAULT_SECTION_BARS
DEFAULT_CREATIVITY = names.DEFAULT_CREATIVITY
DEFAULT_FORMATS = names.DEFAULT_FORMATS
ALL_FORMATS = ("wav", "flac", "ogg", "mp3", "mid", "musicxml", *names.PICTURE_FORMATS)
STEM = names.OUTPUT_STEM

# Instruments each style gets when the prompt names none (the corpus' own ensembles).
STYLE_ENSEMBLES = {
    "chorale": "choir",
    "renaissance": "choir",
    "madrigal": "choir",
    "medieval": "recorder and choir",
    "celtic": "fiddle",
    "folk": "flute",
    "classical": "string quartet",
}
# Tempo (BPM) each style gets when nothing else sets one.
STYLE_TEMPOS = {
    "chorale": 72,
    "renaissance": 76,
    "madrigal": 88,
    "medieval": 84,
    "celtic": 112,
    "folk": 100,
    "classical": 108,
}
DEFAULT_TEMPO = names.DEFAULT_TEMPO_BPM
# MIDI velocity of each dynamic level, and the swing of a crescendo or diminuendo.
VELOCITIES = {"pp": 36, "p": 52, "mp": 66, "mf": 80, "f": 96, "ff": 112}
DEFAULT_DYNAMICS = names.DEFAULT_DYNAMICS
HAIRPIN_SPAN = 40  # a crescendo goes from level - 20 to level + 20
DOWNBEAT_ACCENT = 8
MELODY_LIFT = 6  # the top part sounds a little above the others
# Playable range (MIDI) by General MIDI program; programs not listed use DEFAULT_RANGE.
DEFAULT_RANGE = (36, 96)
PROGRAM_RANGES = {
    **{p: (36, 96) for p in range(0, 8)},  # pianos
    **{p: (55, 96) for p in range(8, 16)},  # chromatic percussion
    **{p: (36, 96) for p in range(16, 24)},  # organs
    **{p: (40, 84) for p in range(24, 32)},  # guitars
    **{p: (28, 55) for p in range(32, 40)},  # basses
    40: (55, 93),  # violin
    41: (48, 84),  # viola
    42: (36, 76),  # cello
    43: (28, 60),  # contrabass
    44: (36, 93),
    45: (36, 93),
    46: (24, 103),  # harp
    47: (40, 57),  # timpani
    48: (36, 96),
    49: (36, 96),
    52: (48, 79),  # choir
    53: (48, 79),
    54: (48, 79),
    56: (55, 82),  # trumpet
    57: (40, 72),  # trombone
    58: (28, 58),  # tuba
    59: (55, 82),
    60: (41, 77),  # french horn
    61: (40, 82),
    64: (56, 88),  # soprano sax
    65: (49, 81),  # alto sax
    66: (44, 76),  # tenor sax
    67: (36, 69),  # baritone sax
    68: (58, 91),  # oboe
    69: (52, 81),  # english horn
    70: (34, 75),  # bassoon
    71: (50, 91),  # clarinet
    72: (74, 108),  # piccolo
    73: (60, 96),  # flute
    74: (60, 86),  # recorder
    75: (60, 86),  # pan flute
    109: (55, 84),  # bagpipe
    110: (55, 93),  # fiddle
}
VOICE_PARTS = ("soprano", "alto", "tenor", "bass")


class ComposeError(UserError, ValueError):
    """A request that cannot be made; the message says what to change."""


@dataclass
class Part:
    name: str
    program: int
    low: int
    high: int
    register: int | None = None  # score-model register token (0..5), None = model's choice
    voice: str | None = None  # soprano, alto, tenor or bass for sung parts


@dataclass
class Plan:
    """Every decision, concrete: what the generation will make (recorded in the sidecar)."""

    style: str | None
    key: str | None
    mode: str | None
    meter: str
    tempo_bpm: float
    bars: int
    parts: list[Part]
    sections: list[tuple[str, int]]  # (label, bars)
    temperature: float
    top_p: float
    key_strength: float
    creativity: float
    dynamics: str
    dynamics_shape: str | None
    articulation: str | None
    density: float | None
    syncopation: float | None
    contour: str | None
    register: str | None
    progression: list[str] | None
    moods: list[str]
    seed: int
    voice_leading: float | None = (
        None  # engine.symbolic.voicing strength (None: the default, 0: off)
    )
    polyphony: int | None = None  # notes a part may sound at once (engine.symbolic.texture)
    double_stops: bool = False  # a solo string part may sound two notes at once

    @property
    def seconds(self) -> float:
        return self.bars * quarters_per_bar(self.meter) * 60.0 / self.tempo_bpm

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sections"] = [list(s) for s in self.sections]
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class Composition:
    """A generated piece: its score, what it was asked and how it was made."""

    score: object  # symusic.Score
    plan: Plan
    request: dict
    parsed: dict
    model_name: str
    model_sha256: str
    settings: dict = field(default_factory=dict)
    program_changes: list = field(default_factory=list)
    """(track, tick, program) instrument changes within parts (a piece written by bar)."""

    def midi_bytes(self) -> bytes:
        from engine.symbolic.midi import midi_bytes, with_program_changes

        return with_program_changes(midi_bytes(self.score), self.program_changes)

    def save(
        self,
        folder: str | Path,
        *,
        formats: Sequence[str] = DEFAULT_FORMATS,
        soundfont: str | Path | None = None,
        effects=None,
        bit_depth: int = 16,
        overwrite: bool = False,
        progress: ProgressFn | None = None,
        renderer=None,
    ) -> dict:
        """Write ``music.<format>`` for each of ``formats`` (wav, flac, ogg, mp3: stereo at
        44100 Hz, ``bit_depth`` 16 or 24; mid; musicxml) and ``generation.json`` into the new
        folder ``folder`` (made whole, then renamed into place); return the record (a dict).

        ``soundfont``: a name or an ``.sf2`` path (default: the best installed);
        ``effects``: an `engine.audio.render.Effects`; ``overwrite``: replace a folder this
        program wrote (never another). ``renderer``: what renders the audio, called as
        `engine.audio.render.render_audio` is (default: that function, here; the studio
        passes one that renders in a child process, `engine.audio.render_server`). Raises
        `ComposeError` (a folder that cannot be written or replaced) or
        `engine.audio.soundfonts.SoundFontError`, both `engine.errors.UserError`.
        """
        return write_generation(
            self,
            Path(folder),
            formats=formats,
            soundfont=soundfont,
            effects=effects,
            bit_depth=bit_depth,
            overwrite=overwrite,
            progress=progress,
            renderer=renderer,
        )


def generate_piece(
    prompt: str = "",
    folder: str | Path | None = None,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    soundfont: str | Path | None = None,
    effects=None,
    bit_depth: int = 16,
    overwrite: bool = False,
    model: str | object | None = None,
    progress: ProgressFn | None = None,
    **options,
) -> dict:
    """`compose` and `Composition.save` in one call, as ``disco-musica generate`` does.

    ``folder`` defaults to ``disco-musica-output/<first words>-<seed>`` (made unique).
    Returns the record written to ``generation.json``, with ``"folder"`` added.
    """
    comp = compose(prompt, model=model, progress=progress, **options)
    try:
        if folder is None:
            make_dirs(DEFAULT_ROOT)
            folder = unique_folder(
                DEFAULT_ROOT, f"{prompt_words(prompt, 'piece')}-{comp.plan.seed}"
            )
        record = comp.save(
            folder,
            formats=formats,
            soundfont=soundfont,
            effects=effects,
            bit_depth=bit_depth,
            overwrite=overwrite,
            progress=progress,
        )
    except BaseException:
        remove_made_dirs()
        raise
    forget_made_dirs()
    return {**record, "folder": str(folder)}


# ---- planning ----------------------------------------------------------------------------
def plan(prompt: str = "", **options) -> tuple[Plan, dict]:
    """Resolve a prompt and explicit options into a `Plan`; also return the parse (a dict).

    Options (None or absent = from the prompt, else a documented default): style, key, mode,
    meter, tempo_bpm, bars, seconds, instruments (str or list of names), mood, structure,
    progression, dynamics, dynamics_shape, articulation, density, syncopation, register,
    contour, creativity (0..1), seed, polyphony, voice_leading, double_stops (True: a solo
    violin, viola, cello or double bass may play two notes at once).
    """
    from engine.pipelines.prompt import PromptError, parse_prompt
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import METERS, STYLES

    unknown = set(options) - set(REQUEST_FIELDS)
    if unknown:
        raise ComposeError(f"unknown option(s) {', '.join(sorted(unknown))}")
    _check_types(prompt, options)
    try:
        parsed = parse_prompt(prompt or "")
    except PromptError as e:
        raise ComposeError(str(e)) from None
    a = parsed.attributes
    o = {k: v for k, v in options.items() if v is not None}

    if "mood" in o:  # an explicit mood fills what the prompt left open
        try:
            mood_attrs = parse_prompt(str(o["mood"])).attributes
        except PromptError as e:
            raise ComposeError(str(e)) from None
        if not mood_attrs.moods:
            raise ComposeError(f"unknown mood {o['mood']!r}; see `disco-musica prompt`")
        for f in ("mode", "tempo_bpm", "register", "dynamics", "articulation", "density"):
            if getattr(a, f) is None:
                setattr(a, f, getattr(mood_attrs, f))
        a.moods = mood_attrs.moods + [m for m in a.moods if m not in mood_attrs.moods]

    def pick(name: str, attr: str | None = None):
        return o[name] if name in o else getattr(a, attr or name)

    style = pick("style")
    if style is not None and style not in STYLES:
        import difflib

        near = difflib.get_close_matches(str(style), STYLES, n=2)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise ComposeError(f"unknown style {style!r}; {hint}known: {', '.join(STYLES)}")
    key, mode = pick("key"), pick("mode")
    if key is not None:
        from engine.symbolic.tokenizer import TokenizerError, tonic_index

        try:
            tonic_index(key)
        except TokenizerError as e:
            raise ComposeError(str(e)) from None
    if mode is not None and mode not in ("major", "minor"):
        raise ComposeError(f"unknown mode {mode!r}; use major or minor")
    progression = o.get("progression", a.progression)
    if isinstance(progression, str):
        progression = [c for c in re.split(r"[\s,\-–]+", progression) if c]
    if progression:
        from engine.symbolic.steer import SteeringError, key_of_progression, parse_chord

        implied = key_of_progression(progression)
        if implied and key is None:
            key = implied[0]
            mode = mode or implied[1]
        try:
            for c in progression:
                parse_chord(c, key, mode)
        except SteeringError as e:
            raise ComposeError(str(e)) from None
    meter = pick("meter") or "4/4"
    if meter not in METERS:
        raise ComposeError(f"unsupported meter {meter!r}; use one of {', '.join(METERS)}")

    tempo = pick("tempo_bpm")
    if tempo is None:
        tempo = STYLE_TEMPOS.get(style, DEFAULT_TEMPO) if style else DEFAULT_TEMPO
    tempo = float(tempo)
    if not api.MIN_TEMPO_BPM <= tempo <= api.MAX_TEMPO_BPM:
        raise ComposeError(
            f"tempo {tempo:g} BPM is outside {api.MIN_TEMPO_BPM:g}..{api.MAX_TEMPO_BPM:g}"
        )

    parts = _parts(o.get("instruments"), a, style)
    if style is None and (a.instruments or o.get("instruments")):
        # The model writes best in a style it knows: voices alone sing a chorale, any other
        # ensemble plays in the classical style (documented in docs/prompting.md).
        style = "chorale" if all(q.voice for q in parts) and len(parts) > 1 else "classical"
    register = pick("register")
    if register not in (None, "low", "middle", "high"):
        raise ComposeError(f"unknown register {register!r}; use low, middle or high")
    if register in ("low", "high"):
        # Keep to the lower or upper part of each instrument's range (at least an octave),
        # and ask the model for the register of that half.
        from engine.symbolic.tokenizer import register_of

        for q in parts:
            mid = (q.low + q.high) // 2
            if register == "low":
                q.high = max(q.low + 12, mid + 2)
            else:
                q.low = min(q.high - 12, mid - 2)
            q.register = register_of((q.low + q.high) / 2)

    structure = o.get("structure", a.structure)
    lengths = None
    if isinstance(structure, str):
        structure, lengths = _parse_structure(structure)
    if lengths is not None:  # the form gives each section's bars: that is the length
        if "bars" in o or "seconds" in o:
            raise ComposeError(
                "the form gives each section's length; leave out the bars or duration"
            )
        sections = list(zip(structure, lengths, strict=True))
        if sum(lengths) > MAX_TOTAL_BARS:
            raise ComposeError(f"the form adds up to {sum(lengths)} bars; the most is 64")
    else:
        sections = _sections(structure, _bars(o, a, meter, tempo, structure))
    bars = sum(n for _, n in sections)

    creativity = float(pick("creativity") if pick("creativity") is not None else 0.5)
    if not 0 <= creativity <= 1:
        raise ComposeError(f"creativity must be between 0 and 1, not {creativity:g}")
    dynamics = pick("dynamics") or DEFAULT_DYNAMICS
    if dynamics not in VELOCITIES:
        raise ComposeError(f"unknown dynamics {dynamics!r}; use {', '.join(VELOCITIES)}")
    shape = pick("dynamics_shape")
    if shape not in (None, "crescendo", "diminuendo"):
        raise ComposeError(f"unknown dynamics shape {shape!r}; use crescendo or diminuendo")
    articulation = pick("articulation")
    if articulation not in (None, "legato", "staccato"):
        raise ComposeError(f"unknown articulation {articulation!r}; use legato or staccato")
    for name in ("density", "syncopation"):
        v = pick(name)
        if v is not None and not 0 <= float(v) <= 1:
            raise ComposeError(f"{name} must be between 0 and 1, not {v}")
    seed = check_seed(o.get("seed", 0), ComposeError)

    p = Plan(
        style=style,
        key=key,
        mode=mode,
        meter=meter,
        tempo_bpm=tempo,
        bars=bars,
        parts=parts,
        sections=sections,
        # Creativity 0 -> conservative (cool sampling, strong key), 1 -> experimental.
        temperature=round(0.6 + 0.6 * creativity, 4),
        top_p=round(0.85 + 0.14 * creativity, 4),
        key_strength=round(2.7 - 2.4 * creativity, 4),
        creativity=creativity,
        dynamics=dynamics,
        dynamics_shape=shape,
        articulation=articulation,
        density=None if pick("density") is None else float(pick("density")),
        syncopation=None if pick("syncopation") is None else float(pick("syncopation")),
        contour=pick("contour"),
        register=register,
        progression=progression or None,
        moods=list(a.moods),
        seed=seed,
        voice_leading=_voice_leading(o.get("voice_leading")),
        polyphony=_polyphony(o.get("polyphony")),
        double_stops=_double_stops(pick("double_stops")),
    )
    if o.get("changes"):
        if not o.get("by_bar"):
            raise ComposeError("changes from a bar on need by_bar=True (the piece written by bar)")
        check_changes(o["changes"], p)
    return p, _parsed_dict(parsed)


def _voice_leading(v):
    from engine.symbolic.score_api import ScoreModelError, check_voice_leading

    if v is None:
        return None
    try:
        return check_voice_leading(v)[0]
    except ScoreModelError as e:
        raise ComposeError(str(e)) from None


def _polyphony(v):
    from engine.symbolic.score_api import ScoreModelError, check_polyphony

    try:
        return check_polyphony(v)
    except ScoreModelError as e:
        raise ComposeError(str(e)) from None


def _double_stops(v) -> bool:
    from engine.symbolic.score_api import ScoreModelError, check_double_stops

    try:
        return check_double_stops(v)
    except ScoreModelError as e:
        raise ComposeError(str(e)) from None


REQUEST_FIELDS = (
    "style",
    "key",
    "mode",
    "meter",
    "tempo_bpm",
    "bars",
    "seconds",
    "instruments",
    "mood",
    "structure",
    "progression",
    "dynamics",
    "dynamics_shape",
    "articulation",
    "density",
    "syncopation",
    "register",
    "contour",
    "creativity",
    "seed",
    "model",
    "polyphony",
    "voice_leading",
    "double_stops",
    "by_bar",
    "changes",
)


def _parsed_dict(parsed) -> dict:
    return {
        "understood": [dataclasses.asdict(u) for u in parsed.understood],
        "ignored": [dataclasses.asdict(i) for i in parsed.ignored],
    }


def _parts(instruments, a, style: str | None) -> list[Part]:
    """Parts from explicit instruments, else the prompt's, else the style's ensemble."""
    from engine.pipelines.prompt import PromptError, parse_prompt

    chosen = None
    if instruments:
        text = instruments if isinstance(instruments, str) else ", ".join(instruments)
        try:
            parsed = parse_prompt(text.replace(",", " and "))
        except PromptError as e:
            raise ComposeError(str(e)) from None
        bad = [i for i in parsed.ignored]
        if bad or not parsed.attributes.instruments:
            i = bad[0] if bad else None
            hint = f"; did you mean {' or '.join(i.suggestions)}?" if i and i.suggestions else ""
            what = i.word if i else text
            raise ComposeError(
                f"unknown instrument {what!r}{hint} (see `disco-musica prompt` for the list)"
            )
        chosen = parsed.attributes.instruments
    elif a.instruments:
        chosen = a.instruments
    elif style in STYLE_ENSEMBLES:
        chosen = parse_prompt(STYLE_ENSEMBLES[style]).attributes.instruments
    else:
        chosen = parse_prompt("choir").attributes.instruments
    from engine.symbolic.tokenizer import MAX_VOICES

    if len(chosen) > MAX_VOICES:
        raise ComposeError(
            f"{len(chosen)} parts asked for; the model writes at most {MAX_VOICES} parts"
        )
    parts = []
    for raw_name, program in chosen:
        name = raw_name[:1].upper() + raw_name[1:]  # "violin 1" -> "Violin 1" in MIDI/notation
        raw = raw_name.lower()
        if raw in VOICE_PARTS or (program in (52, 53, 54) and len(chosen) <= MAX_VOICES):
            from engine.symbolic.score_api import PART_RANGES, PART_REGISTERS

            vname = raw if raw in VOICE_PARTS else _voice_for(len(chosen), len(parts))
            lo, hi = PART_RANGES[vname]
            parts.append(Part(name, program, lo, hi, PART_REGISTERS[vname], vname))
        else:
            lo, hi = PROGRAM_RANGES.get(program, DEFAULT_RANGE)
            parts.append(Part(name, program, lo, hi))
    return _by_role(parts)


def _by_role(parts: list[Part]) -> list[Part]:
    """Instrument parts get a range by their place in the ensemble (the first highest) and
    the register token of its centre; named voices keep their choral ranges."""
    from engine.symbolic.texture import ensemble_ranges
    from engine.symbolic.tokenizer import register_of

    inst = [i for i, q in enumerate(parts) if not q.voice]
    if not inst:
        return parts
    ranges = ensemble_ranges(
        [(parts[i].low, parts[i].high) for i in inst], [parts[i].program for i in inst]
    )
    for i, (lo, hi) in zip(inst, ranges, strict=True):
        q = parts[i]
        parts[i] = dataclasses.replace(q, low=lo, high=hi, register=register_of((lo + hi) / 2))
    return parts


def _voice_for(n: int, i: int) -> str:
    from engine.symbolic.score_api import DEFAULT_PARTS

    layout = DEFAULT_PARTS.get(n, ("soprano",))
    return layout[min(i, len(layout) - 1)]


def quarters_per_bar(meter: str) -> float:
    num, den = (int(x) for x in meter.split("/"))
    return num * 4 / den


def _parse_structure(text: str) -> tuple[list[str], list[int] | None]:
    """Section labels, and their lengths in bars when the form gives them.

    ``AABA``; ``intro verse chorus``; with lengths ``A:8 A:8 B:4 A:8`` or ``intro:2 verse:8``
    (every section then needs one, and a repeated label keeps its length).
    """
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    if len(words) == 1 and re.fullmatch(r"[A-Ha-h]{1,12}", words[0]):
        return list(words[0].upper()), None
    if not words:
        raise ComposeError("empty --structure; write a form such as AABA or 'verse chorus'")
    labels, lengths = [], []
    for w in words:
        m = re.fullmatch(r"([A-Za-z][A-Za-z-]*)(?::(\d+))?", w)
        if not m:
            raise ComposeError(
                f"cannot read the section {w!r}; write labels such as A or verse, with an "
                "optional length in bars (A:8, verse:4)"
            )
        label = m[1].upper() if len(m[1]) == 1 else m[1].lower()
        labels.append(label)
        lengths.append(int(m[2]) if m[2] else None)
    given = [n for n in lengths if n is not None]
    if not given:
        return labels, None
    if len(given) != len(lengths):
        raise ComposeError("give every section a length (A:8 B:4 ...) or none")
    for label in set(labels):
        if len({n for lab, n in zip(labels, lengths, strict=True) if lab == label}) > 1:
            raise ComposeError(f"section {label} has two lengths; a repeat keeps its length")
    if min(given) < 1:
        raise ComposeError("a section needs at least 1 bar")
    return labels, lengths


def _bars(o: dict, a, meter: str, tempo: float, structure) -> int:
    bars = o.get("bars")
    seconds = o.get("seconds")
    if bars is None and seconds is None:
        bars, seconds = a.bars, a.seconds
    if bars is not None:
        bars = int(bars)
        if not 1 <= bars <= MAX_TOTAL_BARS:
            raise ComposeError(f"length {bars} bars is outside 1..{MAX_TOTAL_BARS} bars")
        return bars
    if seconds is not None:
        seconds = float(seconds)
        if not 0 < seconds <= MAX_SECONDS:
            raise ComposeError(f"duration {seconds:g} s is outside 0..{MAX_SECONDS:g} s")
        bars = max(1, round(seconds * tempo / 60.0 / quarters_per_bar(meter)))
        if bars > MAX_TOTAL_BARS:
            longest = MAX_TOTAL_BARS * quarters_per_bar(meter) * 60 / tempo
            raise ComposeError(
                f"{seconds:g} s is {bars} bars at {tempo:g} BPM; the most is {MAX_TOTAL_BARS} "
                f"bars ({longest:.0f} s at this tempo): ask for less or a faster tempo"
            )
        return bars
    if structure:
        return min(MAX_TOTAL_BARS, DEFAULT_SECTION_BARS * len(structure))
    return DEFAULT_BARS


def _sections(structure: list[str] | None, bars: int) -> list[tuple[str, int]]:
    """Split ``bars`` over the sections; a repeated label keeps one length everywhere.

    Each label gets ``bars // sections`` bars; the bars left over go, one at a time, to the
    most-used label that still fits, so the total falls short only when no label fits
    what is left (the plan records the true total).
    """
    if not structure:
        return [("", bars)]
    if len(structure) > bars:
        raise ComposeError(
            f"{len(structure)} sections do not fit in {bars} bars; ask for more bars or a "
            "shorter form"
        )
    base = bars // len(structure)
    counts: dict[str, int] = {}
    for label in structure:
        counts[label] = counts.get(label, 0) + 1
    sizes = dict.fromkeys(counts, base)
    left = bars - base * len(structure)
    while True:  # one more bar to the most-used label that still fits, until none fits
        fits = [k for k in counts if counts[k] <= left]
        if not fits:
            break
        label = max(fits, key=lambda k: (counts[k], -structure.index(k)))
        sizes[label] += 1
        left -= counts[label]
    return [(label, sizes[label]) for label in structure]


# ---- composing ---------------------------------------------------------------------------
NUMBER_FIELDS = ("tempo_bpm", "seconds", "creativity", "voice_leading", "density", "syncopation")
WHOLE_FIELDS = ("bars", "seed", "polyphony")
LIST_FIELDS = ("instruments", "progression")  # text, or a list of names
BOOL_FIELDS = ("double_stops", "by_bar")


def _check_types(prompt, options: dict) -> None:
    """One-line errors for values of the wrong kind (from Python or an edited record)."""
    if prompt is not None and not isinstance(prompt, str):
        raise ComposeError(f"the prompt must be text, not {type(prompt).__name__} {prompt!r}")
    for name, v in options.items():
        if v is None:
            continue
        if name in WHOLE_FIELDS:
            ok = isinstance(v, int) and not isinstance(v, bool)
            want = "a whole number"
        elif name in NUMBER_FIELDS:
            ok = isinstance(v, int | float) and not isinstance(v, bool)
            want = "a number"
        elif name in BOOL_FIELDS:
            ok, want = isinstance(v, bool), "True or False"
        elif name == "changes":
            ok, want = isinstance(v, list | tuple), "a list of changes ({'bar': N, ...})"
        elif name in LIST_FIELDS:
            ok = isinstance(v, str) or (
                isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)
            )
            want = "text or a list of names"
        else:
            ok, want = isinstance(v, str), "text"
        if not ok:
            raise ComposeError(f"{name} must be {want}, not {v!r}")


# ---- changes from a bar on (pieces written bar by bar: engine.pipelines.live) ----
# The fields a change may hold besides its bar; "part" goes with "instrument".
CHANGE_FIELDS = ("tempo_bpm", "dynamics", "creativity", "density", "instrument")
# Fields that change how bars are written (a change of them rewrites bars already written).
WRITING_FIELDS = ("creativity", "density")


@dataclass(frozen=True)
class Change:
    """From bar ``bar`` (1 = the first) on, ``field`` is ``value`` (for ``instrument``:
    part ``part``, 1 = the top part)."""

    bar: int
    field: str
    value: object
    part: int | None = None

    def to_dict(self) -> dict:
        d = {"bar": self.bar, self.field: self.value}
        if self.part is not None:
            d["part"] = self.part
        return d


def check_changes(changes, p) -> list[Change]:
    """The changes of a request (a list of dicts, see the module docstring), checked
    against plan ``p``; raises `ComposeError` in one line for a bad one."""
    if changes is None:
        return []
    if not isinstance(changes, list | tuple):
        raise ComposeError(f"changes must be a list of {{'bar': N, ...}}, not {changes!r}")
    out: list[Change] = []
    for c in changes:
        if not isinstance(c, dict) or type(c.get("bar")) is not int:
            raise ComposeError(f"a change needs a whole bar number: {c!r}")
        bar = c["bar"]
        if not 1 <= bar <= p.bars:
            raise ComposeError(f"a change at bar {bar}: the piece has bars 1..{p.bars}")
        fields = [k for k in c if k not in ("bar", "part")]
        unknown = [k for k in fields if k not in CHANGE_FIELDS]
        if unknown or not fields:
            raise ComposeError(
                f"a change may set {', '.join(CHANGE_FIELDS)}; not {', '.join(unknown) or c!r}"
            )
        if "part" in c and "instrument" not in c:
            raise ComposeError("a change with a part must name its instrument")
        for k in fields:
            out.append(check_change(bar, k, c[k], c.get("part"), p))
    return out


def check_change(bar: int, field: str, value, part, p) -> Change:
    def number(lo: float, hi: float, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ComposeError(f"{what} must be {names.num(lo)}..{names.num(hi)}, not {value!r}")
        return float(value)

    if field == "tempo_bpm":
        value = number(names.MIN_TEMPO_BPM, names.MAX_TEMPO_BPM, "tempo")
    elif field in ("creativity", "density"):
        value = number(0, 1, field)
    elif field == "dynamics":
        if value not in VELOCITIES:
            raise ComposeError(f"unknown dynamics {value!r}; use {', '.join(VELOCITIES)}")
    elif field == "instrument":
        if type(part) is not int or not 1 <= part <= len(p.parts):
            raise ComposeError(f"an instrument change needs a part 1..{len(p.parts)}, not {part!r}")
        program_of(value)  # a name the prompt reader knows
        return Change(bar, field, str(value), part)
    return Change(bar, field, value)


def program_of(instrument) -> int:
    """The General MIDI program of an instrument name (as prompts name them)."""
    from engine.pipelines.prompt import PromptError, parse_prompt

    if not isinstance(instrument, str) or not instrument.strip():
        raise ComposeError(f"an instrument must be a name, not {instrument!r}")
    try:
        parsed = parse_prompt(instrument)
    except PromptError as e:
        raise ComposeError(str(e)) from None
    found = parsed.attributes.instruments
    if len(found) != 1 or parsed.ignored:
        raise ComposeError(
            f"unknown instrument {instrument!r}; see `disco-musica prompt` for the names"
        )
    return found[0][1]


def compose(
    prompt: str = "",
    *,
    model: str | object | None = None,
    progress: ProgressFn | None = None,
    **options,
) -> Composition:
    """Write a piece for ``prompt`` (plain words, at most 2000 characters) and ``options``.

    ``options`` are keyword arguments, each optional (None: from the prompt, else the
    default); `plan` checks them all before any model loads: ``style``, ``key`` (a tonic
    such as ``"G"`` or ``"F#"``), ``mode`` (``"major"``/``"minor"`` …), ``meter``
    (``"3/4"``), ``tempo_bpm`` (beats a minute, 20..300), ``seconds`` (length in seconds) or
    ``bars`` (whole bars, 1..128), ``instruments`` (names or one string), ``structure``
    (``"AABA"``), ``creativity`` (0..1), ``seed`` (0..2**32-1, default 0: the same seed,
    model and options make the same piece) and the rest of `plan`'s list.

    ``model``: a name (``"score-base"``), a model folder or a
    loaded `engine.symbolic.score_api.ScoreModel` (default: the shipped model).
    ``progress`` gets `engine.progress.Progress` events as the bars are written: stage
    "music", ``total`` the piece's bars, ``done`` growing to it.

    Returns a `Composition`: ``.score`` (a symusic Score, in ticks), ``.plan`` (every
    decision: key, tempo in BPM, bars, parts with their MIDI ranges, seed …), ``.request``
    and ``.save(folder)``, which writes the files and ``generation.json`` (replay makes
    them again) and returns that record as a dict. Raises `ComposeError` (a
    `engine.errors.UserError`) for a request that cannot be made.
    """
    from engine.symbolic import score_api as api

    if options.get("by_bar"):
        raise ComposeError(
            "a piece written bar by bar is made by engine.pipelines.live.compose_by_bar "
            "(replay finds it from the record)"
        )
    request = {"prompt": prompt, **{k: v for k, v in options.items() if v is not None}}
    p, parsed = plan(prompt, **options)
    sm = model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
    score = _write(sm, p, progress)
    _shape_dynamics(score, p)
    articulate(score, p)
    label_sections(score, p)
    return Composition(
        score=score,
        plan=p,
        request={**request, "model": model_name(model, sm)},
        parsed=parsed,
        model_name=model_name(model, sm),
        model_sha256=weights_sha256(Path(sm.path)),
    )


def compose_variations(
    prompt: str = "",
    *,
    count: int,
    seed: int,
    model: str | object | None = None,
    progress: Callable[[int], ProgressFn | None] | None = None,
    **options,
) -> list[Composition]:
    """``count`` pieces for ``prompt`` with seeds ``seed`` .. ``seed + count - 1``, written
    together: up to `engine.generate.MAX_BATCH_ROWS` pieces share each decoding step.

    The options are `compose`'s; ``seed`` is required here (0..2**32 - count) and
    ``count`` is 1..32. Returns ``count`` `Composition` objects, in seed order.
    ``progress(i)`` gives piece i's progress callback (called while piece i is written). Each
    piece of a batch records it (``request["batch"]``: the seeds of its rows and its row),
    and `replay` reruns that batch: a piece written in a batch can differ from the same seed
    written alone (see `engine.generate.BatchDecoder`).
    """
    from engine.generate import MAX_BATCH_ROWS
    from engine.symbolic import score_api as api

    if type(count) is not int or not 1 <= count <= names.MAX_VARIATIONS:
        raise ComposeError(f"count must be 1..{names.MAX_VARIATIONS}, not {count!r}")
    plan(prompt, seed=seed, **options)  # every check before any work
    check_seed(seed, ComposeError, count=count)
    sm = model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
    pieces: list[Composition] = []
    for first in range(0, count, MAX_BATCH_ROWS):
        rows = range(first, min(count, first + MAX_BATCH_ROWS))
        seeds = [derive_seed(seed, "variation", i) for i in rows]
        progs = [progress(first + r) if progress else None for r in range(len(seeds))]
        pieces += compose_batch(prompt, sm, seeds, progs, **options)
    name = model_name(model, sm)
    for comp in pieces:
        comp.request["model"] = comp.model_name = name
    return pieces


def compose_batch(prompt: str, sm, seeds: list[int], progress: list, **options):
    """`compose` for each of ``seeds``, decoded together (one piece: alone, as `compose`)."""
    from engine.generate import BatchDecoder

    if len(seeds) == 1:
        return [compose(prompt, model=sm, progress=progress[0], seed=seeds[0], **options)]

    def job(row: int):
        return lambda decoder: compose(
            prompt, model=sm.for_row(decoder), progress=progress[row], seed=seeds[row], **options
        )

    pieces = BatchDecoder(sm.model, len(seeds)).run([job(r) for r in range(len(seeds))])
    for row, comp in enumerate(pieces):
        comp.request["batch"] = {"seeds": list(seeds), "row": row}
    return pieces


def model_name(model, sm) -> str:
    from engine.symbolic import score_api as api

    if model is None or isinstance(model, api.ScoreModel):
        path = Path(sm.path)
        return path.name if path.parent == api.MODELS_DIR else str(path)
    return str(model)


def _section_ends(sections: Sequence[tuple[str, int]]) -> dict[int, str]:
    """The cadence at the end of each section but the last (bar -> "half" | "full"): a
    section followed by its own repeat or by a return of earlier material ends on the
    dominant (half); one followed by new material closes on the tonic (full)."""
    ends: dict[int, str] = {}
    bar, seen = 0, set()
    for i, (label, n) in enumerate(sections[:-1]):
        bar += n
        seen.add(label)
        following = sections[i + 1][0]
        ends[bar - 1] = "half" if following in seen else "full"
    return ends


def steering_for(p: Plan, bass_track: int | None):
    from engine.symbolic.steer import Steering

    return Steering(
        section_ends=_section_ends(p.sections),
        progression=p.progression,
        key=p.key,
        mode=p.mode,
        density=p.density,
        syncopation=p.syncopation,
        contour=p.contour,
        total_bars=p.bars,
        bass_track=bass_track,
    )


PROGRESS_STAGE = "music"  # the stage name of the bar-by-bar progress (the whole piece)


def _write(sm, p: Plan, progress: ProgressFn | None):
    """The score, section by section; repeated labels reuse their material with a variation."""
    from symusic import Score

    centres = [(q.low + q.high) / 2 for q in p.parts]
    # the lowest part (of parts planned equally low, the last) is the bass
    bass = min(reversed(range(len(centres))), key=lambda i: centres[i])
    bass = bass if len(p.parts) > 1 else None
    steer = steering_for(p, bass)
    sampling = {"temperature": p.temperature, "top_p": p.top_p, "key_strength": p.key_strength}
    total = sum(n for _, n in p.sections)
    done = 0
    names = [q.name for q in p.parts]

    shown = [0]  # bars reported so far: one stream for the whole piece, never going back

    def report(bars_done: int) -> None:
        shown[0] = max(shown[0], min(total, bars_done))
        progress(Progress(PROGRESS_STAGE, shown[0], total))

    def stage(label: str, bars: int) -> ProgressFn | None:
        """Token events -> bars of the whole piece done, estimated (about 14 tokens a bar and
        part, counted from the first token of this call: its prompt holds the bars before)."""
        if progress is None:
            return None
        start, expected, first = done, max(1, bars * len(p.parts) * 14), []

        def on_tokens(event: Progress) -> None:
            tokens = event.done
            if not first:
                first.append(tokens)
            report(int(start + min(bars - 1, bars * max(0, tokens - first[0]) / expected)))

        return on_tokens

    score: Score | None = None
    first_use: dict[str, tuple[int, int]] = {}  # label -> (start bar, bars)
    for i, (label, n) in enumerate(p.sections):
        what = f"section {label}" if label else "music"
        if label in first_use and score is not None:
            score = repeat_section(
                sm, score, p, first_use[label], i, sampling, stage(what, n), steer, p.voice_leading
            )
        elif score is None:
            score = write_opening(sm, p, n, steer, sampling, stage(what, n))
        else:
            score = write_more(
                sm, score, p, n, derive_seed(p.seed, "section", i), steer, sampling, stage(what, n)
            )
        if label and label not in first_use:
            first_use[label] = (done, n)
        done += n
        if progress is not None:
            report(done)
    for t, name in zip(score.tracks, names, strict=True):
        t.name = name
    return score


def write_opening(sm, p: Plan, bars: int, steer, sampling: dict, progress=None):
    """The first ``bars`` bars of plan ``p`` (the score model's `generate` with the plan's
    parts, ranges, registers and controls); the key the model chose, when the plan left it
    open, goes into ``p``."""
    # Choir parts name their voice (register and range as in four-part writing).
    voice_parts = [q.voice for q in p.parts] if all(q.voice for q in p.parts) else None
    registers = [q.register for q in p.parts]
    g = sm.generate(
        style=p.style,
        key=p.key,
        mode=p.mode,
        meter=p.meter,
        tempo_bpm=p.tempo_bpm,
        programs=[q.program for q in p.parts],
        parts=voice_parts,
        pitch_ranges=[(q.low, q.high) for q in p.parts],
        registers=registers if all(r is not None for r in registers) else None,
        bars=bars,
        seed=p.seed,
        steer=steer,
        progress=progress,
        voice_leading=p.voice_leading,
        polyphony=p.polyphony,
        double_stops=p.double_stops,
        **sampling,
    )
    if p.key is None or p.mode is None:  # fix the key the model chose
        p.key = p.key or g.conditions.get("key")
        p.mode = p.mode or g.conditions.get("mode")
    return g.score


def write_more(sm, score, p: Plan, bars: int, seed: int, steer, sampling: dict, progress=None):
    """``score`` and ``bars`` new bars of plan ``p`` after it (`continue_score`)."""
    return sm.continue_score(
        score,
        bars=bars,
        style=p.style,
        key=p.key,
        mode=p.mode,
        pitch_ranges=[(q.low, q.high) for q in p.parts],
        seed=seed,
        steer=steer,
        progress=progress,
        voice_leading=p.voice_leading,
        polyphony=p.polyphony,
        double_stops=p.double_stops,
        **sampling,
    ).score


def bar_ticks(score, meter: str) -> int:
    return int(round(score.ticks_per_quarter * quarters_per_bar(meter)))


def repeat_section(
    sm,
    score,
    p: Plan,
    source: tuple[int, int],
    index: int,
    sampling,
    progress,
    steer=None,
    voice_leading=None,
):
    """Append a copy of bars ``source`` and rewrite its last bar (a varied repeat)."""
    from symusic import Note, Score

    start, n = source
    bt = bar_ticks(score, p.meter)
    end_tick = _end_bar(score, bt) * bt
    copy = Score(score.ticks_per_quarter)
    copy.time_signatures = score.time_signatures
    copy.key_signatures = score.key_signatures
    copy.tempos = score.tempos
    for t in score.tracks:
        c = t.copy()
        c.notes = [
            Note(x.time - start * bt, x.duration, x.pitch, x.velocity)
            for x in t.notes
            if start * bt <= x.time < (start + n) * bt
        ]
        copy.tracks.append(c)
    if n >= 2 and all(len(t.notes) for t in copy.tracks):
        try:
            varied = sm.regenerate_bars(
                copy,
                start_bar=n - 1,
                end_bar=n - 1,
                style=p.style,
                seed=derive_seed(p.seed, "repeat", index),
                progress=progress,
                steer=steer,
                first_bar=end_tick // bt,
                voice_leading=voice_leading,
                double_stops=p.double_stops,
                polyphony=p.polyphony,
                **sampling,
            ).score
        except ValueError:  # too long for one window: repeat it as it is
            varied = copy
    else:
        varied = copy
    for t, v in zip(score.tracks, varied.tracks, strict=False):
        new = [
            Note(x.time + end_tick, x.duration, x.pitch, x.velocity)
            for x in v.notes
            if x.time < n * bt
        ]
        if new:  # a note held over the seam stops where the repeat's first note starts
            first = min(x.time for x in new)
            for x in t.notes:
                if x.time < first < x.time + x.duration:
                    x.duration = first - x.time
        t.notes.extend(new)
        t.notes.sort()
    return score


def _end_bar(score, bar_ticks: int) -> int:
    """Bars used by the score: up to the bar holding the last onset."""
    onsets = [x.time for t in score.tracks for x in t.notes]
    return int(max(onsets) // bar_ticks) + 1 if onsets else 0


def _shape_dynamics(score, p: Plan) -> None:
    """Velocities: the dynamic level, a hairpin over the piece, downbeat accents, melody lift."""
    base = VELOCITIES[p.dynamics]
    bt = bar_ticks(score, p.meter)
    length = max(p.bars * bt, 1)
    for i, t in enumerate(score.tracks):
        for x in t.notes:
            v = float(base)
            if p.dynamics_shape:
                frac = min(x.time / length, 1.0)
                ramp = (frac - 0.5) * HAIRPIN_SPAN
                v += ramp if p.dynamics_shape == "crescendo" else -ramp
            if x.time % bt == 0:
                v += DOWNBEAT_ACCENT
            if i == 0 and len(score.tracks) > 1:
                v += MELODY_LIFT
            x.velocity = int(min(max(round(v), 1), 127))


def articulate(score, p: Plan) -> None:
    """Staccato halves notes (at most an eighth) but a part's last notes, which keep their
    length (since 0.9.0: a bass held through the last bar, cut to an eighth, left the
    final chord over another part's note); legato ties each note to the next onset."""
    tpq = score.ticks_per_quarter
    if p.articulation == "staccato":
        for t in score.tracks:
            last = max((x.time for x in t.notes), default=None)
            for x in t.notes:
                if x.time != last:
                    x.duration = max(min(x.duration // 2, tpq // 2), tpq // 8)
    elif p.articulation == "legato":
        for t in score.tracks:
            onsets = sorted({x.time for x in t.notes})
            nxt = {a: b for a, b in zip(onsets, onsets[1:], strict=False)}
            for x in t.notes:
                b = nxt.get(x.time)
                if b is not None and x.time + x.duration < b <= x.time + x.duration + tpq:
                    x.duration = b - x.time


def label_sections(score, p: Plan) -> None:
    """Section names as MIDI markers, at the first beat of each section."""
    from symusic import TextMeta

    bt = bar_ticks(score, p.meter)
    at = 0
    markers = []
    for label, n in p.sections:
        if label:
            markers.append(TextMeta(at * bt, label))
        at += n
    score.markers = markers


# ---- files -------------------------------------------------------------------------------
def write_generation(
    comp: Composition,
    folder: Path,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    soundfont: str | Path | None = None,
    effects=None,
    bit_depth: int = 16,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    renderer=None,
) -> dict:
    """Write the piece's files and ``generation.json`` into ``folder``; return the record.

    Files are written into a hidden folder beside ``folder`` and renamed into place only when
    all are complete: an interrupted run leaves nothing behind, and an existing folder is
    never touched unless ``overwrite``.
    """
    from engine.audio.render import Effects, render_audio, write_audio
    from engine.audio.soundfonts import load_soundfont

    formats = check_formats(formats)
    folder = Path(folder)
    check_new_folder(folder, overwrite, ComposeError)
    effects = effects or Effects()
    effects.validate()
    audio_formats = [f for f in formats if f in ("wav", "flac", "ogg", "mp3")]
    sf_bytes = load_soundfont(soundfont) if audio_formats else None

    with OutputFolder(folder, overwrite=overwrite, error=ComposeError) as out:
        tmp = out.path
        midi = comp.midi_bytes()
        outputs: dict[str, dict] = {}
        if "mid" in formats:
            _put(tmp, f"{STEM}.mid", midi, outputs)
        if "musicxml" in formats:
            from engine.symbolic.notation import write_musicxml

            if progress:
                progress(Progress("notation", 0, 1))
            write_musicxml(comp.score, tmp / f"{STEM}.musicxml", title=_title(comp))
            outputs[f"{STEM}.musicxml"] = file_info(tmp / f"{STEM}.musicxml")
        render_info = None
        if audio_formats:
            if progress:
                progress(Progress("audio", 0, len(audio_formats) + 1))
            audio, render_info = (renderer or render_audio)(
                midi, soundfont=soundfont, effects=effects
            )
            for k, fmt in enumerate(audio_formats, 1):
                path = tmp / f"{STEM}.{fmt}"
                write_audio(audio, render_info.get("sample_rate", 44100), path, bit_depth=bit_depth)
                outputs[path.name] = file_info(path)
                if progress:
                    progress(Progress("audio", k + 1, len(audio_formats) + 1))
        pictures = [f for f in formats if f in names.PICTURE_FORMATS]
        if pictures:
            _draw(comp, tmp, midi, formats, pictures, outputs, progress)
        record = _record(comp, formats, soundfont, sf_bytes, effects, bit_depth, render_info)
        record = write_record(tmp, record, outputs)
    return with_replaced(record, out)


def _draw(comp, folder: Path, midi: bytes, formats, pictures, outputs: dict, progress) -> None:
    """The pictures of ``--formats png,svg,pdf``, beside the files (engine.library.pictures):
    piano roll and parameter curves from the MIDI, the audio's waveform and loudness, the
    engraved score; drawn from files that are not asked for in a scratch folder."""
    import tempfile

    from engine.library.pictures import render_pictures

    if progress:
        progress(Progress("pictures", 0, 1))
    with tempfile.TemporaryDirectory() as scratch:
        sources = [folder / name for name in outputs]
        if "mid" not in formats:
            (Path(scratch) / f"{STEM}.mid").write_bytes(midi)
            sources.append(Path(scratch) / f"{STEM}.mid")
        if "musicxml" not in formats:
            from engine.symbolic.notation import write_musicxml

            write_musicxml(comp.score, Path(scratch) / f"{STEM}.musicxml", title=_title(comp))
            sources.append(Path(scratch) / f"{STEM}.musicxml")
        for path in render_pictures(sources, pictures, folder, title=_title(comp)):
            outputs[path.name] = file_info(path)
    if progress:
        progress(Progress("pictures", 1, 1))


def _put(folder: Path, name: str, data: bytes, outputs: dict) -> None:
    (folder / name).write_bytes(data)
    outputs[name] = file_info(folder / name)


def _title(comp: Composition) -> str:
    prompt = (comp.request.get("prompt") or "").strip()
    return prompt[:80] if prompt else f"Disco-Musica {comp.plan.style or 'piece'}"


def check_formats(formats: Sequence[str]) -> list[str]:
    out = []
    for f in formats:
        f = f.strip().lower().lstrip(".")
        f = {"midi": "mid", "xml": "musicxml", "mxl": "musicxml"}.get(f, f)
        if f not in ALL_FORMATS:
            raise ComposeError(f"unknown output format {f!r}; choose from {', '.join(ALL_FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ComposeError(f"no output format; choose from {', '.join(ALL_FORMATS)}")
    return out


def _record(comp, formats, soundfont, sf_bytes, effects, bit_depth, render_info) -> dict:
    from engine.audio.soundfonts import name_for, resolve, soundfont_sha256

    sf_path = resolve(soundfont)
    sf_sha256 = soundfont_sha256(soundfont) if sf_bytes else None
    return {
        "prompt": comp.request.get("prompt", ""),
        "parsed": comp.parsed,
        "request": {k: v for k, v in comp.request.items() if k != "prompt"},
        "plan": comp.plan.to_dict(),
        "seed": comp.plan.seed,
        "model": {"name": comp.model_name, "sha256": comp.model_sha256},
        "output": {
            "formats": list(formats),
            "bit_depth": bit_depth,
            "soundfont": {
                "name": name_for(sf_path, sf_sha256),
                "file": sf_path.name,  # by name and sha256, never by path: records travel
                "default": soundfont is None,
                "sha256": sf_sha256,
            },
            "effects": effects.to_dict(),
        },
        "render": render_info,
        "replay": f"disco-musica replay {GENERATION_FILE}",
    }

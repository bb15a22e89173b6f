"""Read a text prompt as musical attributes: a deterministic, rule-based parser (no ML).

``parse_prompt("a melancholy waltz for string quartet in D minor, slow, about 40 seconds")``
gives a `ParsedPrompt` whose ``attributes`` hold mood sadness, 3/4, violin 1, violin 2,
viola, cello, D minor, 60 BPM and 40 seconds (plus the register, dynamics, articulation and
density a sad piece gets by default), whose ``understood`` rows say which words gave which
attribute (the "what I understood" table) and whose ``ignored`` words each come with the
nearest known words as suggestions.

How it reads: the text is split into words (hyphens and punctuation separate words, so
"I-vi-IV-V" and "four-part" are read word by word). At each word the longest phrase that any
rule matches wins ("string quartet" over "strings", "mezzo piano" over "piano"); ties go to
the first rule in `_MATCHERS`. The rules are the tables below (they are the vocabulary;
`vocabulary()` lists them and ``docs/prompting.md`` is the user's copy) and a few patterns
for numbers, keys, chord progressions and section letters.

Precedence, when two things set the same attribute: numbers ("120 bpm", "3/4", "40
seconds") beat words ("slow", "waltz"), words beat a dance's defaults (a waltz's 144 BPM),
which beat a mood's defaults (sadness: minor, 60 BPM...). Between equals the first in the
prompt wins. Options given on the command line beat all of these (the caller applies them).

Tempos are quarter-note beats per minute, as in MIDI.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine import names
from engine.errors import UserError
from engine.names import MAX_BARS, MAX_TEMPO_BPM, MIN_TEMPO_BPM  # generate's own limits

MAX_PROMPT_CHARS = 2000

MAX_SECONDS = names.COMPOSE_MAX_SECONDS
MAX_COUNT = 16  # "sixteen violins" at most
MAX_PARTS = 16  # a sanity limit; the score model itself writes at most 8 parts
SUGGESTION_CUTOFF = 0.75
MAX_SUGGESTIONS = 3

STYLES = names.STYLES  # the model's styles


class PromptError(UserError, ValueError):
    """A prompt that cannot be read; the one-line message says what to change."""


# ---- public results ---------------------------------------------------------------------------
@dataclass
class Understood:
    """One row of the "what I understood" table."""

    phrase: str  # the words of the prompt, as typed ("string quartet", "120 bpm")
    attribute: str  # "instruments", "tempo_bpm", "mood", "meter", "key", "mode", ...
    value: str  # human-readable value ("violin, violin, viola, cello", "120", "3/4")


@dataclass
class Ignored:
    word: str
    suggestions: list[str]  # nearest known words, best first (at most 3)


@dataclass
class PromptAttributes:
    style: str | None = None  # one of STYLES
    moods: list[str] = field(default_factory=list)  # canonical mood names, in prompt order
    tempo_bpm: float | None = None
    key: str | None = None  # tonic as typed, normalised: "C", "F#", "Bb"
    mode: str | None = None  # "major" | "minor"
    meter: str | None = None  # "4/4", "3/4", "6/8"...
    instruments: list[tuple[str, int]] = field(default_factory=list)  # (part name, GM program)
    ensemble: str | None = None  # "string quartet" when an ensemble word was used
    bars: int | None = None
    seconds: float | None = None
    dynamics: str | None = None  # "pp" | "p" | "mp" | "mf" | "f" | "ff"
    dynamics_shape: str | None = None  # "crescendo" | "diminuendo"
    articulation: str | None = None  # "legato" | "staccato"
    density: float | None = None  # 0 very sparse .. 0.5 neutral .. 1 very dense
    register: str | None = None  # "low" | "middle" | "high"
    structure: list[str] | None = None  # ["A", "A", "B", "A"] or ["intro", "verse", ...]
    progression: list[str] | None = None  # chord symbols as given: ["I", "vi", "IV", "V"]
    syncopation: float | None = None  # 0 on the beat .. 1 off the beat
    creativity: float | None = None  # 0 conservative .. 1 experimental
    contour: str | None = None  # "rising" | "falling" | "arch"
    double_stops: bool = False  # a solo violin, viola, cello or double bass plays 2 notes at once


@dataclass
class ParsedPrompt:
    text: str
    attributes: PromptAttributes
    understood: list[Understood]
    ignored: list[Ignored]

    def table_rows(self) -> list[tuple[str, str, str]]:
        """(phrase, attribute, value) per understood row, in prompt order."""
        return [(u.phrase, u.attribute, u.value) for u in self.understood]


# ---- vocabulary tables ------------------------------------------------------------------------
STYLE_WORDS: dict[str, str] = {
    "chorale": "chorale",
    "chorales": "chorale",
    "hymn": "chorale",
    "hymns": "chorale",
    "bach": "chorale",
    "bach chorale": "chorale",
    "four part": "chorale",
    "four part harmony": "chorale",
    "renaissance": "renaissance",
    "palestrina": "renaissance",
    "josquin": "renaissance",
    "polyphony": "renaissance",
    "polyphonic": "renaissance",
    "sacred polyphony": "renaissance",
    "motet": "renaissance",
    "madrigal": "madrigal",
    "madrigals": "madrigal",
    "monteverdi": "madrigal",
    "medieval": "medieval",
    "mediaeval": "medieval",
    "gregorian": "medieval",
    "gregorian chant": "medieval",
    "chant": "medieval",
    "troubadour": "medieval",
    "trecento": "medieval",
    "ars nova": "medieval",
    "celtic": "celtic",
    "irish": "celtic",
    "scottish": "celtic",
    "irish folk": "celtic",
    "scottish folk": "celtic",
    "british folk": "celtic",
    "english folk": "celtic",
    "fiddle tune": "celtic",
    "folk": "folk",
    "folk song": "folk",
    "folksong": "folk",
    "folk tune": "folk",
    "german folk": "folk",
    "european folk": "folk",
    "classical": "classical",
    "mozart": "classical",
    "haydn": "classical",
    "beethoven": "classical",
    "schubert": "classical",
    "sonata": "classical",
    "sonatina": "classical",
    "baroque": "chorale",  # the corpus' baroque music is Bach's
    "symphonic": "classical",
    "orchestral": "classical",
}


@dataclass(frozen=True)
class MoodDefaults:
    """What a mood sets when no other word in the prompt sets it."""

    mode: str
    tempo_bpm: float
    register: str
    dynamics: str
    articulation: str
    density: float


MOOD_DEFAULTS: dict[str, MoodDefaults] = {
    "joy": MoodDefaults("major", 126, "high", "mf", "staccato", 0.6),
    "sadness": MoodDefaults("minor", 60, "low", "p", "legato", 0.35),
    "anger": MoodDefaults("minor", 152, "low", "ff", "staccato", 0.85),
    "tranquility": MoodDefaults("major", 64, "middle", "pp", "legato", 0.25),
    "tension": MoodDefaults("minor", 108, "low", "mf", "staccato", 0.7),
    "nostalgia": MoodDefaults("major", 80, "middle", "mp", "legato", 0.45),
    "triumph": MoodDefaults("major", 116, "high", "f", "staccato", 0.65),
    "mystery": MoodDefaults("minor", 72, "low", "pp", "legato", 0.3),
    "tenderness": MoodDefaults("major", 72, "middle", "p", "legato", 0.4),
    "playfulness": MoodDefaults("major", 132, "high", "mf", "staccato", 0.55),
}
MOOD_WORDS: dict[str, str] = {
    **dict.fromkeys(
        "joy joyful happy cheerful bright glad jolly upbeat sunny merry festive celebratory "
        "uplifting exuberant elated".split(),
        "joy",
    ),
    "con brio": "joy",
    **dict.fromkeys(
        "sad sadness melancholy melancholic sorrowful mournful gloomy somber sombre tragic "
        "grief grieving lament doleful plaintive heartbroken lamentoso".split(),
        "sadness",
    ),
    **dict.fromkeys(
        "angry anger furious aggressive fierce violent rage raging wrathful stormy furioso".split(),
        "anger",
    ),
    **dict.fromkeys(
        "calm peaceful serene tranquil tranquility tranquillity relaxing relaxed soothing "
        "meditative restful placid dreamy tranquillo".split(),
        "tranquility",
    ),
    **dict.fromkeys(
        "tense tension suspenseful suspense anxious dramatic urgent restless nervous "
        "agitated uneasy agitato".split(),
        "tension",
    ),
    **dict.fromkeys(
        "nostalgic nostalgia wistful longing yearning bittersweet sentimental".split(),
        "nostalgia",
    ),
    **dict.fromkeys(
        "triumphant triumph heroic victorious epic majestic glorious grand proud noble stately "
        "maestoso".split(),
        "triumph",
    ),
    **dict.fromkeys(
        "mysterious mystery eerie haunting haunted dark spooky enigmatic ghostly creepy "
        "uncanny mystical sinister ominous misterioso".split(),
        "mystery",
    ),
    **dict.fromkeys(
        "tender tenderness romantic loving love sweet warm affectionate intimate dolce".split(),
        "tenderness",
    ),
    **dict.fromkeys(
        "playful whimsical quirky cheeky humorous mischievous fun funny silly giocoso "
        "scherzando".split(),
        "playfulness",
    ),
    "light hearted": "playfulness",
}

TEMPO_WORDS: dict[str, float] = {
    "very slow": 46,
    "slow": 60,
    "slowly": 60,
    "leisurely": 72,
    "moderate": 96,
    "medium": 96,
    "steady": 96,
    "brisk": 126,
    "fast": 132,
    "quick": 132,
    "quickly": 132,
    "lively": 132,
    "rapid": 152,
    "very fast": 168,
    "very quick": 168,
}
ITALIAN_TEMPOS: dict[str, float] = {
    "grave": 40,
    "largo": 50,
    "lento": 52,
    "molto adagio": 56,
    "larghetto": 63,
    "adagio": 70,
    "adagietto": 74,
    "andante": 88,
    "andante moderato": 92,
    "andantino": 96,
    "moderato": 112,
    "allegretto": 116,
    "allegro moderato": 120,
    "allegro ma non troppo": 126,
    "allegro": 132,
    "allegro assai": 152,
    "molto allegro": 152,
    "allegro vivace": 152,
    "vivace": 160,
    "vivacissimo": 172,
    "presto": 184,
    "prestissimo": 208,
}


@dataclass(frozen=True)
class Dance:
    """A dance or form word: its meter, and defaults used when nothing else sets them."""

    meter: str
    tempo_bpm: float
    style: str | None = None
    mood: str | None = None  # added to the moods, as if the mood word had been typed


DANCES: dict[str, Dance] = {
    "waltz": Dance("3/4", 144),
    "minuet": Dance("3/4", 112),
    "mazurka": Dance("3/4", 132),
    "polonaise": Dance("3/4", 96),
    "sarabande": Dance("3/4", 60),
    "passacaglia": Dance("3/4", 60),
    "chaconne": Dance("3/4", 60),
    "bolero": Dance("3/4", 72),
    "march": Dance("2/4", 112),
    "polka": Dance("2/4", 120),
    "gavotte": Dance("4/4", 108),
    "hornpipe": Dance("4/4", 144, style="celtic"),
    "reel": Dance("4/4", 192, style="celtic"),
    "strathspey": Dance("4/4", 128, style="celtic"),
    "jig": Dance("6/8", 168, style="celtic"),
    "slip jig": Dance("9/8", 168, style="celtic"),
    "gigue": Dance("6/8", 160),
    "siciliana": Dance("6/8", 72),
    "siciliano": Dance("6/8", 72),
    "barcarolle": Dance("6/8", 80),
    "tarantella": Dance("6/8", 200),
    "lullaby": Dance("6/8", 66, mood="tranquility"),
    "berceuse": Dance("6/8", 66, mood="tranquility"),
}
METER_WORDS: dict[str, str] = {
    "common time": "4/4",
    "cut time": "2/2",
    "alla breve": "2/2",
    "duple time": "2/4",
    "duple meter": "2/4",
    "triple time": "3/4",
    "triple meter": "3/4",
    "compound time": "6/8",
    "compound duple": "6/8",
}
# "in 3" and the like: a count of beats -> a meter.
IN_BEATS_METERS = {2: "2/4", 3: "3/4", 4: "4/4", 5: "5/4", 6: "6/8", 9: "9/8", 12: "12/8"}

# Common instrument names -> (part name, General MIDI program 0..127). Full GM names (from
# pretty_midi) are understood too; where both exist the common name decides: "fiddle" is the
# violin (40), not GM 110, as violins are what the corpus and most sound fonts know best.
INSTRUMENTS: dict[str, tuple[str, int]] = {
    "piano": ("piano", 0),
    "grand piano": ("piano", 0),
    "acoustic piano": ("piano", 0),
    "upright piano": ("piano", 0),
    "keyboard": ("piano", 0),
    "electric piano": ("electric piano", 4),
    "rhodes": ("electric piano", 4),
    "harpsichord": ("harpsichord", 6),
    "clavinet": ("clavinet", 7),
    "celesta": ("celesta", 8),
    "celeste": ("celesta", 8),
    "glockenspiel": ("glockenspiel", 9),
    "music box": ("music box", 10),
    "vibraphone": ("vibraphone", 11),
    "vibes": ("vibraphone", 11),
    "marimba": ("marimba", 12),
    "xylophone": ("xylophone", 13),
    "tubular bells": ("tubular bells", 14),
    "chimes": ("tubular bells", 14),
    "dulcimer": ("dulcimer", 15),
    "organ": ("organ", 19),
    "church organ": ("organ", 19),
    "pipe organ": ("organ", 19),
    "hammond organ": ("hammond organ", 16),
    "harmonium": ("harmonium", 20),
    "accordion": ("accordion", 21),
    "harmonica": ("harmonica", 22),
    "bandoneon": ("bandoneon", 23),
    "guitar": ("guitar", 24),
    "classical guitar": ("guitar", 24),
    "nylon guitar": ("guitar", 24),
    "lute": ("lute", 24),
    "acoustic guitar": ("acoustic guitar", 25),
    "steel guitar": ("acoustic guitar", 25),
    "jazz guitar": ("jazz guitar", 26),
    "electric guitar": ("electric guitar", 27),
    "overdriven guitar": ("overdriven guitar", 29),
    "distorted guitar": ("distortion guitar", 30),
    "bass": ("bass", 32),
    "acoustic bass": ("bass", 32),
    "upright bass": ("bass", 32),
    "electric bass": ("electric bass", 33),
    "bass guitar": ("electric bass", 33),
    "fretless bass": ("fretless bass", 35),
    "synth bass": ("synth bass", 38),
    "violin": ("violin", 40),
    "fiddle": ("fiddle", 40),
    "viola": ("viola", 41),
    "cello": ("cello", 42),
    "violoncello": ("cello", 42),
    "viola da gamba": ("viola da gamba", 42),
    "double bass": ("double bass", 43),
    "contrabass": ("double bass", 43),
    "string bass": ("double bass", 43),
    "tremolo strings": ("tremolo strings", 44),
    "pizzicato strings": ("pizzicato strings", 45),
    "harp": ("harp", 46),
    "timpani": ("timpani", 47),
    "kettle drums": ("timpani", 47),
    "strings": ("strings", 48),
    "string ensemble": ("strings", 48),
    "string section": ("strings", 48),
    "voice": ("voice", 52),
    "soprano": ("soprano", 52),
    "alto": ("alto", 52),
    "tenor": ("tenor", 52),
    "baritone": ("baritone", 52),
    "bass voice": ("bass", 52),
    "trumpet": ("trumpet", 56),
    "trombone": ("trombone", 57),
    "sackbut": ("trombone", 57),
    "tuba": ("tuba", 58),
    "muted trumpet": ("muted trumpet", 59),
    "horn": ("french horn", 60),
    "french horn": ("french horn", 60),
    "brass": ("brass", 61),
    "brass section": ("brass", 61),
    "saxophone": ("saxophone", 65),
    "sax": ("saxophone", 65),
    "soprano sax": ("soprano sax", 64),
    "soprano saxophone": ("soprano sax", 64),
    "alto sax": ("alto sax", 65),
    "alto saxophone": ("alto sax", 65),
    "tenor sax": ("tenor sax", 66),
    "tenor saxophone": ("tenor sax", 66),
    "baritone sax": ("baritone sax", 67),
    "baritone saxophone": ("baritone sax", 67),
    "bari sax": ("baritone sax", 67),
    "oboe": ("oboe", 68),
    "english horn": ("english horn", 69),
    "cor anglais": ("english horn", 69),
    "bassoon": ("bassoon", 70),
    "clarinet": ("clarinet", 71),
    "piccolo": ("piccolo", 72),
    "flute": ("flute", 73),
    "recorder": ("recorder", 74),
    "pan flute": ("pan flute", 75),
    "panpipes": ("pan flute", 75),
    "shakuhachi": ("shakuhachi", 77),
    "whistle": ("whistle", 78),
    "tin whistle": ("tin whistle", 78),
    "ocarina": ("ocarina", 79),
    "sitar": ("sitar", 104),
    "banjo": ("banjo", 105),
    "shamisen": ("shamisen", 106),
    "koto": ("koto", 107),
    "kalimba": ("kalimba", 108),
    "bagpipe": ("bagpipe", 109),
    "bagpipes": ("bagpipe", 109),
    "shehnai": ("shehnai", 111),
    "steel drums": ("steel drums", 114),
}
# Irregular plurals; regular ones ("violins", "basses") are made by _plural.
INSTRUMENT_PLURALS = {"celli": "cello", "timpanis": "timpani"}
# Words the score model has no part for yet: ignored, with a note in docs/prompting.md.
UNSUPPORTED_WORDS = ("drums", "drum", "drumkit", "percussion")

_V, _VA, _VC = ("violin", 40), ("viola", 41), ("cello", 42)
_DB, _PN = ("double bass", 43), ("piano", 0)
_ORCHESTRA = (
    ("flute", 73),
    ("oboe", 68),
    ("clarinet", 71),
    ("french horn", 60),
    _V,
    _V,
    _VA,
    _VC,
)
_SATB = (("soprano", 52), ("alto", 52), ("tenor", 52), ("bass", 52))
ENSEMBLES: dict[str, tuple[tuple[str, int], ...]] = {
    "string quartet": (_V, _V, _VA, _VC),
    "string trio": (_V, _VA, _VC),
    "string quintet": (_V, _V, _VA, _VA, _VC),
    "string orchestra": (_V, _V, _VA, _VC, _DB),
    # An orchestra in eight parts (the model writes at most eight).
    "orchestra": _ORCHESTRA,
    "full orchestra": _ORCHESTRA,
    "symphony orchestra": _ORCHESTRA,
    "chamber orchestra": (("flute", 73), ("oboe", 68), _V, _V, _VA, _VC),
    "piano trio": (_PN, _V, _VC),
    "piano quartet": (_PN, _V, _VA, _VC),
    "piano quintet": (_PN, _V, _V, _VA, _VC),
    "clarinet quintet": (("clarinet", 71), _V, _V, _VA, _VC),
    "flute quartet": (("flute", 73), _V, _VA, _VC),
    "oboe quartet": (("oboe", 68), _V, _VA, _VC),
    "horn trio": (("french horn", 60), _V, _PN),
    "clarinet trio": (("clarinet", 71), _VC, _PN),
    "brass quintet": (("trumpet", 56), ("trumpet", 56), ("french horn", 60), ("trombone", 57))
    + (("tuba", 58),),
    "woodwind quintet": (("flute", 73), ("oboe", 68), ("clarinet", 71), ("french horn", 60))
    + (("bassoon", 70),),
    "wind quintet": (("flute", 73), ("oboe", 68), ("clarinet", 71), ("french horn", 60))
    + (("bassoon", 70),),
    "wind trio": (("oboe", 68), ("clarinet", 71), ("bassoon", 70)),
    "reed trio": (("oboe", 68), ("clarinet", 71), ("bassoon", 70)),
    "saxophone quartet": (("soprano sax", 64), ("alto sax", 65), ("tenor sax", 66))
    + (("baritone sax", 67),),
    "sax quartet": (("soprano sax", 64), ("alto sax", 65), ("tenor sax", 66))
    + (("baritone sax", 67),),
    "jazz trio": (_PN, ("bass", 32)),  # piano, bass and drums: drums are not supported yet
    "choir": _SATB,
    "satb": _SATB,
    "four part choir": _SATB,
    "mixed choir": _SATB,
    "a cappella": _SATB,
}
# "guitar duo", "flute trio": that many of one instrument (ENSEMBLES above take precedence).
GROUP_WORDS = {"duo": 2, "duet": 2, "trio": 3, "quartet": 4, "quintet": 5, "sextet": 6}

# Dynamics: "piano" is always the instrument; write "p" or "soft" for the dynamic.
DYNAMICS_WORDS: dict[str, str] = {
    "pianissimo": "pp",
    "pp": "pp",
    "p": "p",
    "soft": "p",
    "softly": "p",
    "quiet": "p",
    "quietly": "p",
    "gentle": "p",
    "gently": "p",
    "mezzo piano": "mp",
    "mp": "mp",
    "moderately soft": "mp",
    "mezzo": "mf",
    "mezzo forte": "mf",
    "mf": "mf",
    "moderately loud": "mf",
    "forte": "f",
    "f": "f",
    "loud": "f",
    "loudly": "f",
    "powerful": "f",
    "strong": "f",
    "fortissimo": "ff",
    "ff": "ff",
}
EXACT_WORDS = ("p", "f")  # only in lower case: "F" is the note, "p"/"f" the dynamics
SHAPE_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("crescendo", "cresc", "building", "growing", "swelling", "build up"), "crescendo"
    ),
    **dict.fromkeys(
        ("diminuendo", "decrescendo", "decresc", "dim", "fading", "fade out", "dying away"),
        "diminuendo",
    ),
}
ARTICULATION_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("legato", "smooth", "flowing", "sustained", "long notes", "slurred", "cantabile"),
        "legato",
    ),
    **dict.fromkeys(
        ("staccato", "detached", "short notes", "bouncy", "choppy", "pizzicato", "marcato"),
        "staccato",
    ),
}
DENSITY_WORDS: dict[str, float] = {
    "sparse": 0.2,
    "minimal": 0.2,
    "few notes": 0.2,
    "simple": 0.3,
    "busy": 0.8,
    "dense": 0.8,
    "intricate": 0.8,
    "ornate": 0.8,
    "many notes": 0.8,
    "virtuosic": 0.85,
}
REGISTER_WORDS: dict[str, str] = {
    **dict.fromkeys(("low", "deep", "bass heavy", "low register", "low pitched"), "low"),
    **dict.fromkeys(("middle register", "mid register", "middle", "mid range"), "middle"),
    **dict.fromkeys(("high", "airy", "soaring", "high register", "high pitched"), "high"),
}
SYNCOPATION_WORDS: dict[str, float] = {
    **dict.fromkeys(("syncopated", "syncopation", "swing", "swung", "offbeat", "off beat"), 0.7),
    **dict.fromkeys(("straight", "on the beat"), 0.1),
}
CREATIVITY_WORDS: dict[str, float] = {
    **dict.fromkeys(("conservative", "traditional", "predictable", "safe"), 0.2),
    **dict.fromkeys(("experimental", "adventurous", "wild", "unpredictable", "surprising"), 0.85),
}
CONTOUR_WORDS: dict[str, str] = {
    **dict.fromkeys(("rising", "ascending", "upward"), "rising"),
    **dict.fromkeys(("falling", "descending", "downward"), "falling"),
    **dict.fromkeys(("arch", "arching", "arch shaped"), "arch"),
}
# Double stops: a solo string part (violin, viola, cello, double bass) may sound two notes at
# once (engine.symbolic.texture); other instruments are unaffected. "with double stops" and
# "double-stops" read the same ("with" is a stop word, a hyphen separates words).
DOUBLE_STOP_WORDS = ("double stops", "double stop", "double stopping")
DOUBLE_STOPS_MEANING = "solo violin, viola, cello, double bass: up to 2 notes at once"
LENGTH_WORDS: dict[str, float] = {  # seconds
    "very short": 10,
    "short": 20,
    "long": 90,
    "very long": 180,
}
MODE_WORDS: dict[str, str] = {
    "major": "major",
    "maj": "major",
    "minor": "minor",
    "min": "minor",
    "ionian": "major",
    "lydian": "major",
    "mixolydian": "major",
    "dorian": "minor",
    "phrygian": "minor",
    "aeolian": "minor",
    "locrian": "minor",
}
FORM_WORDS: dict[str, tuple[str, ...]] = {
    "rondo": tuple("ABACA"),
    "binary": tuple("AB"),
    "binary form": tuple("AB"),
    "ternary": tuple("ABA"),
    "ternary form": tuple("ABA"),
    "strophic": tuple("AAA"),
    "song form": tuple("AABA"),
    "32 bar form": tuple("AABA"),
    "thirty two bar form": tuple("AABA"),
}
# Section words: a run of two or more is a structure ("intro verse chorus outro").
SECTION_WORDS = ("intro", "verse", "chorus", "pre-chorus", "bridge", "interlude", "coda")
SECTION_WORDS += ("outro", "refrain")
_BLUES = ("I", "I", "I", "I", "IV", "IV", "I", "I", "V", "IV", "I", "I")
NAMED_PROGRESSIONS: dict[str, tuple[str, ...]] = {
    "12 bar blues": _BLUES,
    "twelve bar blues": _BLUES,
    "doo wop": ("I", "vi", "IV", "V"),
    "pachelbel": ("I", "V", "vi", "iii", "IV", "I", "IV", "V"),
    "axis progression": ("I", "V", "vi", "IV"),
    "andalusian cadence": ("i", "bVII", "bVI", "V"),
    "circle of fifths": ("vi", "ii", "V", "I"),
}
# Neither understood nor ignored.
STOP_WORDS = frozenset(
    """
    a an the for with and in of on at to by from into some any this that these those it its is
    are be should would could can will me my i we us our you your please want like need make
    write compose create generate give play played playing using featuring piece pieces music
    song songs tune tunes melody melodies track composition arrangement arranged sound sounding
    style styled feel feeling mood vibe kind sort type something about around roughly approx
    approximately nearly maybe very really extremely super quite rather somewhat little bit lot
    lots too so but or then just mostly plus also more less not no without never non ish key
    tempo time meter metre signature length lasting duration bars bar measures measure
    seconds second minutes minute beat beats part parts section sections form structure
    progression chords chord harmony harmonies notes note solo duo duet trio quartet quintet
    ensemble accompaniment accompanied dance dances work one let i'm i'd
    """.split()
)
INTENSIFIERS = ("very", "really", "extremely", "super")
NEGATIONS = ("not", "no", "without", "never", "non")
_SOFTEN = ("too", "so", "overly", "very", "really", "extremely", "super", "that")

# Number words, units and keys.
_SMALL_NUMBERS = {
    w: n
    for n, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * n
    for n, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)
}
_SECONDS_UNITS = ("s", "sec", "secs", "second", "seconds")
_MINUTES_UNITS = ("min", "mins", "minute", "minutes")
_HOURS_UNITS = ("h", "hr", "hrs", "hour", "hours")
_BARS_UNITS = ("bar", "bars", "measure", "measures")
_LENGTH_UNITS = _SECONDS_UNITS + _MINUTES_UNITS + _HOURS_UNITS + _BARS_UNITS
_TEMPO_UNITS = ("bpm",)
_KEY_LETTER = re.compile(r"^([A-Ga-g])([#b]?)$")
_KEY_CHORD = re.compile(r"^([A-G])([#b]?)(m|min|maj)$")  # "in Am", only after "in"/"key of"
# Chord grammars: exactly what engine.symbolic.steer.parse_chord reads.
_CHORD = re.compile(r"^[A-G][#b]?(maj7|min7|maj|min|m7|dim|aug|sus2|sus4|m|7)?$")
_NUMERAL = re.compile(r"^[b#]?(VII|III|VI|IV|II|V|I|vii|iii|vi|iv|ii|v|i)(°|o|dim|\+|aug)?7?$")
_LETTER_FORM = re.compile(r"^[A-H]{2,12}$")
_DENOMINATORS = (1, 2, 4, 8, 16, 32)

# Precedence levels (higher wins; ties: first in the prompt).
_MOOD, _FORM, _WORD, _NUMBER = 0, 1, 2, 3


# ---- tokens -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tok:
    text: str  # as typed
    raw: str  # spelling normalised (♭ -> b, ♯ -> #), case kept
    norm: str  # raw in lower case, possessive 's dropped
    kind: str  # "word" | "num" | "time" | "ratio" | "sym"
    start: int
    end: int
    src: str = field(repr=False)  # the whole prompt


# One-character replacements only, so offsets in the normalised text are offsets in the text.
_TRANSLATE = str.maketrans({"♭": "b", "♯": "#", "’": "'", "‘": "'", "–": "-", "—": "-"})
_TOKEN_RE = re.compile(
    r"(?P<time>\d+:[0-5]\d)(?![\d:])"
    r"|(?P<ratio>\d+/\d+)"
    r"|(?P<num>(?:(?<!\S)-)?\d+(?:\.\d+)?)"
    r"|(?P<word>[^\W\d_][\w#°']*\+?)"
    r"|(?P<sym>[♩=])"
)


def _tokenize(text: str) -> list[_Tok]:
    norm_text = text.translate(_TRANSLATE)
    toks = []
    for m in _TOKEN_RE.finditer(norm_text):
        raw = m.group()
        low = raw.lower().strip("'")
        if low.endswith("'s"):
            low = low[:-2]
        start, end = m.span()
        toks.append(_Tok(text[start:end], raw, low, m.lastgroup or "", start, end, text))
    return toks


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(t.norm for t in _tokenize(phrase))


# ---- lexicon ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Effect:
    attr: str  # a PromptAttributes field, or "mood" (appends to moods)
    value: Any
    level: int = _WORD
    note: str = ""  # for defaults: what they are the default of ("sadness", "waltz")
    shown: str = ""  # the value as shown, when not the plain value ("minor (dorian)")


@dataclass(frozen=True)
class _Entry:
    kind: str  # the vocabulary category
    effects: tuple[_Effect, ...]
    exact: str = ""  # when set, the word must be typed exactly so ("p", not "P")


_LEXICON: dict[tuple[str, ...], _Entry] = {}
_WEAK: set[tuple[str, ...]] = set()  # GM names and plurals: understood, never suggested


def _add(phrase: str, entry: _Entry, *, weak: bool = False) -> None:
    """Add a phrase; `weak` ones (GM names, plurals) give way to any other meaning."""
    key = _key(phrase)
    if key in _LEXICON:
        if weak:
            return
        raise ValueError(f"prompt vocabulary: {phrase!r} has two meanings")
    _LEXICON[key] = entry
    if weak:
        _WEAK.add(key)


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "sh", "ch")):
        return word + "es"
    return word + "s"


def _gm_names() -> list[str]:
    from pretty_midi.constants import INSTRUMENT_MAP

    return list(INSTRUMENT_MAP)


def _dance_effects(word: str, d: Dance) -> tuple[_Effect, ...]:
    out = [_Effect("meter", d.meter), _Effect("tempo_bpm", float(d.tempo_bpm), _FORM, word)]
    if d.style:
        out.append(_Effect("style", d.style, _FORM, word))
    if d.mood:
        out.append(_Effect("mood", d.mood))
    return tuple(out)


def _build_lexicon() -> None:
    for w, s in STYLE_WORDS.items():
        _add(w, _Entry("style", (_Effect("style", s),)))
    for w, m in MOOD_WORDS.items():
        _add(w, _Entry("mood", (_Effect("mood", m),)))
    for w, bpm in TEMPO_WORDS.items():
        _add(w, _Entry("tempo", (_Effect("tempo_bpm", float(bpm)),)))
    for w, bpm in ITALIAN_TEMPOS.items():
        _add(w, _Entry("tempo", (_Effect("tempo_bpm", float(bpm)),)))
    for w, d in DANCES.items():
        _add(w, _Entry("meter and dance", _dance_effects(w, d)))
    for w, meter in METER_WORDS.items():
        _add(w, _Entry("meter and dance", (_Effect("meter", meter),)))
    for w, mode in MODE_WORDS.items():
        shown = "" if w in ("major", "minor") else f"{mode} ({w})"
        _add(w, _Entry("key and mode", (_Effect("mode", mode, shown=shown),)))
    for w, parts in ENSEMBLES.items():
        effects = (_Effect("ensemble", w), _Effect("instruments", parts))
        _add(w, _Entry("ensembles", effects))
    for w, part in INSTRUMENTS.items():
        _add(w, _Entry("instruments", (_Effect("instruments", (part,)),)))
    for w, d in DYNAMICS_WORDS.items():
        _add(w, _Entry("dynamics", (_Effect("dynamics", d),), exact=w if w in EXACT_WORDS else ""))
    for w, shape in SHAPE_WORDS.items():
        _add(w, _Entry("dynamics", (_Effect("dynamics_shape", shape),)))
    for w, a in ARTICULATION_WORDS.items():
        _add(w, _Entry("articulation", (_Effect("articulation", a),)))
    for w, v in DENSITY_WORDS.items():
        _add(w, _Entry("density", (_Effect("density", v),)))
    for w, r in REGISTER_WORDS.items():
        _add(w, _Entry("register", (_Effect("register", r),)))
    for w, v in SYNCOPATION_WORDS.items():
        _add(w, _Entry("syncopation", (_Effect("syncopation", v),)))
    for w, v in CREATIVITY_WORDS.items():
        _add(w, _Entry("creativity", (_Effect("creativity", v),)))
    for w, c in CONTOUR_WORDS.items():
        _add(w, _Entry("contour", (_Effect("contour", c),)))
    for w in DOUBLE_STOP_WORDS:
        effect = _Effect("double_stops", True, shown=f"on ({DOUBLE_STOPS_MEANING})")
        _add(w, _Entry("double stops", (effect,)))
    for w, sec in LENGTH_WORDS.items():
        _add(w, _Entry("length", (_Effect("seconds", float(sec)),)))
    for w, form in FORM_WORDS.items():
        _add(w, _Entry("structure", (_Effect("structure", form),)))
    for w, prog in NAMED_PROGRESSIONS.items():
        _add(w, _Entry("harmony", (_Effect("progression", prog),)))
    # Weak meanings: full General MIDI names, and plurals of instruments and GM names.
    for program, name in enumerate(_gm_names()):
        part = (re.sub(r"\s+", " ", name.lower()).strip(), program)
        _add(name, _Entry("general midi", (_Effect("instruments", (part,)),)), weak=True)
    for key, entry in list(_LEXICON.items()):
        if entry.kind in ("instruments", "general midi", "ensembles") and key[-1].isalpha():
            _add(" ".join(key[:-1] + (_plural(key[-1]),)), entry, weak=True)
    for plural, singular in INSTRUMENT_PLURALS.items():
        _add(plural, _LEXICON[_key(singular)], weak=True)


_build_lexicon()
_MAX_PHRASE = max(len(k) for k in _LEXICON)
_INSTRUMENT_KINDS = ("instruments", "general midi")
_COUNTABLE_KINDS = _INSTRUMENT_KINDS + ("ensembles",)
_KNOWN_WORDS = sorted(
    {w for key in _LEXICON if key not in _WEAK for w in key if w.isalpha() and len(w) > 2}
    | {w for w in SECTION_WORDS if w.isalpha()}
    | {w for w in _LENGTH_UNITS + _TEMPO_UNITS if len(w) > 2}
    | {"sharp", "flat", "tempo", "key", "pre"}
    | set(_SMALL_NUMBERS)
    | set(_TENS)
)


# ---- matching ---------------------------------------------------------------------------------
@dataclass
class _Match:
    n: int  # tokens consumed
    effects: tuple[_Effect, ...] = ()
    ignore: bool = False  # understood but deliberately not used ("not fast")
    error: str = ""  # raised if this match is chosen


def _norm(toks: list[_Tok], i: int) -> str:
    return toks[i].norm if i < len(toks) else ""


def _number_at(toks: list[_Tok], i: int, article: bool = False) -> tuple[float, int] | None:
    """A number written in digits or words ("24", "twenty four", "a" when `article`)."""
    if i >= len(toks):
        return None
    t = toks[i]
    if t.kind == "num":
        return float(t.norm), 1
    if t.norm in _SMALL_NUMBERS:
        return float(_SMALL_NUMBERS[t.norm]), 1
    if t.norm in _TENS:
        unit = _SMALL_NUMBERS.get(_norm(toks, i + 1), 0)
        if 1 <= unit <= 9:
            return float(_TENS[t.norm] + unit), 2
        return float(_TENS[t.norm]), 1
    if article and t.norm in ("a", "an", "one"):
        return 1.0, 1
    return None


def _half_at(toks: list[_Tok], i: int) -> int:
    """Tokens in "and a half" at i (0 if absent)."""
    if [_norm(toks, i + k) for k in range(3)] == ["and", "a", "half"]:
        return 3
    return 0


def _lexicon_at(toks: list[_Tok], i: int, kinds: tuple[str, ...] = ()) -> tuple[_Entry | None, int]:
    for n in range(min(_MAX_PHRASE, len(toks) - i), 0, -1):
        entry = _LEXICON.get(tuple(t.norm for t in toks[i : i + n]))
        if entry is None or (kinds and entry.kind not in kinds):
            continue
        if entry.exact and toks[i].raw != entry.exact:
            continue
        return entry, n
    return None, 0


def _match_tempo(toks: list[_Tok], i: int) -> _Match | None:
    j, prefix = i, False
    first = _norm(toks, j)
    if first in ("♩", "q", "quarter") and _norm(toks, j + 1) == "=":
        j, prefix = j + 2, True
    elif first == "quarter" and _norm(toks, j + 1) == "note" and _norm(toks, j + 2) == "=":
        j, prefix = j + 3, True
    elif first in ("tempo", "bpm", "at"):
        j, prefix = j + 1, first != "at"
        if _norm(toks, j) in ("of", "=", "is"):
            j += 1
    num = _number_at(toks, j)
    if num is None:
        return None
    bpm, k = num
    j += k
    suffix = 0
    if _norm(toks, j) == "bpm":
        suffix = 1
    elif [_norm(toks, j + n) for n in range(3)] in (
        ["beats", "per", "minute"],
        ["beats", "a", "minute"],
    ):
        suffix = 3
    if not suffix and first == "at":  # "at 96", but not "at 2 minutes" or "at one point"
        if toks[j - 1].kind != "num" or _norm(toks, j) in _LENGTH_UNITS:
            return None
        if _lexicon_at(toks, j, _INSTRUMENT_KINDS)[0] is not None:
            return None
        prefix = True
    if not (prefix or suffix):
        return None
    m = _Match(j + suffix - i, (_Effect("tempo_bpm", bpm, _NUMBER),))
    if not MIN_TEMPO_BPM <= bpm <= MAX_TEMPO_BPM:
        m.error = (
            f"tempo {bpm:g} BPM is out of range: use {MIN_TEMPO_BPM:g} to {MAX_TEMPO_BPM:g} BPM"
        )
    return m


def _length_error(phrase: str, seconds: float | None, bars: float | None) -> str:
    if seconds is not None:
        if seconds <= 0:
            return f"length {phrase!r} is too short: ask for more than 0 seconds"
        if seconds > MAX_SECONDS:
            return (
                f"length {phrase!r} is {seconds:g} seconds; the limit is "
                f"{MAX_SECONDS / 60:g} minutes ({MAX_SECONDS:g} seconds)"
            )
        return ""
    assert bars is not None
    if bars <= 0 or bars != int(bars):
        return f"length {phrase!r}: ask for a whole number of bars from 1 to {MAX_BARS}"
    if bars > MAX_BARS:
        return f"length {phrase!r} is {bars:g} bars; the limit is {MAX_BARS} bars"
    return ""


def _match_length(toks: list[_Tok], i: int) -> _Match | None:
    j = i
    if toks[i].kind == "time":  # "1:30"
        minutes, secs = toks[i].norm.split(":")
        seconds: float | None = 60 * float(minutes) + float(secs)
        j += 1
        if _norm(toks, j) in _MINUTES_UNITS:
            j += 1
        bars = None
    else:
        scale, article = 1.0, False
        if _norm(toks, j) == "half" and _norm(toks, j + 1) in ("a", "an"):  # "half a minute"
            value, j = 0.5, j + 2
        else:
            num = _number_at(toks, j, article=True)
            if num is None:
                return None
            article = toks[j].norm in ("a", "an")
            value, j = num[0], j + num[1]
            half = _half_at(toks, j)
            value, j = value + (0.5 if half else 0), j + half
        unit = _norm(toks, j)
        if unit not in _LENGTH_UNITS:
            return None
        if article and unit not in _MINUTES_UNITS + _HOURS_UNITS:  # "a second violin"
            return None
        j += 1
        if _half_at(toks, j):  # "a minute and a half"
            value, j = value + 0.5, j + 3
        if unit in _BARS_UNITS:
            seconds, bars = None, value
        else:
            scale = 60.0 if unit in _MINUTES_UNITS else 3600.0 if unit in _HOURS_UNITS else 1.0
            seconds, bars = value * scale, None
            if unit not in _SECONDS_UNITS:  # "1 minute 30 seconds"
                k = j + (_norm(toks, j) == "and")
                more = _number_at(toks, k)
                if more and _norm(toks, k + more[1]) in _SECONDS_UNITS:
                    seconds += more[0]
                    j = k + more[1] + 1
    if _norm(toks, j) == "long":
        j += 1
    phrase = _span(toks, i, j)
    if seconds is not None:
        m = _Match(j - i, (_Effect("seconds", seconds, _NUMBER),))
    else:
        m = _Match(j - i, (_Effect("bars", int(bars) if bars == int(bars) else bars, _NUMBER),))
    m.error = _length_error(phrase, seconds, bars)
    return m


def _span(toks: list[_Tok], i: int, j: int) -> str:
    """The prompt's own text of tokens i..j-1, as typed (with the ")" of "Pad 2 (warm)")."""
    src, end = toks[i].src, toks[j - 1].end
    text = src[toks[i].start : end]
    if text.count("(") > text.count(")") and src[end : end + 1] == ")":
        text += ")"
    return text


def _match_count(toks: list[_Tok], i: int) -> _Match | None:
    num = _number_at(toks, i)
    if num is None:
        return None
    count, k = num
    entry, n = _lexicon_at(toks, i + k, _COUNTABLE_KINDS)
    if entry is None:
        return None
    times = max(int(count), 0)
    effects = tuple(
        replace(e, value=tuple(e.value) * times) if e.attr == "instruments" else e
        for e in entry.effects
    )
    m = _Match(k + n, effects)
    if count != int(count) or not 1 <= count <= MAX_COUNT:
        m.error = f"{_span(toks, i, i + k + n)!r}: ask for 1 to {MAX_COUNT} of an instrument"
    return m


def _match_group(toks: list[_Tok], i: int) -> _Match | None:
    """ "guitar duo" -> two guitars; not after "and" ("violin and piano duo" is two parts)."""
    if i > 0 and toks[i - 1].norm == "and":
        return None
    entry, n = _lexicon_at(toks, i, ("instruments",))
    if entry is None or _norm(toks, i + n) not in GROUP_WORDS:
        return None
    count = GROUP_WORDS[_norm(toks, i + n)]
    return _Match(n + 1, (_Effect("instruments", tuple(entry.effects[0].value) * count),))


def _match_meter(toks: list[_Tok], i: int) -> _Match | None:
    t = toks[i]
    if t.kind == "ratio":
        num, den = (int(x) for x in t.norm.split("/"))
        if 1 <= num <= 32 and den in _DENOMINATORS:
            return _Match(1, (_Effect("meter", f"{num}/{den}", _NUMBER),))
        return None
    if t.norm != "in":
        return None
    num = _number_at(toks, i + 1)
    if num is None or num[0] not in IN_BEATS_METERS:
        return None
    after = i + 1 + num[1]
    following = _norm(toks, after)
    if following in _LENGTH_UNITS + _TEMPO_UNITS + ("parts", "part", "voices", "sections"):
        return None
    if _lexicon_at(toks, after, _INSTRUMENT_KINDS)[0] is not None:
        return None
    return _Match(after - i, (_Effect("meter", IN_BEATS_METERS[int(num[0])], _NUMBER),))


def _match_key(toks: list[_Tok], i: int) -> _Match | None:
    """ "in D minor", "F# major", "B flat", "Bb", "key of G", "in Am", "D dorian"."""
    j, prefix = i, False
    if _norm(toks, j) == "in":
        j, prefix = j + 1, True
        if _norm(toks, j) == "the" and _norm(toks, j + 1) == "key":
            j += 1
    if _norm(toks, j) == "key":
        j, prefix = j + 1, True
        if _norm(toks, j) == "of":
            j += 1
    if j >= len(toks):
        return None
    raw = toks[j].raw
    m = _KEY_LETTER.match(raw)
    chord_mode = None
    if m is None and prefix:
        m = _KEY_CHORD.match(raw)
        if m:
            chord_mode = "major" if m.group(3) == "maj" else "minor"
    if m is None:
        return None
    letter, acc = m.group(1).upper(), m.group(2)
    article = raw == "a"  # "a sad waltz": the article, unless a mode follows
    j += 1
    if not acc and _norm(toks, j) in ("sharp", "flat"):
        acc = "#" if _norm(toks, j) == "sharp" else "b"
        j += 1
    mode_word = ""
    if chord_mode is None and _norm(toks, j) in MODE_WORDS:
        mode_word = _norm(toks, j)
        j += 1
    if not (mode_word or chord_mode):
        if article or not (prefix or acc):
            return None
    effects = [_Effect("key", letter + acc)]
    if chord_mode:
        effects.append(_Effect("mode", chord_mode))
    elif mode_word:
        mode = MODE_WORDS[mode_word]
        shown = "" if mode_word in ("major", "minor") else f"{mode} ({mode_word})"
        effects.append(_Effect("mode", mode, shown=shown))
    return _Match(j - i, tuple(effects))


def _canonical_form(letters: list[str]) -> bool:
    """AABA, ABAC: letters introduced in order A, B, C... (so "FADE" or "ACE" are not forms)."""
    seen: list[str] = []
    for ch in letters:
        if ch not in seen:
            if ch != "ABCDEFGH"[len(seen)]:
                return False
            seen.append(ch)
    return True


def _match_structure(toks: list[_Tok], i: int) -> _Match | None:
    raw = toks[i].raw
    if _LETTER_FORM.match(raw) and not _CHORD.match(raw) and _canonical_form(list(raw)):
        return _Match(1, (_Effect("structure", tuple(raw)),))
    j = i  # spaced or hyphenated: "A A B A", "A-B-A"
    while j < len(toks) and j - i < 12 and re.fullmatch(r"[A-H]", toks[j].raw):
        j += 1
    letters = [t.raw for t in toks[i:j]]
    if j - i >= 2 and _canonical_form(letters):
        return _Match(j - i, (_Effect("structure", tuple(letters)),))
    return None


def _match_progression(toks: list[_Tok], i: int) -> _Match | None:
    for pattern in (_NUMERAL, _CHORD):
        j = i
        while j < len(toks) and toks[j].kind == "word" and pattern.match(toks[j].raw):
            j += 1
        if j - i >= 2:
            return _Match(j - i, (_Effect("progression", tuple(t.raw for t in toks[i:j])),))
    return None


def _match_sections(toks: list[_Tok], i: int) -> _Match | None:
    labels, j, end = [], i, i
    while j < len(toks):
        w = toks[j].norm
        if w == "pre" and _norm(toks, j + 1) == "chorus":
            labels.append("pre-chorus")
            j += 2
        elif w in SECTION_WORDS:
            labels.append(w)
            j += 1
        elif w == "then" and labels:
            j += 1
            continue
        else:
            break
        end = j
    if len(labels) < 2:
        return None
    return _Match(end - i, (_Effect("structure", tuple(labels)),))


def _match_lexicon(toks: list[_Tok], i: int) -> _Match | None:
    entry, n = _lexicon_at(toks, i)
    return _Match(n, entry.effects) if entry else None


def _intensified(entry: _Entry) -> tuple[_Effect, ...]:
    """The effects of "very" + a word: further from neutral (the tables' "very slow" agree)."""
    stronger = {"pp": "pp", "p": "pp", "mp": "p", "mf": "f", "f": "ff", "ff": "ff"}
    out = []
    for e in entry.effects:
        v = e.value
        if e.attr == "dynamics":
            v = stronger[v]
        elif e.attr in ("density", "syncopation", "creativity"):
            v = round(v / 2, 3) if v < 0.5 else round((1 + v) / 2, 3)
        elif e.attr == "tempo_bpm" and v != 96:
            v = float(round(v * 0.77 if v < 96 else v * 1.27))
        elif e.attr == "seconds":
            v = v / 2 if v < 60 else v * 2
        out.append(replace(e, value=v))
    return tuple(out)


def _match_intensified(toks: list[_Tok], i: int) -> _Match | None:
    if toks[i].norm not in INTENSIFIERS:
        return None
    entry, n = _lexicon_at(toks, i + 1)
    return _Match(1 + n, _intensified(entry)) if entry else None


def _match_negation(toks: list[_Tok], i: int) -> _Match | None:
    """ "not fast", "without piano": not understood as the opposite, so left out whole."""
    if toks[i].norm not in NEGATIONS:
        return None
    j = i + 1
    while _norm(toks, j) in _SOFTEN:
        j += 1
    best = 0
    for matcher in (_match_count, _match_key, _match_lexicon):
        m = matcher(toks, j) if j < len(toks) else None
        best = max(best, m.n if m else 0)
    return _Match(j - i + best, ignore=True) if best else None


# Tried at every word; the longest match wins, ties go to the first here.
_MATCHERS: tuple[Callable[[list[_Tok], int], _Match | None], ...] = (
    _match_tempo,
    _match_length,
    _match_count,
    _match_meter,
    _match_key,
    _match_structure,
    _match_progression,
    _match_sections,
    _match_lexicon,
    _match_group,
    _match_intensified,
    _match_negation,
)


# ---- parsing ----------------------------------------------------------------------------------
@dataclass
class _Hit:
    phrase: str
    effects: list[_Effect]


_LIST_ATTRS = ("mood", "instruments")


def _fmt(attr: str, value: Any) -> str:
    if attr == "instruments":
        return ", ".join(name for name, _ in value)
    if attr == "structure":
        return ("" if all(len(s) == 1 for s in value) else " ").join(value)
    if attr == "progression":
        return "-".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@functools.lru_cache(maxsize=1024)
def _suggestions(word: str) -> tuple[str, ...]:
    near = difflib.get_close_matches(
        word, _KNOWN_WORDS, n=MAX_SUGGESTIONS + 1, cutoff=SUGGESTION_CUTOFF
    )
    return tuple(w for w in near if w != word)[:MAX_SUGGESTIONS]


def _part_names(parts: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Number repeated names in order: violin, violin, viola -> violin 1, violin 2, viola."""
    total, seen = Counter(name for name, _ in parts), Counter()
    out = []
    for name, program in parts:
        if total[name] > 1:
            seen[name] += 1
            out.append((f"{name} {seen[name]}", program))
        else:
            out.append((name, program))
    return out


def parse_prompt(text: str) -> ParsedPrompt:
    """Read a prompt as `PromptAttributes`, with the rows understood and the words ignored.

    An empty or blank prompt gives empty attributes (unconditional generation). Raises
    `PromptError` for a prompt over `MAX_PROMPT_CHARS` or an impossible value (a tempo outside
    20..400 BPM, a length of 0 or over 10 minutes or 256 bars, 0 or over 16 of an instrument).
    """
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(
            f"prompt is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}: shorten it"
        )
    toks = _tokenize(text)
    hits: list[_Hit] = []
    ignored: list[Ignored] = []
    i = 0
    while i < len(toks):
        best: _Match | None = None
        for matcher in _MATCHERS:
            m = matcher(toks, i)
            if m and m.n > 0 and (best is None or m.n > best.n):
                best = m
        t = toks[i]
        if best is None:
            if t.kind == "word" and t.norm in STOP_WORDS or t.kind == "sym":
                pass
            elif t.norm in UNSUPPORTED_WORDS:
                ignored.append(Ignored(t.text, []))
            else:
                word = t.text
                sugg = list(_suggestions(t.norm)) if t.kind == "word" else []
                ignored.append(Ignored(word, sugg))
            i += 1
            continue
        if best.error:
            raise PromptError(best.error)
        phrase = _span(toks, i, i + best.n)
        if best.ignore:
            ignored.append(Ignored(phrase, []))
        else:
            hits.append(_Hit(phrase, list(best.effects)))
        i += best.n
    return _resolve(text, hits, ignored)


def _resolve(text: str, hits: list[_Hit], ignored: list[Ignored]) -> ParsedPrompt:
    # Each mood's defaults join the hit that first named the mood.
    moods: list[str] = []
    for hit in hits:
        for e in list(hit.effects):
            if e.attr == "mood" and e.value not in moods:
                moods.append(e.value)
                d = MOOD_DEFAULTS[e.value]
                for attr in ("mode", "tempo_bpm", "register", "dynamics", "articulation"):
                    value = getattr(d, attr)
                    value = float(value) if attr == "tempo_bpm" else value
                    hit.effects.append(_Effect(attr, value, _MOOD, e.value))
                hit.effects.append(_Effect("density", float(d.density), _MOOD, e.value))

    # The winner of each attribute: highest level, then first in the prompt.
    winners: dict[str, tuple[int, int, int]] = {}  # attr -> (level, -hit, -effect)
    for h, hit in enumerate(hits):
        for k, e in enumerate(hit.effects):
            if e.attr in _LIST_ATTRS:
                continue
            rank = (e.level, -h, -k)
            if e.attr not in winners or rank > winners[e.attr]:
                winners[e.attr] = rank

    attrs = PromptAttributes(moods=moods)
    parts: list[tuple[str, int]] = []
    understood: list[Understood] = []
    for h, hit in enumerate(hits):
        for k, e in enumerate(hit.effects):
            shown = e.shown or _fmt(e.attr, e.value)
            if e.attr == "mood":
                understood.append(Understood(hit.phrase, "mood", shown))
                continue
            if e.attr == "instruments":
                parts.extend(e.value)
                understood.append(Understood(hit.phrase, "instruments", shown))
                continue
            level, wh, wk = winners[e.attr]
            if (-wh, -wk) == (h, k):
                value = list(e.value) if e.attr in ("structure", "progression") else e.value
                setattr(attrs, e.attr, value)
                if e.level < _WORD:
                    shown = f"{shown} (default for {e.note})"
                understood.append(Understood(hit.phrase, e.attr, shown))
            elif e.level >= _WORD:
                winner = hits[-wh].effects[-wk]
                if winner.value != e.value:
                    shown = f"{shown} (overridden by {hits[-wh].phrase})"
                understood.append(Understood(hit.phrase, e.attr, shown))
    if len(parts) > MAX_PARTS:
        raise PromptError(f"the prompt asks for {len(parts)} parts; the limit is {MAX_PARTS}")
    attrs.instruments = _part_names(parts)
    return ParsedPrompt(text, attrs, understood, ignored)


# ---- help -------------------------------------------------------------------------------------
def _mood_summary(mood: str) -> str:
    d = MOOD_DEFAULTS[mood]
    return (
        f"{mood}: {d.mode}, {d.tempo_bpm:g} BPM, {d.register} register, {d.dynamics}, "
        f"{d.articulation}, density {d.density:g}"
    )


def _gm_meaning(name: str, program: int) -> str:
    entry = _LEXICON[_key(name)]
    part, typed = entry.effects[0].value[0]
    if typed == program:
        return f"General MIDI program {program}"
    return f"General MIDI program {program}; typed alone it means {part} ({typed})"


def _parts_text(parts: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{name} ({program})" for name, program in parts)


def vocabulary() -> dict[str, list[tuple[str, str]]]:
    """Category -> [(word or phrase, what it means)], for the `disco-musica prompt` help.

    Every entry, typed alone as a prompt, is understood.
    """
    dance = {
        w: f"{d.meter}, {d.tempo_bpm:g} BPM"
        + (f", {d.style} style" if d.style else "")
        + (f", {d.mood} mood" if d.mood else "")
        for w, d in DANCES.items()
    }
    gm = _gm_names()
    return {
        "style": [(w, f"style {s}") for w, s in STYLE_WORDS.items()],
        "mood": [(w, _mood_summary(m)) for w, m in MOOD_WORDS.items()],
        "tempo": [
            ("120 bpm", "120 BPM (quarter notes a minute)"),
            ("bpm 120", "120 BPM"),
            ("tempo 80", "80 BPM"),
            ("at 96", "96 BPM"),
            ("♩=100", "100 BPM"),
            ("q=100", "100 BPM"),
        ]
        + [(w, f"{bpm:g} BPM") for w, bpm in TEMPO_WORDS.items()]
        + [(w, f"{bpm:g} BPM (Italian marking)") for w, bpm in ITALIAN_TEMPOS.items()],
        "key and mode": [
            ("D minor", "key D, minor"),
            ("in D minor", "key D, minor"),
            ("F# major", "key F#, major"),
            ("B flat major", "key Bb, major"),
            ("E-flat minor", "key Eb, minor"),
            ("Bb", "key Bb"),
            ("in A", "key A (a lone letter is a key only after 'in' or 'key of')"),
            ("key of G", "key G"),
            ("in Am", "key A, minor"),
            ("D dorian", "key D, minor (dorian)"),
        ]
        + [(w, f"mode {m}") for w, m in MODE_WORDS.items()],
        "meter and dance": [
            ("3/4", "meter 3/4 (any n/2, n/4, n/8...)"),
            ("6/8", "meter 6/8"),
        ]
        + [(f"in {n}", f"meter {m}") for n, m in IN_BEATS_METERS.items()]
        + [(w, f"meter {m}") for w, m in METER_WORDS.items()]
        + list(dance.items()),
        "instruments": [
            (w, f"{name}, General MIDI program {program}")
            for w, (name, program) in INSTRUMENTS.items()
        ]
        + [
            ("two violins", "2 violin parts (a number before any instrument)"),
            ("violins", "1 violin part (a plural alone is one part)"),
            ("guitar duo", "2 guitars (duo 2, trio 3, quartet 4, quintet 5, sextet 6)"),
        ],
        "general midi": [(name, _gm_meaning(name, p)) for p, name in enumerate(gm)],
        "ensembles": [(w, _parts_text(parts)) for w, parts in ENSEMBLES.items()],
        "length": [
            ("30 seconds", "30 s"),
            ("30 s", "30 s"),
            ("30s", "30 s"),
            ("90 sec", "90 s"),
            ("1 minute", "60 s"),
            ("2 minutes", "120 s"),
            ("1:30", "90 s"),
            ("half a minute", "30 s"),
            ("a minute and a half", "90 s"),
            ("16 bars", "16 bars"),
            ("8 measures", "8 bars"),
        ]
        + [(w, f"{s:g} s") for w, s in LENGTH_WORDS.items()],
        "dynamics": [(w, f"dynamics {d}") for w, d in DYNAMICS_WORDS.items()]
        + [(w, s) for w, s in SHAPE_WORDS.items()],
        "articulation": list(ARTICULATION_WORDS.items()),
        "density": [(w, f"density {v:g} (0 sparse .. 1 dense)") for w, v in DENSITY_WORDS.items()],
        "register": [(w, f"{r} register") for w, r in REGISTER_WORDS.items()],
        "structure": [
            ("AABA", "sections A A B A (2 to 12 letters A..H, first A)"),
            ("ABA", "sections A B A"),
            ("AB", "sections A B"),
            ("ABAC", "sections A B A C"),
            ("verse chorus", "sections verse, chorus"),
            ("intro verse chorus verse chorus outro", "those sections, in order"),
        ]
        + [(w, "sections " + " ".join(f)) for w, f in FORM_WORDS.items()],
        "harmony": [
            ("I-vi-IV-V", "chords I vi IV V (Roman numerals, 2 or more)"),
            ("ii-V-I", "chords ii V I"),
            ("i iv V i", "chords i iv V i"),
            ("I IV V7 I", "chords I IV V7 I"),
            ("Am F C G", "chords Am F C G (chord symbols, 2 or more)"),
            ("C-G-Am-F", "chords C G Am F"),
            ("Dm7 G7 Cmaj7", "chords Dm7 G7 Cmaj7"),
        ]
        + [(w, "chords " + " ".join(p)) for w, p in NAMED_PROGRESSIONS.items()],
        "syncopation": [(w, f"syncopation {v:g}") for w, v in SYNCOPATION_WORDS.items()],
        "creativity": [(w, f"creativity {v:g}") for w, v in CREATIVITY_WORDS.items()],
        "contour": [(w, f"melody {c}") for w, c in CONTOUR_WORDS.items()],
        "double stops": [(w, DOUBLE_STOPS_MEANING) for w in DOUBLE_STOP_WORDS],
    }


def examples() -> list[str]:
    """Example prompts; every word of each is understood."""
    return [
        "a melancholy waltz for string quartet in D minor, slow, about 40 seconds",
        "fast triumphant march for brass quintet, loud, crescendo, AABA, I-vi-IV-V",
        "a peaceful Bach chorale for four-part choir in G major, 16 bars",
        "a lively Irish jig in D for fiddle and tin whistle, 32 bars",
        "a mysterious renaissance motet in E dorian for four voices, legato, very slow",
        "a cheerful folk song for flute and guitar, allegretto, 3/4, simple",
        "a nostalgic classical minuet for piano trio in Bb major, gentle, legato",
        "a tense, syncopated piece for two violins and a cello at 132 bpm, staccato, very busy",
        "a calm lullaby for harp and celesta in F major, very soft, sparse, high register",
        "an experimental madrigal for five voices, Am F C G, diminuendo, 1:30",
        "a heroic Scottish reel for bagpipes, very fast, ff, rising",
        "a wistful medieval dance for recorder and lute in A minor, andante, ABA, 24 bars",
    ]

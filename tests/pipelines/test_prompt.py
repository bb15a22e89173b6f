"""Prompt parser: every category of words, precedence, false friends, limits and the help."""

from __future__ import annotations

import pytest

from engine.pipelines.prompt import (
    DANCES,
    ITALIAN_TEMPOS,
    MAX_PROMPT_CHARS,
    MOOD_DEFAULTS,
    Ignored,
    ParsedPrompt,
    PromptAttributes,
    PromptError,
    Understood,
    examples,
    parse_prompt,
    vocabulary,
)


def attrs(text: str) -> PromptAttributes:
    parsed = parse_prompt(text)
    assert parsed.ignored == [], parsed.ignored
    return parsed.attributes


# ---- whole prompts ----------------------------------------------------------------------------
def test_readme_waltz_prompt():
    p = parse_prompt("a melancholy waltz for string quartet in D minor, slow, about 40 seconds")
    a = p.attributes
    assert p.ignored == []
    assert a.moods == ["sadness"]
    assert (a.key, a.mode, a.meter) == ("D", "minor", "3/4")
    assert a.tempo_bpm == 60.0  # "slow" beats the waltz's and the mood's tempo
    assert a.seconds == 40.0 and a.bars is None
    assert a.ensemble == "string quartet"
    assert a.instruments == [("violin 1", 40), ("violin 2", 40), ("viola", 41), ("cello", 42)]
    # Mood defaults fill what no word set.
    assert (a.register, a.dynamics, a.articulation, a.density) == ("low", "p", "legato", 0.35)
    assert ("string quartet", "instruments", "violin, violin, viola, cello") in p.table_rows()
    assert ("in D minor", "key", "D") in p.table_rows()
    assert ("melancholy", "mood", "sadness") in p.table_rows()


def test_readme_march_prompt():
    a = attrs("fast triumphant march for brass quintet, loud, crescendo, AABA, I-vi-IV-V")
    assert a.tempo_bpm == 132.0
    assert a.moods == ["triumph"]
    assert (a.meter, a.mode, a.dynamics, a.dynamics_shape) == ("2/4", "major", "f", "crescendo")
    assert a.instruments == [
        ("trumpet 1", 56),
        ("trumpet 2", 56),
        ("french horn", 60),
        ("trombone", 57),
        ("tuba", 58),
    ]
    assert a.structure == ["A", "A", "B", "A"]
    assert a.progression == ["I", "vi", "IV", "V"]


def test_result_types_and_table_rows():
    p = parse_prompt("120 bpm")
    assert isinstance(p, ParsedPrompt) and p.text == "120 bpm"
    assert p.understood == [Understood("120 bpm", "tempo_bpm", "120")]
    assert p.table_rows() == [("120 bpm", "tempo_bpm", "120")]


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_prompt_is_unconditional(text):
    p = parse_prompt(text)
    assert p.attributes == PromptAttributes()
    assert p.understood == [] and p.ignored == []


# ---- style and mood ---------------------------------------------------------------------------
def test_styles_match_the_tokenizer():
    from engine.pipelines import prompt
    from engine.symbolic.tokenizer import STYLES

    assert prompt.STYLES == STYLES
    assert set(prompt.STYLE_WORDS.values()) <= set(STYLES)
    assert {d.style for d in DANCES.values() if d.style} <= set(STYLES)


@pytest.mark.parametrize(
    "text, style",
    [
        ("hymn", "chorale"),
        ("in the style of Bach", "chorale"),
        ("four-part harmony", "chorale"),
        ("sacred polyphony", "renaissance"),
        ("Palestrina", "renaissance"),
        ("Monteverdi", "madrigal"),
        ("gregorian chant", "medieval"),
        ("troubadour", "medieval"),
        ("Irish", "celtic"),
        ("british folk", "celtic"),
        ("german folk", "folk"),
        ("folk song", "folk"),
        ("Mozart sonata", "classical"),
    ],
)
def test_style_synonyms(text, style):
    assert attrs(text).style == style


def test_dance_gives_a_default_style_that_words_override():
    assert attrs("jig").style == "celtic"
    assert attrs("reel").meter == "4/4"
    a = attrs("a classical jig")
    assert (a.style, a.meter) == ("classical", "6/8")


@pytest.mark.parametrize(
    "word, mood",
    [
        ("happy", "joy"),
        ("mournful", "sadness"),
        ("furious", "anger"),
        ("serene", "tranquility"),
        ("suspenseful", "tension"),
        ("wistful", "nostalgia"),
        ("epic", "triumph"),
        ("eerie", "mystery"),
        ("dark", "mystery"),
        ("bright", "joy"),
    ],
)
def test_mood_synonyms_and_defaults(word, mood):
    a = attrs(word)
    d = MOOD_DEFAULTS[mood]
    assert a.moods == [mood]
    assert (a.mode, a.tempo_bpm, a.register) == (d.mode, d.tempo_bpm, d.register)
    assert (a.dynamics, a.articulation, a.density) == (d.dynamics, d.articulation, d.density)


def test_words_beat_mood_defaults():
    a = attrs("sad but fast")
    assert a.moods == ["sadness"]
    assert (a.mode, a.tempo_bpm) == ("minor", 132.0)
    a = attrs("a sad piece in C major, loud, staccato, high")
    assert (a.mode, a.dynamics, a.articulation, a.register) == ("major", "f", "staccato", "high")


def test_explicit_tempo_beats_mood_tempo():
    p = parse_prompt("calm at 150 bpm")
    assert p.attributes.tempo_bpm == 150.0
    assert not any(r[1] == "tempo_bpm" and "default" in r[2] for r in p.table_rows())


def test_first_mood_wins_conflicts():
    a = attrs("happy and sad")
    assert a.moods == ["joy", "sadness"]
    assert (a.mode, a.tempo_bpm) == ("major", 126.0)


def test_numbers_beat_words_and_rows_say_so():
    p = parse_prompt("slow, 120 bpm")
    assert p.attributes.tempo_bpm == 120.0
    assert ("slow", "tempo_bpm", "60 (overridden by 120 bpm)") in p.table_rows()


# ---- tempo ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, bpm",
    [
        ("120 bpm", 120),
        ("120bpm", 120),
        ("bpm 120", 120),
        ("at 96", 96),
        ("♩=100", 100),
        ("q = 90", 90),
        ("tempo 80", 80),
        ("92.5 BPM", 92.5),
        ("very slow", 46),
        ("slow", 60),
        ("moderate", 96),
        ("medium", 96),
        ("brisk", 126),
        ("quick", 132),
        ("lively", 132),
        ("fast", 132),
        ("very fast", 168),
        ("really fast", 168),
    ],
)
def test_tempo(text, bpm):
    assert attrs(text).tempo_bpm == float(bpm)


def test_italian_markings():
    expected = {
        "grave": 40,
        "largo": 50,
        "larghetto": 63,
        "lento": 52,
        "adagio": 70,
        "andante": 88,
        "andantino": 96,
        "moderato": 112,
        "allegretto": 116,
        "allegro": 132,
        "vivace": 160,
        "presto": 184,
        "prestissimo": 208,
    }
    for word, bpm in expected.items():
        assert ITALIAN_TEMPOS[word] == bpm
        assert attrs(word.capitalize()).tempo_bpm == float(bpm)
    assert attrs("allegro ma non troppo").tempo_bpm == 126.0


@pytest.mark.parametrize("text", ["tempo 0", "1000 bpm", "at 10", "♩=401", "350 bpm"])
def test_tempo_out_of_range(text):
    with pytest.raises(PromptError, match=r"BPM is out of range: use 20 to 300 BPM"):
        parse_prompt(text)


def test_at_is_not_always_a_tempo():
    assert attrs("at 2 minutes").seconds == 120.0
    assert attrs("at 2 minutes").tempo_bpm is None


# ---- key and mode -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, key, mode",
    [
        ("in D minor", "D", "minor"),
        ("D minor", "D", "minor"),
        ("F# major", "F#", "major"),
        ("Bb", "Bb", None),
        ("B flat major", "Bb", "major"),
        ("E-flat minor", "Eb", "minor"),
        ("D♭ major", "Db", "major"),
        ("c minor", "C", "minor"),
        ("A major", "A", "major"),
        ("in A", "A", None),
        ("in the key of G", "G", None),
        ("in Am", "A", "minor"),
        ("minor", None, "minor"),
        ("major", None, "major"),
        ("D dorian", "D", "minor"),
        ("aeolian", None, "minor"),
        ("mixolydian", None, "major"),
        ("lydian", None, "major"),
        ("ionian", None, "major"),
    ],
)
def test_key_and_mode(text, key, mode):
    a = attrs(text)
    assert (a.key, a.mode) == (key, mode)


def test_modal_word_is_recorded():
    assert ("dorian", "mode", "minor (dorian)") in parse_prompt("dorian").table_rows()


@pytest.mark.parametrize("text", ["a sad waltz", "A happy tune", "in a sad mood", "a flat melody"])
def test_article_a_is_not_a_key(text):
    assert parse_prompt(text).attributes.key is None


def test_progression_beside_key():
    a = attrs("in C major, C-G-Am-F")
    assert (a.key, a.mode) == ("C", "major")
    assert a.progression == ["C", "G", "Am", "F"]


# ---- meter and dances -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, meter",
    [
        ("3/4", "3/4"),
        ("6/8", "6/8"),
        ("in 3", "3/4"),
        ("in three", "3/4"),
        ("in 4", "4/4"),
        ("waltz", "3/4"),
        ("minuet", "3/4"),
        ("mazurka", "3/4"),
        ("sarabande", "3/4"),
        ("bolero", "3/4"),
        ("jig", "6/8"),
        ("slip jig", "9/8"),
        ("reel", "4/4"),
        ("hornpipe", "4/4"),
        ("gavotte", "4/4"),
        ("march", "2/4"),
        ("polka", "2/4"),
        ("gigue", "6/8"),
        ("siciliana", "6/8"),
        ("barcarolle", "6/8"),
        ("tarantella", "6/8"),
        ("lullaby", "6/8"),
        ("cut time", "2/2"),
    ],
)
def test_meters_and_dances(text, meter):
    assert attrs(text).meter == meter


def test_dance_tempo_is_a_default():
    assert attrs("march").tempo_bpm == 112.0
    assert attrs("tarantella").tempo_bpm == 200.0
    assert attrs("slow march").tempo_bpm == 60.0
    assert attrs("waltz in 4/4").meter == "4/4"  # the number beats the dance
    a = attrs("lullaby")
    assert a.moods == ["tranquility"] and a.tempo_bpm == 66.0  # dance tempo over mood tempo


def test_in_3_minutes_is_a_length_not_a_meter():
    a = attrs("in 3 minutes")
    assert (a.meter, a.seconds) == (None, 180.0)


# ---- instruments and ensembles ----------------------------------------------------------------
def test_counts_and_plurals():
    assert attrs("two violins and a cello").instruments == [
        ("violin 1", 40),
        ("violin 2", 40),
        ("cello", 42),
    ]
    assert attrs("2 flutes").instruments == [("flute 1", 73), ("flute 2", 73)]
    assert attrs("three trumpets").instruments == [(f"trumpet {i}", 56) for i in (1, 2, 3)]
    assert attrs("a violin and a cello").instruments == [("violin", 40), ("cello", 42)]
    assert attrs("cellos").instruments == [("cello", 42)]  # a plural alone is one part
    assert attrs("guitar duo").instruments == [("guitar 1", 24), ("guitar 2", 24)]
    assert attrs("violin and piano duo").instruments == [("violin", 40), ("piano", 0)]


@pytest.mark.parametrize(
    "text, part",
    [
        ("piano", ("piano", 0)),
        ("grand piano", ("piano", 0)),
        ("harpsichord", ("harpsichord", 6)),
        ("church organ", ("organ", 19)),
        ("acoustic guitar", ("acoustic guitar", 25)),
        ("nylon guitar", ("guitar", 24)),
        ("electric guitar", ("electric guitar", 27)),
        ("double bass", ("double bass", 43)),
        ("contrabass", ("double bass", 43)),
        ("electric bass", ("electric bass", 33)),
        ("viola", ("viola", 41)),
        ("harp", ("harp", 46)),
        ("strings", ("strings", 48)),
        ("string ensemble", ("strings", 48)),
        ("voice", ("voice", 52)),
        ("french horn", ("french horn", 60)),
        ("horn", ("french horn", 60)),
        ("english horn", ("english horn", 69)),
        ("piccolo", ("piccolo", 72)),
        ("tenor saxophone", ("tenor sax", 66)),
        ("recorder", ("recorder", 74)),
        ("pan flute", ("pan flute", 75)),
        ("bagpipe", ("bagpipe", 109)),
        ("fiddle", ("fiddle", 40)),
        ("accordion", ("accordion", 21)),
        ("glockenspiel", ("glockenspiel", 9)),
        ("timpani", ("timpani", 47)),
        ("Acoustic Grand Piano", ("acoustic grand piano", 0)),
        ("choir aahs", ("choir aahs", 52)),
        ("Electric Guitar (jazz)", ("electric guitar (jazz)", 26)),
    ],
)
def test_instruments(text, part):
    assert attrs(text).instruments == [part]


def test_every_general_midi_name_is_understood():
    from pretty_midi.constants import INSTRUMENT_MAP

    for program, name in enumerate(INSTRUMENT_MAP):
        parts = attrs(name).instruments
        assert len(parts) == 1
        assert parts[0][1] == (40 if name == "Fiddle" else program), name


@pytest.mark.parametrize(
    "text, parts",
    [
        ("string quartet", [("violin 1", 40), ("violin 2", 40), ("viola", 41), ("cello", 42)]),
        ("string trio", [("violin", 40), ("viola", 41), ("cello", 42)]),
        ("piano trio", [("piano", 0), ("violin", 40), ("cello", 42)]),
        (
            "woodwind quintet",
            [("flute", 73), ("oboe", 68), ("clarinet", 71), ("french horn", 60), ("bassoon", 70)],
        ),
        ("SATB", [("soprano", 52), ("alto", 52), ("tenor", 52), ("bass", 52)]),
        ("four-part choir", [("soprano", 52), ("alto", 52), ("tenor", 52), ("bass", 52)]),
        (
            "saxophone quartet",
            [("soprano sax", 64), ("alto sax", 65), ("tenor sax", 66), ("baritone sax", 67)],
        ),
        ("wind trio", [("oboe", 68), ("clarinet", 71), ("bassoon", 70)]),
        ("jazz trio", [("piano", 0), ("bass", 32)]),
    ],
)
def test_ensembles(text, parts):
    a = attrs(text)
    assert a.instruments == parts
    assert a.ensemble is not None


def test_choir_is_satb_and_four_part_choir_is_not_chorale_style():
    a = attrs("choir")
    assert [n for n, _ in a.instruments] == ["soprano", "alto", "tenor", "bass"]
    assert attrs("four-part choir").style is None
    assert attrs("four-part").style == "chorale"


def test_piano_is_the_instrument_and_p_the_dynamic():
    a = attrs("soft piano")
    assert (a.instruments, a.dynamics) == ([("piano", 0)], "p")
    a = attrs("piano, p")
    assert (a.instruments, a.dynamics) == ([("piano", 0)], "p")
    a = attrs("mezzo piano")
    assert (a.instruments, a.dynamics) == ([], "mp")
    assert attrs("pianissimo").dynamics == "pp"


def test_too_many_parts():
    with pytest.raises(PromptError, match="1 to 16"):
        parse_prompt("twenty violins")
    with pytest.raises(PromptError, match="1 to 16"):
        parse_prompt("0 violins")
    with pytest.raises(PromptError, match="20 parts; the limit is 16"):
        parse_prompt("five string quartets")


# ---- length -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30 seconds", 30),
        ("30 s", 30),
        ("30s", 30),
        ("90 sec", 90),
        ("1 minute", 60),
        ("2 minutes", 120),
        ("1:30", 90),
        ("1 minute 30 seconds", 90),
        ("a minute and a half", 90),
        ("half a minute", 30),
        ("about a minute", 60),
        ("thirty seconds long", 30),
        ("short", 20),
        ("long", 90),
        ("10 minutes", 600),
    ],
)
def test_length_in_seconds(text, seconds):
    a = attrs(text)
    assert (a.seconds, a.bars) == (float(seconds), None)


@pytest.mark.parametrize("text, bars", [("16 bars", 16), ("8 measures", 8), ("24-bar", 24)])
def test_length_in_bars(text, bars):
    a = attrs(text)
    assert (a.bars, a.seconds) == (bars, None)
    assert isinstance(a.bars, int)


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 seconds", "too short"),
        ("-5 seconds", "too short"),
        ("3 hours", "the limit is 10 minutes"),
        ("11 minutes", "the limit is 10 minutes"),
        ("0 bars", "from 1 to 128"),
        ("129 bars", "the limit is 128 bars"),
    ],
)
def test_bad_lengths(text, message):
    with pytest.raises(PromptError, match=message):
        parse_prompt(text)


def test_a_second_violin_is_not_a_length():
    a = parse_prompt("a second violin").attributes
    assert a.seconds is None and a.instruments == [("violin", 40)]


# ---- dynamics, articulation, density, register ------------------------------------------------
@pytest.mark.parametrize(
    "text, dyn",
    [
        ("pp", "pp"),
        ("very soft", "pp"),
        ("quiet", "p"),
        ("gentle", "p"),
        ("mp", "mp"),
        ("mf", "mf"),
        ("mezzo", "mf"),
        ("loud", "f"),
        ("forte", "f"),
        ("powerful", "f"),
        ("very loud", "ff"),
        ("fortissimo", "ff"),
        ("ff", "ff"),
    ],
)
def test_dynamics(text, dyn):
    assert attrs(text).dynamics == dyn


@pytest.mark.parametrize(
    "text, shape",
    [
        ("crescendo", "crescendo"),
        ("cresc.", "crescendo"),
        ("building", "crescendo"),
        ("growing", "crescendo"),
        ("diminuendo", "diminuendo"),
        ("decrescendo", "diminuendo"),
        ("dim.", "diminuendo"),
        ("fading", "diminuendo"),
        ("fade out", "diminuendo"),
    ],
)
def test_dynamics_shape(text, shape):
    assert attrs(text).dynamics_shape == shape


@pytest.mark.parametrize(
    "text, art",
    [
        ("legato", "legato"),
        ("smooth", "legato"),
        ("flowing", "legato"),
        ("sustained", "legato"),
        ("staccato", "staccato"),
        ("detached", "staccato"),
        ("short notes", "staccato"),
        ("bouncy", "staccato"),
        ("choppy", "staccato"),
    ],
)
def test_articulation(text, art):
    a = attrs(text)
    assert a.articulation == art
    assert a.seconds is None  # "short notes" is not "short"


@pytest.mark.parametrize(
    "text, density",
    [
        ("sparse", 0.2),
        ("minimal", 0.2),
        ("simple", 0.3),
        ("few notes", 0.2),
        ("very sparse", 0.1),
        ("busy", 0.8),
        ("dense", 0.8),
        ("intricate", 0.8),
        ("many notes", 0.8),
        ("very busy", 0.9),
    ],
)
def test_density(text, density):
    assert attrs(text).density == density


@pytest.mark.parametrize(
    "text, register",
    [("low", "low"), ("deep", "low"), ("bass-heavy", "low"), ("high", "high"), ("airy", "high")]
    + [("soaring", "high"), ("middle register", "middle")],
)
def test_register(text, register):
    a = attrs(text)
    assert a.register == register
    assert a.instruments == []  # "bass-heavy" is not a bass


# ---- structure and harmony --------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, structure",
    [
        ("AABA", ["A", "A", "B", "A"]),
        ("ABA", ["A", "B", "A"]),
        ("AB", ["A", "B"]),
        ("ABAC", ["A", "B", "A", "C"]),
        ("A-A-B-A", ["A", "A", "B", "A"]),
        ("rondo", ["A", "B", "A", "C", "A"]),
        ("binary", ["A", "B"]),
        ("ternary form", ["A", "B", "A"]),
        ("verse chorus", ["verse", "chorus"]),
        (
            "intro verse chorus verse chorus outro",
            ["intro", "verse", "chorus", "verse", "chorus", "outro"],
        ),
        ("intro, verse, pre-chorus, chorus", ["intro", "verse", "pre-chorus", "chorus"]),
    ],
)
def test_structure(text, structure):
    assert attrs(text).structure == structure


def test_letter_words_that_are_not_forms():
    assert parse_prompt("FADE").attributes.structure is None  # not A, B, C... in order
    assert parse_prompt("ACE").attributes.structure is None


@pytest.mark.parametrize(
    "text, chords",
    [
        ("I-vi-IV-V", ["I", "vi", "IV", "V"]),
        ("i iv V i", ["i", "iv", "V", "i"]),
        ("ii-V-I", ["ii", "V", "I"]),
        ("I IV V7 I", ["I", "IV", "V7", "I"]),
        ("Am F C G", ["Am", "F", "C", "G"]),
        ("C-G-Am-F", ["C", "G", "Am", "F"]),
        ("chords Dm7 G7 Cmaj7", ["Dm7", "G7", "Cmaj7"]),
        ("progression Bb Eb F7", ["Bb", "Eb", "F7"]),
    ],
)
def test_progressions(text, chords):
    assert attrs(text).progression == chords


def test_a_single_chord_is_not_a_progression():
    assert parse_prompt("C").attributes.progression is None
    assert parse_prompt("A").attributes.progression is None
    assert parse_prompt("I love it").attributes.progression is None


def test_progressions_are_what_the_steering_reads():
    from engine.symbolic.steer import parse_chord

    for chord in ["I", "vi", "IV", "V7", "bVII", "vii°", "Am", "F#m", "Bbmaj7", "Dm7", "Gsus4"]:
        assert attrs(f"{chord} {chord}").progression == [chord, chord]
        parse_chord(chord)


# ---- syncopation, creativity, contour ---------------------------------------------------------
def test_syncopation_creativity_contour():
    assert attrs("syncopated").syncopation == 0.7
    assert attrs("swing").syncopation == 0.7
    assert attrs("offbeat").syncopation == 0.7
    assert attrs("straight").syncopation == 0.1
    assert attrs("on the beat").syncopation == 0.1
    for word in ("conservative", "traditional", "predictable", "safe"):
        assert attrs(word).creativity == 0.2
    for word in ("experimental", "adventurous", "wild", "unpredictable", "surprising"):
        assert attrs(word).creativity == 0.85
    assert attrs("ascending").contour == "rising"
    assert attrs("descending").contour == "falling"
    assert attrs("arching").contour == "arch"


# ---- double stops -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "string quartet with double stops",
        "a cello solo, double-stops",
        "double stops",
        "Double Stops for violin",
        "a violin with a double stop",
        "double stopping on the viola",
        "double bass with double stops",  # the instrument and the technique side by side
    ],
)
def test_double_stops(text):
    parsed = parse_prompt(text)
    assert parsed.ignored == [] and parsed.attributes.double_stops is True
    row = next(u for u in parsed.understood if u.attribute == "double_stops")
    assert row.phrase.lower().replace("-", " ").startswith("double stop")
    assert row.value.startswith("on (") and "2 notes at once" in row.value


def test_without_the_words_there_are_no_double_stops():
    assert attrs("string quartet").double_stops is False
    assert attrs("double bass").instruments == [("double bass", 43)]
    assert attrs("double bass").double_stops is False
    p = parse_prompt("string quartet without double stops")  # negations are left out
    assert p.attributes.double_stops is False
    assert [i.word for i in p.ignored] == ["without double stops"]
    assert vocabulary()["double stops"][0][0] == "double stops"


# ---- ignored words ----------------------------------------------------------------------------
def test_unknown_words_get_suggestions():
    p = parse_prompt("violn and celo with a trumpit")
    assert [i.word for i in p.ignored] == ["violn", "celo", "trumpit"]
    assert p.ignored[0].suggestions[0] == "violin"
    assert p.ignored[1].suggestions[0] == "cello"
    assert p.ignored[2].suggestions[0] == "trumpet"
    assert all(len(i.suggestions) <= 3 for i in p.ignored)
    assert parse_prompt("xyzzy").ignored == [Ignored("xyzzy", [])]


def test_stop_words_are_neither_understood_nor_ignored():
    p = parse_prompt("please make me a little bit of music, some piece that is like a song")
    assert p.understood == [] and p.ignored == []


def test_negations_and_drums_are_left_out():
    p = parse_prompt("not too fast, without piano, no drums")
    assert p.attributes.tempo_bpm is None and p.attributes.instruments == []
    assert [i.word for i in p.ignored] == ["not too fast", "without piano", "drums"]


# ---- limits and help --------------------------------------------------------------------------
def test_prompt_too_long():
    parse_prompt("a" * MAX_PROMPT_CHARS)
    with pytest.raises(PromptError, match=r"prompt is 10000000 characters; the limit is 2000"):
        parse_prompt("x" * 10_000_000)


def test_examples_parse_fully():
    ex = examples()
    assert 8 <= len(ex) <= 12
    for text in ex:
        p = parse_prompt(text)
        assert p.ignored == [], (text, p.ignored)
        assert len(p.understood) >= 4


def test_vocabulary_entries_all_parse():
    v = vocabulary()
    for category in (
        "style",
        "mood",
        "tempo",
        "key and mode",
        "meter and dance",
        "instruments",
        "ensembles",
        "length",
        "dynamics",
        "articulation",
        "density",
        "register",
        "structure",
        "harmony",
        "creativity",
    ):
        assert v.get(category), category
    for category, entries in v.items():
        for word, meaning in entries:
            assert meaning
            p = parse_prompt(word)
            assert p.understood and not p.ignored, (category, word)

"""The refusal cases: every command with broken inputs, absurd options and bad targets.

A case is an argv, the corpus files it needs in the current folder, and a pattern (a regular
expression, case-insensitive) that the one ``error:`` line must contain: the file, option or
name that is wrong.  ``{home}`` and ``{root}`` in an argv stand for ``$HOME`` and the
watched folder (the parent of the current folder).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_SEED = 2**32 - 1
HUGE = str(2**70)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    files: tuple[str, ...] = ()
    needle: str = ""  # a regular expression the error line must match
    records: tuple[tuple[str, str, str], ...] = ()  # (folder, base record, tampering)
    corpus: bool = False  # needs the built mini corpus (its path replaces {corpus})
    root_only_skip: str = ""  # a reason to skip when running as root
    terminal: bool | None = None  # False: stdin is not a terminal; True: stdin and stdout are
    known_bug: str = ""  # not refused yet, and why (an expected failure until it is)


def lit(text: str) -> str:
    return re.escape(text)


def opt(name: str) -> str:
    """An option named in any spelling: --top-p, top-p, top_p, top p."""
    bare = name.lstrip("-")
    return "(--)?" + "[-_ ]".join(re.escape(w) for w in bare.split("-"))


CASES: list[Case] = []


def add(id_: str, argv, files=(), needle="", **kw) -> None:
    CASES.append(Case(id_, tuple(str(a) for a in argv), tuple(files), needle, **kw))


# ---- numeric options -------------------------------------------------------------------------
VALUES = ("0", "-1", "nan", "inf", "-inf", "1e300", HUGE, "abc", "")


@dataclass(frozen=True)
class Num:
    name: str
    kind: type  # int or float
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    extra: tuple[str, ...] = ()

    def invalid(self) -> list[str]:
        bad = []
        for v in (*VALUES, *self.extra):
            try:
                x = self.kind(v)
            except ValueError:
                bad.append(v)
                continue
            if isinstance(x, float) and not math.isfinite(x):
                bad.append(v)
            elif x < self.lo or x > self.hi or (self.lo_open and x == self.lo):
                bad.append(v)
            elif self.hi_open and x == self.hi:
                bad.append(v)
        return list(dict.fromkeys(bad))


def _vid(v: str) -> str:
    return {"": "empty", HUGE: "2e70", "-1": "neg1", "-inf": "neginf"}.get(v, v)


SEED = Num("--seed", int, 0, MAX_SEED, extra=(str(2**32),))
TEMPERATURE = Num("--temperature", float, 0, 5, extra=("5.01",))
TOP_K = Num("--top-k", int, 0, 2**31 - 1)
TOP_P = Num("--top-p", float, 0, 1, lo_open=True, extra=("1.5",))
KEY_STRENGTH = Num("--key-strength", float, 0, 10, extra=("10.5",))
SAMPLING = (TEMPERATURE, TOP_K, TOP_P, KEY_STRENGTH, SEED)
SAMPLING_NO_K = (TEMPERATURE, TOP_P, KEY_STRENGTH, SEED)


# Options an error may name in words instead of by flag.
IN_WORDS = {
    "--melody-track": "track",
    "--min-note-ms": "note length",
    "--min-freq": "minimum frequency",
    "--max-freq": "maximum frequency",
}


def numbers(cmd: str, base, files, specs) -> None:
    for spec in specs:
        needle = opt(spec.name)
        if spec.name in IN_WORDS:
            needle += "|" + IN_WORDS[spec.name]
        for v in spec.invalid():
            add(f"{cmd}-{spec.name.lstrip('-')}={_vid(v)}", [*base, spec.name, v], files, needle)


numbers(
    "sketch",
    ["sketch", "--bars", "2"],
    (),
    (
        Num("--tempo", float, 20, 300, extra=("19.9", "301")),
        Num("--voices", int, 1, 8, extra=("9",)),
        Num("--bars", int, 1, 128, extra=("129",)),
        Num("--polyphony", int, 1, 6, extra=("7", "20")),
        Num("--voice-leading", float, 0, 20, extra=("20.5",)),
        *SAMPLING,
    ),
)
numbers(
    "continue",
    ["continue", "tune.mid"],
    ("tune.mid",),
    (Num("--bars", int, 1, 128, extra=("129",)), *SAMPLING),
)
numbers(
    "continue-audio",
    ["continue", "tune.wav", "--formats", "mid"],
    ("tune.wav",),
    (Num("--bars", int, 1, 128, extra=("129",)), *SAMPLING),
)
numbers(
    "continue-musicgen",
    ["continue", "tune.wav", "--model", "musicgen-small"],
    ("tune.wav",),
    (Num("--duration", float, 0, 600, lo_open=True), SEED),
)
numbers("add-tracks", ["add-tracks", "tune.mid"], ("tune.mid",), SAMPLING)
numbers("regenerate", ["regenerate", "duet.mid", "--bars", "1"], ("duet.mid",), SAMPLING)
numbers(
    "generate",
    ["generate", "", "--formats", "mid"],
    (),
    (
        Num("--tempo", float, 20, 300, extra=("19.9", "301")),
        Num("--duration", float, 0, 600, lo_open=True, extra=("601",)),
        Num("--bars", int, 1, 128, extra=("129",)),
        Num("--density", float, 0, 1, extra=("1.5",)),
        Num("--syncopation", float, 0, 1, extra=("1.5",)),
        Num("--creativity", float, 0, 1, extra=("1.5",)),
        SEED,
        Num("--variations", int, 1, 32, extra=("33",)),
        Num("--reverb", float, 0, 1, extra=("1.5",)),
        Num("--eq-low", float, -24, 24, extra=("25", "-25")),
        Num("--eq-high", float, -24, 24, extra=("25", "-25")),
        Num("--compression", float, 0, 1, extra=("1.5",)),
        Num("--bit-depth", int, 16, 16, extra=("17", "32")),
        Num("--polyphony", int, 1, 6, extra=("7", "20")),
        Num("--voice-leading", float, 0, 20, extra=("20.5",)),
    ),
)
numbers(
    "eval-prompts",
    ["eval", "prompts", "--out", "report"],
    (),
    (Num("--seeds", int, 1, 100, extra=("101",)), SEED),
)
add(
    "eval-prompts-model=no-such-model",
    ["eval", "prompts", "--model", "no-such-model"],
    (),
    "no-such-model",
)
numbers(
    "eval-compare",
    ["eval", "compare", "prompts.json", "prompts.json"],
    ("prompts.json",),
    (Num("--confidence", float, 0.5, 0.999, extra=("0.4", "1")),),
)
for first, second, needle in (
    ("missing.json", "prompts.json", lit("missing.json")),
    ("prompts.json", "empty.json", lit("empty.json")),
    ("half.json", "prompts.json", lit("half.json")),
    ("user.json", "prompts.json", lit("user.json") + ".*eval prompts"),
    ("tune.mid", "prompts.json", lit("tune.mid")),
    ("prompts.json", "prompts-seed2.json", "other prompts or seeds"),
    ("prompts.json", "empty-folder", lit("empty-folder")),
):
    add(
        f"eval-compare-{first}-{second}",
        ["eval", "compare", first, second],
        tuple(f for f in (first, second) if f != "missing.json"),
        needle,
    )
numbers(
    "train-merge",
    ["train", "merge", "score-base", "score-base-v1", "--out", "merged"],
    (),
    (
        Num("--weight", float, 0, 1, lo_open=True, hi_open=True, extra=("1.5",)),
        Num("--key-strength-scale", float, 0, 2, lo_open=True, extra=("2.5",)),
    ),
)
for id_, argv, files, needle in (
    ("no-such-model", ["no-such-model", "score-base"], (), lit("no-such-model")),
    ("not-a-model", ["score-base", "notes.txt"], ("notes.txt",), lit("notes.txt")),
    ("bad-config", ["score-base", "bad-config-model"], ("bad-config-model",), "bad-config-model"),
    ("junk-weights", ["no-config-model", "score-base"], ("no-config-model",), "no-config-model"),
):
    add(f"train-merge-{id_}", ["train", "merge", *argv, "--out", "merged"], files, needle)
add(
    "train-merge-out=foreign",
    ["train", "merge", "score-base", "score-base-v1", "--out", "foreign"],
    ("foreign",),
    "foreign.*not a new or empty folder",
)
add(
    "train-merge-out=home",
    ["train", "merge", "score-base", "score-base-v1", "--out", "{home}"],
    (),
    "--out",
)
numbers(
    "generate-musicgen",
    ["generate", "rain", "--model", "musicgen-small"],
    (),
    (
        Num("--duration", float, 0, 600, lo_open=True),
        Num("--guidance", float, 0, 100),
        Num("--creativity", float, 0, 1, extra=("1.5",)),
    ),
)
numbers(
    "harmonize",
    ["harmonize", "tune.mid", "--formats", "mid"],
    ("tune.mid",),
    (
        Num("--voices", int, 2, 4, extra=("1", "5")),
        Num("--program", int, 0, 127, extra=("128",)),
        *SAMPLING_NO_K,
        Num("--bit-depth", int, 16, 16, extra=("17", "32")),
    ),
)
numbers(
    "restyle",
    ["restyle", "duet.mid", "--style", "folk", "--formats", "mid"],
    ("duet.mid",),
    (Num("--melody-track", int, 0, 2, extra=("3", "99")), *SAMPLING_NO_K),
)
numbers("accompany", ["accompany", "tune.mid"], ("tune.mid",), (SEED,))
# what the listener tells accompany of audio: a tempo it can hear, a metre audio is heard in
numbers(
    "accompany-audio",
    ["accompany", "tune.wav"],
    ("tune.wav",),
    (Num("--tempo", float, 40, 200, extra=("39.9", "201")),),
)
add(
    "accompany-tempo-in-6/8=301",
    ["accompany", "tune.wav", "--meter", "6/8", "--tempo", "301"],
    ("tune.wav",),
    lit("6/8") + ".*" + lit("use 300"),
)
for v in ("7/8", "3-4", "", "4/4/4", "five"):
    add(
        f"accompany-meter={v.replace('/', '_') or 'empty'}",
        ["accompany", "tune.wav", "--meter", v],
        ("tune.wav",),
        "metre|meter",
    )
add(
    "accompany-midi-with-a-tempo",
    ["accompany", "tune.mid", "--tempo", "120", "--meter", "3/4"],
    ("tune.mid",),
    lit("tune.mid") + ".*MIDI",
)
numbers(
    "transcribe",
    ["transcribe", "tune.wav"],
    ("tune.wav",),
    (
        Num("--onset-threshold", float, 0, 1, extra=("1.5",)),
        Num("--frame-threshold", float, 0, 1, extra=("1.5",)),
        Num("--min-note-ms", float, 0, 3_600_000),
        Num("--min-freq", float, 0, 100_000),
        Num("--max-freq", float, 0, 100_000, lo_open=True),
    ),
)
numbers(
    "convert",
    ["convert", "musicgen", "facebook/musicgen-small", "--out", "conv"],
    (),
    (Num("--quantize", int, 4, 8, extra=("3", "5", "16")),),
)
numbers(
    "corpus-build",
    ["corpus", "build", "--out", "corpus-out"],
    (),
    (Num("--limit", int, 1, 10**9), Num("--workers", int, 1, 1024)),
)
for spec in (
    Num("--max-steps", int, 1, 10**9),
    Num("--max-minutes", float, 0, 10**7, lo_open=True),
    SEED,
):
    for v in spec.invalid():
        add(
            f"train-{spec.name.lstrip('-')}={_vid(v)}",
            [
                "train",
                "score",
                "--corpus",
                "{corpus}",
                "--preset",
                "tiny",
                "--out",
                "run",
                *(["--max-steps", "1"] if spec.name != "--max-steps" else []),
                spec.name,
                v,
            ],
            (),
            opt(spec.name),
            corpus=True,
        )
EVAL = [
    "eval",
    "score",
    "--corpus",
    "{corpus}",
    "--pieces-per-style",
    "1",
    "--bars",
    "1",
    "--harmonizations",
    "0",
    "--no-nll",
    "--out",
    "report",
]
for spec in (
    Num("--pieces-per-style", int, 1, 1000),
    Num("--bars", int, 1, 128, extra=("129",)),
    Num("--harmonizations", int, 0, 1000),
    SEED,
    KEY_STRENGTH,
):
    for v in spec.invalid():
        add(
            f"eval-{spec.name.lstrip('-')}={_vid(v)}",
            [*EVAL, spec.name, v],
            (),
            opt(spec.name),
            corpus=True,
        )

# ---- lists and ranges given as text ----------------------------------------------------------
for cmd, base, files in (
    ("sketch", ["sketch", "--bars", "2"], ()),
    ("add-tracks", ["add-tracks", "tune.mid", "--parts", "alto,bass"], ("tune.mid",)),
):
    for v in ("128", "-1", "abc", "", ",", "1.5", HUGE, "0,,128", "52,nan"):
        add(f"{cmd}-programs={_vid(v)}", [*base, "--programs", v], files, opt("--programs"))
add(
    "sketch-programs-more-than-voices",
    ["sketch", "--voices", "2", "--programs", "1,2,3,4,5"],
    (),
    "program",
)
for v in ("kazoo", "soprano,kazoo", ",", "soprano," * 20):
    add(
        f"sketch-parts={v[:16]}",
        ["sketch", "--bars", "2", "--parts", v],
        (),
        "part|voice|track|kazoo",
    )
    add(
        f"add-tracks-parts={v[:16]}",
        ["add-tracks", "tune.mid", "--parts", v],
        ("tune.mid",),
        "part|voice|track|kazoo",
    )
for v in ("0", "-1", "2-1", "abc", "", "1-2-3", "99", "1-99", HUGE, "nan", "1.5", "inf", "1--2"):
    add(
        f"regenerate-bars={_vid(v)}",
        ["regenerate", "duet.mid", "--bars", v],
        ("duet.mid",),
        opt("--bars"),
    )
for v in ("0", "-1", "3", "abc", "", ",", HUGE, "1,99"):
    add(
        f"regenerate-tracks={_vid(v)}",
        ["regenerate", "duet.mid", "--bars", "1", "--tracks", v],
        ("duet.mid",),
        "track",
    )

# ---- unknown names -------------------------------------------------------------------------
STYLE_USERS = {
    "sketch": (["sketch", "--bars", "2"], ()),
    "continue": (["continue", "tune.mid"], ("tune.mid",)),
    "continue-audio": (["continue", "tune.wav", "--formats", "mid"], ("tune.wav",)),
    "add-tracks": (["add-tracks", "tune.mid"], ("tune.mid",)),
    "regenerate": (["regenerate", "duet.mid", "--bars", "1"], ("duet.mid",)),
    "generate": (["generate", "", "--formats", "mid"], ()),
    "harmonize": (["harmonize", "tune.mid", "--formats", "mid"], ("tune.mid",)),
    "restyle": (["restyle", "duet.mid", "--formats", "mid"], ("duet.mid",)),
    "accompany": (["accompany", "tune.mid", "--part", "bass"], ("tune.mid",)),
    "accompany-drums": (["accompany", "tune.mid", "--part", "drums"], ("tune.mid",)),
}
for cmd, (base, files) in STYLE_USERS.items():
    add(f"{cmd}-style=banjo", [*base, "--style", "banjo"], files, "banjo")
    add(f"{cmd}-style=huge", [*base, "--style", "x" * 100_000], files, "style")
for cmd, (base, files) in {
    "sketch": (["sketch", "--bars", "2"], ()),
    "generate": (["generate", "", "--formats", "mid"], ()),
}.items():
    for v in ("H", "C##", "Cb#", "major", "123"):
        add(f"{cmd}-key={v}", [*base, "--key", v], files, "key|" + lit(v))
    for v in ("7/0", "0/4", "abc", "4/3", "1000/4", "-4/4", "4/4/4"):
        add(f"{cmd}-meter={v}", [*base, "--meter", v], files, "meter|" + lit(v))
    add(f"{cmd}-mode=lydian", [*base, "--mode", "lydian"], files, opt("--mode"))
WORDS_FOR = {"instruments": "parts", "structure": "section|form", "progression": "chord"}
for name, v in (
    ("mood", "banjo"),
    ("instruments", "kazoophone"),
    ("instruments", ","),
    ("instruments", ",".join(["violin"] * 40)),
    ("structure", "A:0"),
    ("structure", "A:1000"),
    ("structure", "A:-1"),
    ("structure", "::"),
    ("progression", "I-XYZ-Q"),
    ("progression", "H#m7b13"),
    ("dynamics", "fff"),
    ("hairpin", "sideways"),
    ("articulation", "pizzicato"),
    ("register", "ultra"),
    ("contour", "zigzag"),
):
    add(
        f"generate-{name}={v[:12]}",
        ["generate", "", "--formats", "mid", f"--{name}", v],
        (),
        f"{name}|{lit(v[:12])}|{WORDS_FOR.get(name, name)}",
    )
for cmd, (base, files) in {
    "generate": (["generate", "", "--formats", "mid"], ()),
    "sketch": (["sketch", "--bars", "2"], ()),
    "continue": (["continue", "tune.mid"], ("tune.mid",)),
    "add-tracks": (["add-tracks", "tune.mid"], ("tune.mid",)),
    "regenerate": (["regenerate", "duet.mid", "--bars", "1"], ("duet.mid",)),
    "harmonize": (["harmonize", "tune.mid", "--formats", "mid"], ("tune.mid",)),
    "restyle": (["restyle", "duet.mid", "--style", "folk", "--formats", "mid"], ("duet.mid",)),
    "eval": (EVAL, ()),
}.items():
    corpus_needed = cmd == "eval"
    for v, needle in (
        ("no-such-model", "no-such-model"),
        ("no-config-model", "no-config-model"),
        ("bad-config-model", "bad-config-model"),
        ("notes.txt", "notes.txt"),
        ("musicgen-junk", "musicgen-junk"),
    ):
        if cmd == "generate" and v == "musicgen-junk":
            continue  # with --formats mid, the formats are the first problem; see below
        extra = () if v in ("no-such-model", "") else (v,)
        add(
            f"{cmd}-model={v or 'empty'}",
            [*base, "--model", v],
            (*files, *extra),
            needle,
            corpus=corpus_needed,
        )
FORMAT_USERS = {
    "generate": (["generate", ""], ()),
    "harmonize": (["harmonize", "tune.mid"], ("tune.mid",)),
    "restyle": (["restyle", "duet.mid", "--style", "folk"], ("duet.mid",)),
    "continue-audio": (["continue", "tune.wav"], ("tune.wav",)),
}
for cmd, (base, files) in FORMAT_USERS.items():
    for v in ("exe", "", ",", "wav,exe", "WAV;mid"):
        add(f"{cmd}-formats={_vid(v)}", [*base, "--formats", v], files, "format")
    for sf, needle in (
        ("missing.sf2", "missing.sf2"),
        ("not-a-soundfont.sf2", "not-a-soundfont.sf2"),
        ("empty.sf2", "empty.sf2"),
        ("riff-wave.sf2", "riff-wave.sf2"),
        ("cut-short.sf2", "cut-short.sf2"),
        ("empty-folder", "empty-folder"),
        ("banjo", "banjo"),  # neither a file nor a known SoundFont name
    ):
        made = () if sf in ("missing.sf2", "banjo") else (sf,)
        add(f"{cmd}-soundfont={sf}", [*base, "--soundfont", sf], (*files, *made), lit(needle))
    add(
        f"{cmd}-soundfont-missing-formats-mid",
        [*base, "--formats", "mid", "--soundfont", "missing.sf2"],
        files,
        "missing.sf2",
    )
    add(f"{cmd}-bit-depth=8", [*base, "--bit-depth", "8"], files, opt("--bit-depth"))
for v in ("banjo", "", "drums,bass"):
    add(
        f"accompany-part={v or 'empty'}",
        ["accompany", "tune.mid", "--part", v],
        ("tune.mid",),
        "part|" + lit(v.strip() or "part"),
    )
# soundfonts: names that are not known, usage errors, and a download nobody can confirm
for v, needle in (("banjo", "banjo"), ("", "SoundFont"), ("x" * 100_000, "SoundFont")):
    add(f"soundfonts-get={v[:12] or 'empty'}", ["soundfonts", "get", v], (), needle)
add("soundfonts-get=banjo+yes", ["soundfonts", "get", "banjo", "--yes"], (), "banjo")
add("soundfonts-get-no-name", ["soundfonts", "get"], (), "name")
add("soundfonts-action=frobnicate", ["soundfonts", "frobnicate"], (), "frobnicate")
add("soundfonts-option=bogus", ["soundfonts", "--bogus"], (), "bogus")
add(
    "convert-dtype=int8",
    ["convert", "musicgen", "facebook/musicgen-small", "--out", "conv", "--dtype", "int8"],
    (),
    opt("--dtype"),
)
for src, files, needle in (
    ("facebook/musicgen-small", (), "musicgen-small|offline|network"),
    ("no-such-source", (), "no-such-source"),
    ("empty-folder", ("empty-folder",), "empty-folder"),
    ("foreign", ("foreign",), "foreign"),
    ("notes.txt", ("notes.txt",), "notes.txt"),
    ("a/b/c/d", (), lit("a/b/c/d")),
    ("", (), "source|folder|hub"),
):
    add(
        f"convert-source={src or 'empty'}",
        ["convert", "musicgen", src, "--out", "conv"],
        files,
        needle,
    )
for v in ("banjo", "chorale,banjo"):
    add(f"corpus-build-styles={v}", ["corpus", "build", "--out", "c", "--styles", v], (), "banjo")
for v in ("banjo", ""):
    add(
        f"train-preset={v or 'empty'}",
        ["train", "score", "--corpus", "{corpus}", "--preset", v, "--out", "run"],
        (),
        "preset",
        corpus=True,
    )
for v, files in (
    ("missing-corpus", ()),
    ("notes.txt", ("notes.txt",)),
    ("empty-folder", ("empty-folder",)),
    ("junk-corpus", ("junk-corpus",)),
    ("fake-corpus", ("fake-corpus",)),
):
    add(
        f"train-corpus={v}",
        ["train", "score", "--corpus", v, "--preset", "tiny", "--out", "run"],
        files,
        lit(v),
    )
    if v != "fake-corpus":
        add(f"eval-corpus={v}", ["eval", "score", "--corpus", v, "--out", "report"], files, lit(v))
for v, files, needle in (
    ("score-base", (), "init.from score-base.*hidden.size"),  # base's shape, tiny preset
    ("banjo", (), "init.from.*banjo"),
    ("notes.txt", ("notes.txt",), "init.from.*notes.txt"),
    ("empty-folder", ("empty-folder",), "init.from.*empty-folder"),
):
    add(
        f"train-init-from={v}",
        ["train", "score", "--corpus", "{corpus}", "--preset", "tiny", "--out", "run"]
        + ["--init-from", v],
        files,
        needle,
        corpus=True,
    )
for flags in (("--eval-every", "100"), ("--lr", "0.1", "--samples", "0"), ("--grad-checkpoint",)):
    add(  # the fine-tuning options would be passed over in silence by a --corpus run
        f"train-corpus-with-{flags[0].lstrip('-')}",
        ["train", "score", "--corpus", "{corpus}", "--preset", "tiny", "--out", "run", *flags],
        (),
        f"{flags[0]}.* for fine-tuning with --data",
        corpus=True,
    )
add(
    "train-resume-nothing",
    ["train", "score", "--corpus", "{corpus}", "--preset", "tiny", "--out", "run", "--resume"],
    (),
    "resume|checkpoint",
    corpus=True,
)
for v in ("1", "0.5", "100"):
    add(
        f"transcribe-min-above-max={v}",
        ["transcribe", "tune.wav", "--min-freq", "1000", "--max-freq", v],
        ("tune.wav",),
        "freq",
    )
add(
    "transcribe-multiple-bends-alone",
    ["transcribe", "tune.wav", "--multiple-pitch-bends"],
    ("tune.wav",),
    "pitch-bends",
)

add("generate-model=musicgen-junk", ["generate", "", "--model", "musicgen-junk"],
    ("musicgen-junk",), "musicgen-junk")  # fmt: skip

# ---- MusicGen-only and MIDI-only options in the wrong place ----------------------------------
add(
    "generate-melody-without-musicgen",
    ["generate", "", "--melody", "tune.wav"],
    ("tune.wav",),
    "melody",
)
add("generate-guidance-without-musicgen", ["generate", "", "--guidance", "3"], (), "guidance")
add("continue-midi-prompt", ["continue", "tune.mid", "--prompt", "rain"], ("tune.mid",), "prompt")
add(
    "continue-midi-duration", ["continue", "tune.mid", "--duration", "5"], ("tune.mid",), "duration"
)
add("continue-audio-prompt", ["continue", "tune.wav", "--prompt", "rain"], ("tune.wav",), "prompt")
add(
    "continue-audio-duration",
    ["continue", "tune.wav", "--duration", "5"],
    ("tune.wav",),
    "duration",
)
add(
    "continue-musicgen-bars",
    ["continue", "tune.wav", "--model", "musicgen-small", "--bars", "4"],
    ("tune.wav",),
    "bars",
)
add(
    "generate-musicgen-bars",
    ["generate", "rain", "--model", "musicgen-small", "--bars", "4"],
    (),
    "bars",
)
add(
    "generate-musicgen-melody-missing",
    ["generate", "rain", "--model", "musicgen-melody", "--melody", "gone.wav"],
    (),
    "gone.wav",
)
add(
    "generate-musicgen-melody-empty",
    ["generate", "rain", "--model", "musicgen-melody", "--melody", "empty.wav"],
    ("empty.wav",),
    "empty.wav",
)

# ---- prompts ---------------------------------------------------------------------------------
BIG = "a calm chorale " * 700_000  # 10.5 MB
add("generate-prompt-10MB", ["generate", BIG, "--formats", "mid"], (), "prompt")
add("generate-prompt-2001-chars", ["generate", "x" * 2001, "--formats", "mid"], (), "prompt")
add("prompt-prompt-10MB", ["prompt", BIG], (), "prompt")
add("prompt-prompt-2001-chars", ["prompt", "y" * 2001], (), "prompt")
add(
    "continue-musicgen-prompt-10MB",
    ["continue", "tune.wav", "--model", "musicgen-small", "--prompt", BIG],
    ("tune.wav",),
    "prompt",
)
add("generate-musicgen-prompt-10MB", ["generate", BIG, "--model", "musicgen-small"], (), "prompt")

# ---- input files -----------------------------------------------------------------------------
BAD_AUDIO = (
    "empty.wav truncated.wav header-only.wav header-lies.wav nan.wav inf.wav all-nan.wav "
    "midi-named.wav text-named.wav random.wav random.flac random.ogg random.mp3 "
    "riff-garbage.wav folder.wav"
).split()
SILENT_AUDIO = ("silence.wav", "one-sample.wav")
BAD_MIDI = (
    "broken.mid empty.mid header-only.mid tempo0.mid tpq0.mid tpq65535.mid note-at-2e31.mid "
    "long-note.mid no-notes.mid velocity0.mid text-named.mid folder.mid"
).split()
AUDIO_INPUT = {
    "transcribe": ["transcribe"],
    "harmonize": ["harmonize", "--formats", "mid"],
    "accompany": ["accompany", "--part", "drums"],
    "continue": ["continue", "--formats", "mid"],
}
MIDI_INPUT = {
    "continue": ["continue", "--bars", "1"],
    "add-tracks": ["add-tracks", "--parts", "bass"],
    "regenerate": ["regenerate", "--bars", "1"],
    "harmonize": ["harmonize", "--formats", "mid"],
    "restyle": ["restyle", "--style", "folk", "--formats", "mid"],
    "accompany": ["accompany", "--part", "bass"],
}


def _with_input(words, name):
    return [words[0], name, *words[1:]]


for cmd, words in AUDIO_INPUT.items():
    names = BAD_AUDIO + list(SILENT_AUDIO)
    for name in names:
        add(f"{cmd}-input={name}", _with_input(words, name), (name,), lit(name))
    add(f"{cmd}-input=missing.wav", _with_input(words, "missing.wav"), (), "missing.wav")
for cmd, words in MIDI_INPUT.items():
    for name in (*BAD_MIDI, "missing.mid"):
        files = () if name == "missing.mid" else (name,)
        add(f"{cmd}-input={name}", _with_input(words, name), files, lit(name))
for cmd in ("add-tracks", "harmonize", "restyle", "regenerate"):
    add(
        f"{cmd}-input=drums-only.mid",
        _with_input(MIDI_INPUT[cmd], "drums-only.mid"),
        ("drums-only.mid",),
        "drums-only.mid|drum|pitched",
    )
add(
    "continue-input=twenty-tracks.mid",
    ["continue", "twenty-tracks.mid", "--bars", "1"],
    ("twenty-tracks.mid",),
    "twenty-tracks.mid|track|part",
)
add(
    "regenerate-input=twenty-tracks.mid",
    ["regenerate", "twenty-tracks.mid", "--bars", "1"],
    ("twenty-tracks.mid",),
    "twenty-tracks.mid|track|part",
)
add(
    "add-tracks-input=twenty-tracks.mid",
    ["add-tracks", "twenty-tracks.mid"],
    ("twenty-tracks.mid",),
    "twenty-tracks.mid|track|part",
)
add(
    "restyle-input=tune.mid-one-part",
    ["restyle", "tune.mid", "--style", "folk"],
    ("tune.mid",),
    "part",
)
add(
    "restyle-input=tune.wav",
    ["restyle", "tune.wav", "--style", "folk"],
    ("tune.wav",),
    "tune.wav|audio",
)
add("add-tracks-input=tune.wav", ["add-tracks", "tune.wav"], ("tune.wav",), "tune.wav")
add(
    "regenerate-input=tune.wav",
    ["regenerate", "tune.wav", "--bars", "1"],
    ("tune.wav",),
    "tune.wav",
)
add("transcribe-input=tune.mid", ["transcribe", "tune.mid"], ("tune.mid",), "tune.mid")
add("transcribe-input=notes.txt", ["transcribe", "notes.txt"], ("notes.txt",), "notes.txt")

# ---- records for replay ----------------------------------------------------------------------
from tests.hostile.corpus import RAW_RECORDS, RECORD_TAMPERING  # noqa: E402

TAMPER_NEEDLE = {
    "seed-abc": "seed",
    "seed-2e70": "seed",
    "seed-negative": "seed",
    "seed-float": "seed",
    "seeds-disagree": "seed",
    "plan-seed-disagrees": "seed",
    "no-model": "model",
    "model-sha-wrong": "model",
    "model-unknown": "no-such-model",
    "engine-unknown": "banjo-9000|engine",
    "engine-number": "engine",
    "outputs-list": "outputs",
    "outputs-string": "outputs",
    "no-outputs": "outputs",
    "no-request": "request",
    "no-output": "output",
    "no-plan": "plan",
    "request-list": "request",
    "request-unknown-key": "banjo",
    "bars-huge": "bars",
    "bars-negative": "bars",
    "formats-unknown": "format|exe",
    "formats-string": "format",
    "bit-depth-7": "bit",
    "soundfont-gone": "gone.sf2",
    "soundfont-sha-gone": "gone.sf2",
    "soundfont-sha-bad": "sha256",
    "prompt-number": "prompt",
    "prompt-huge": "prompt",
    "empty-object": "generation.json",
    "json-list": "generation.json",
    "json-string": "generation.json",
    "json-number": "generation.json",
    "json-null": "generation.json",
}
for how in RECORD_TAMPERING:
    add(
        f"replay-record={how}",
        ["replay", f"{how}/generation.json"],
        (),
        TAMPER_NEEDLE[how],
        records=((how, "generate", how),),
    )
for how in RAW_RECORDS:
    add(
        f"replay-record={how}",
        ["replay", f"raw-{how}/generation.json"],
        (),
        "generation.json",
        records=((f"raw-{how}", "raw", how),),
    )
REPLAY_INPUT_NEEDLE = {
    "input-gone": "gone.mid",
    "input-changed": "changed.mid",
    "input-is-folder": "a-folder.mid",
    "input-not-midi": "not-midi.mid",
}
for base in ("harmonize", "accompany"):
    for how in ("input-gone", "input-changed", "input-is-folder", "input-not-midi"):
        add(
            f"replay-{base}-{how}",
            ["replay", f"{base}-{how}"],
            (),
            REPLAY_INPUT_NEEDLE[how],
            records=((f"{base}-{how}", base, how),),
        )
add(
    "replay-folder-without-record",
    ["replay", "empty-folder"],
    ("empty-folder",),
    "empty-folder|generation.json",
)
add("replay-missing", ["replay", "missing/generation.json"], (), "missing")
add("replay-text-file", ["replay", "notes.txt"], ("notes.txt",), "notes.txt")
add("replay-midi-file", ["replay", "tune.mid"], ("tune.mid",), "tune.mid")
add("replay-foreign-json", ["replay", "user.json"], ("user.json",), "user.json")

# ---- targets ---------------------------------------------------------------------------------
DOT = r"(?<![\w.])\.(?![\w./])|/here(?![\w/])|current folder"
DOTDOT = r"(?<![\w.])\.\.(?![\w./])|\{root\}(?![\w/])|parent"
HOME = r"\{home\}(?![\w/])|~|home"
SLASH = r"(?<![\w.~/-])/(?![\w.])|root folder"
FOLDER_COMMANDS = {
    "generate": (
        ["generate", "", "--formats", "mid", "--bars", "2", "--seed", "1"],
        (),
        "--overwrite",
    ),
    "harmonize": (
        ["harmonize", "tune.mid", "--formats", "mid", "--seed", "1"],
        ("tune.mid",),
        "--overwrite",
    ),
    "restyle": (
        ["restyle", "duet.mid", "--style", "folk", "--formats", "mid", "--seed", "1"],
        ("duet.mid",),
        "--overwrite",
    ),
    "accompany": (["accompany", "tune.mid", "--part", "drums"], ("tune.mid",), "--overwrite"),
    "continue-audio": (
        ["continue", "tune.wav", "--formats", "mid", "--seed", "1"],
        ("tune.wav",),
        "--overwrite",
    ),
    "replay": (["replay", "good/generation.json"], (), "--overwrite"),
    "convert": (["convert", "musicgen", "facebook/musicgen-small"], (), "--force"),
    "corpus-build": (["corpus", "build", "--limit", "1"], (), "--force"),
}
INPUT_OF = {
    "harmonize": "tune.mid",
    "restyle": "duet.mid",
    "accompany": "tune.mid",
    "continue-audio": "tune.wav",
    "replay": "good/generation.json",
}
for cmd, (base, files, flag) in FOLDER_COMMANDS.items():
    records = (("good", "generate", "valid"),) if cmd == "replay" else ()
    targets = [
        ("dot", ".", False, DOT, ()),
        ("dot+flag", ".", True, DOT, ()),
        ("dotdot", "..", False, DOTDOT, ()),
        ("dotdot+flag", "..", True, DOTDOT, ()),
        ("home", "{home}", False, HOME, ()),
        ("home+flag", "{home}", True, HOME, ()),
        ("slash", "/", False, SLASH, ()),
        ("foreign", "foreign", False, "foreign", ("foreign",)),
        ("foreign+flag", "foreign", True, "foreign", ("foreign",)),
        ("file", "notes.txt", False, "notes.txt", ("notes.txt",)),
        ("file+flag", "notes.txt", True, "notes.txt", ("notes.txt",)),
        ("midi-file+flag", "song.mid", True, "song.mid", ("song.mid",)),
        ("missing-parent", "missing/sub/out", False, "missing", ()),
        ("parent-is-file", "notes.txt/out", False, "notes.txt", ("notes.txt",)),
        ("parent-is-file+flag", "notes.txt/out", True, "notes.txt", ("notes.txt",)),
        ("readonly", "locked/out", False, "locked", ("locked",)),
    ]
    if cmd in INPUT_OF:
        targets.append(("the-input+flag", INPUT_OF[cmd], True, lit(INPUT_OF[cmd]), ()))
    if cmd == "generate":
        targets.append(("variations-into-file", "notes.txt", False, "notes.txt", ("notes.txt",)))
    seen = set()
    for name, out, with_flag, needle, extra in targets:
        if name in seen:
            continue
        seen.add(name)
        if cmd == "corpus-build" and name == "missing-parent":
            continue  # corpus build makes missing folders (by design)
        argv = [*base, "--out", out, *([flag] if with_flag else [])]
        if name == "variations-into-file":
            argv += ["--variations", "2"]
        add(
            f"{cmd}-out={name}",
            argv,
            (*files, *extra),
            needle,
            records=records,
            root_only_skip="readonly" if name == "readonly" else "",
        )
FILE_COMMANDS = {
    "sketch": (["sketch", "--bars", "2", "--seed", "1"], ()),
    "continue": (["continue", "tune.mid", "--bars", "1", "--seed", "1"], ("tune.mid",)),
    "add-tracks": (["add-tracks", "tune.mid", "--parts", "bass", "--seed", "1"], ("tune.mid",)),
    "regenerate": (["regenerate", "duet.mid", "--bars", "1", "--seed", "1"], ("duet.mid",)),
    "transcribe": (["transcribe", "tune.wav"], ("tune.wav",)),
}
for cmd, (base, files) in FILE_COMMANDS.items():
    for name, out, force, needle, extra in (
        ("dot", ".", False, DOT, ()),
        ("dot+force", ".", True, DOT, ()),
        ("dotdot+force", "..", True, DOTDOT, ()),
        ("home+force", "{home}", True, HOME, ()),
        ("slash+force", "/", True, SLASH, ()),
        ("folder.mid", "folder.mid", False, "folder.mid", ("folder.mid",)),
        ("folder.mid+force", "folder.mid", True, "folder.mid", ("folder.mid",)),
        ("users-midi", "song.mid", False, "song.mid", ("song.mid",)),
        ("users-midi+force", "song.mid", True, "song.mid", ("song.mid",)),
        ("users-json+force", "user.mid", True, "user.json", ("user.json",)),
        ("text-file+force", "notes.txt", True, "notes.txt", ("notes.txt",)),
        ("missing-parent", "missing/x.mid", False, "missing", ()),
        ("parent-is-file", "notes.txt/x.mid", True, "notes.txt", ("notes.txt",)),
        ("home-music+force", "{home}/Music/my-song.mid", True, "my-song.mid", ()),
        ("readonly", "locked/x.mid", False, "locked", ("locked",)),
        ("the-input+force", base[1], True, lit(base[1]), ()),
    ):
        if cmd == "sketch" and name == "the-input+force":
            continue
        argv = [*base, "--out", out, *(["--force"] if force else [])]
        add(
            f"{cmd}-out={name}",
            argv,
            (*files, *extra),
            needle,
            root_only_skip="readonly" if name == "readonly" else "",
        )
for name, out, needle, extra in (
    ("users-json", "user", "user.json", ("user.json",)),
    ("missing-parent", "missing/report", "missing", ()),
    ("parent-is-file", "notes.txt/report", "notes.txt", ("notes.txt",)),
    ("dot", ".", DOT, ()),
    ("empty", "", "out", ()),
):
    add(f"eval-out={name}", [*EVAL[:-2], "--out", out], extra, needle, corpus=True)
for name, out, needle, extra in (
    ("dot", ".", DOT, ()),
    ("home", "{home}", HOME, ()),
    ("foreign", "foreign", "foreign", ("foreign",)),
    ("file", "notes.txt", "notes.txt", ("notes.txt",)),
    ("midi-file", "song.mid", "song.mid", ("song.mid",)),
    ("parent-is-file", "notes.txt/run", "notes.txt", ("notes.txt",)),
):
    add(
        f"train-out={name}",
        [
            "train",
            "score",
            "--corpus",
            "{corpus}",
            "--preset",
            "tiny",
            "--max-steps",
            "1",
            "--out",
            out,
        ],
        extra,
        needle,
        corpus=True,
    )

# ---- the library ---------------------------------------------------------------------------
# The library is $DISCO_MUSICA_HOME/library (outside the watched folder) unless --library names
# one here; tests/library/test_library_cli.py checks that a refused command leaves it unchanged.
NO_PIECE = "(zzzzzzzz|no library)"
for id_, argv, files, needle in (
    ("show-unknown", ["show", "zzzzzzzz"], (), NO_PIECE),
    ("rate-7", ["rate", "zzzzzzzz", "7"], (), "rating"),
    ("rate-word", ["rate", "zzzzzzzz", "five"], (), "five"),
    ("tag-control", ["tag", "zzzzzzzz", "bell\x07"], (), "control"),
    ("tag-comma", ["tag", "zzzzzzzz", "a,b"], (), "comma"),
    ("rename-empty", ["rename", "zzzzzzzz", "  "], (), "title"),
    ("export-unknown", ["export", "zzzzzzzz", "--to", "user.json"], ("user.json",), NO_PIECE),
    ("export-format", ["export", "zzzzzzzz", "--to", "x", "--formats", "docx"], (), "docx"),
    ("import-file", ["import", "notes.txt"], ("notes.txt",), "notes.txt"),
    ("import-missing", ["import", "missing"], (), "missing"),
    ("list-tempo-backwards", ["list", "--tempo", "90-60"], (), "tempo"),
    ("list-tempo-word", ["list", "--tempo", "fast"], (), "tempo"),
    ("list-since-word", ["list", "--since", "someday"], (), "someday"),
    ("list-limit-negative", ["list", "--limit", "-1"], (), "limit"),
    ("list-sort-unknown", ["list", "--sort", "colour"], (), "colour"),
    ("list-library-file", ["list", "--library", "notes.txt"], ("notes.txt",), "notes.txt"),
    ("search-empty", ["search", " "], (), "words"),
    ("lineage-unknown", ["lineage", "zzzzzzzz"], (), NO_PIECE),
    ("replay-unknown", ["replay", "zzzzzzzz"], (), NO_PIECE),
    ("restore-unknown", ["restore", "zzzzzzzz"], (), NO_PIECE),
    ("delete-unknown", ["delete", "zzzzzzzz"], (), NO_PIECE),
    ("backup-existing", ["backup", "user.json"], ("user.json",), "user.json"),
    ("collection-no-name", ["collection", "add"], (), "NAME"),
):
    add(f"library-{id_}", ["library", *argv], files, needle)
for name in ("empty.wav", "text-named.wav", "header-only.wav", "nan.wav"):
    add(f"detect-{name}", ["detect", name], (name,), lit(name))
add("detect-missing", ["detect", "missing.wav"], (), "missing")
add(
    "detect-library-file",
    ["detect", "tune.wav", "--library", "notes.txt"],
    ("tune.wav", "notes.txt"),
    "notes.txt",
)
add("sketch-library-file", ["sketch", "--library", "notes.txt"], ("notes.txt",), "notes.txt")
add(
    "generate-library-file",
    ["generate", "a chorale", "--library", "notes.txt"],
    ("notes.txt",),
    "notes.txt",
)

# ---- the studio -----------------------------------------------------------------------------
# ``studio`` opens a terminal app: without a terminal it refuses; with one (faked: the app is
# never started) a bad --library or --model must stop it before the app opens, in one line.
add("studio-no-terminal", ["studio"], (), "needs a terminal", terminal=False)
add(
    "studio-no-terminal-library-file",
    ["studio", "--library", "notes.txt"],
    ("notes.txt",),
    "needs a terminal",
    terminal=False,
)
add("studio-library-file", ["studio", "--library", "notes.txt"], ("notes.txt",), "notes.txt",
    terminal=True)  # fmt: skip
add("studio-library-sqlite-file", ["studio", "--library", "photos.db"], ("photos.db",),
    "photos.db", terminal=True)  # fmt: skip
add("studio-library-midi-file", ["studio", "--library", "song.mid"], ("song.mid",), "song.mid",
    terminal=True)  # fmt: skip
add(
    "studio-library-foreign-sqlite",
    ["studio", "--library", "foreign-library"],
    ("foreign-library",),
    "another program",
    terminal=True,
)
add(
    "studio-library-parent-is-file",
    ["studio", "--library", "notes.txt/lib"],
    ("notes.txt",),
    "notes.txt",
    terminal=True,
)
add(
    "studio-model=no-such-model",
    ["studio", "--model", "no-such-model"],
    (),
    "no-such-model",
    terminal=True,
)
add(
    "studio-model=notes.txt",
    ["studio", "--model", "notes.txt"],
    ("notes.txt",),
    "notes.txt",
    terminal=True,
)
add(
    "studio-out=notes.txt",
    ["studio", "--out", "notes.txt"],
    ("notes.txt",),
    "notes.txt",
    terminal=True,
)

# ---- data (manage: show, tag, edit, split, versions, diff, checkout) -----------------------------
for id_, argv, files, needle in (
    ("show-no-such", ["show", "no-such-dataset"], (), "no dataset 'no-such-dataset'"),
    ("show-file", ["show", "./notes.txt"], ("notes.txt",), "notes.txt"),
    ("show-plain-folder", ["show", "./empty-folder"], ("empty-folder",), "not a dataset"),
    ("show-bad-name", ["show", "no such name!"], (), "not a dataset name"),
    ("show-bad-version", ["show", "./dataset", "--version", "ffff00"], ("dataset",), "no version"),
    ("show-no-item", ["show", "./dataset", "zzz.wav"], ("dataset",), "no item 'zzz.wav'"),
    ("show-limit=-1", ["show", "./dataset", "--limit", "-1"], ("dataset",), opt("limit")),
    ("tag-no-item", ["tag", "./dataset", "x", "--items", "q.wav"], ("dataset",), "q.wav"),
    (
        "edit-bad-field",
        ["edit", "./dataset", "all", "--set", "colour=red"],
        ("dataset",),
        "unknown metadata field 'colour'",
    ),
    ("edit-tempo=fast", ["edit", "./dataset", "all", "--set", "tempo=fast"], ("dataset",), "tempo"),
    (
        "edit-tempo=1e300",
        ["edit", "./dataset", "all", "--set", "tempo=1e300"],
        ("dataset",),
        "tempo",
    ),
    ("edit-tempo=nan", ["edit", "./dataset", "all", "--set", "tempo=nan"], ("dataset",), "tempo"),
    ("edit-no-equals", ["edit", "./dataset", "all", "--set", "genre"], ("dataset",), "FIELD=VALUE"),
    ("edit-nothing", ["edit", "./dataset", "all"], ("dataset",), "say what to change"),
    ("edit-bad-split", ["edit", "./dataset", "all", "--split", "dev"], ("dataset",), "split"),
    ("remove-no-item", ["remove", "./dataset", "nope"], ("dataset",), "nope"),
    ("split-ratios=abc", ["split", "./dataset", "--ratios", "abc"], ("dataset",), "ratios"),
    ("split-ratios=0,0,0", ["split", "./dataset", "--ratios", "0,0,0"], ("dataset",), "ratio"),
    ("split-ratios=-1,1,1", ["split", "./dataset", "--ratios", "-1,1,1"], ("dataset",), "ratio"),
    ("split-ratios=nan", ["split", "./dataset", "--ratios", "nan,1,1"], ("dataset",), "ratio"),
    ("split-seed=-1", ["split", "./dataset", "--seed", "-1"], ("dataset",), opt("seed")),
    ("split-seed=huge", ["split", "./dataset", "--seed", HUGE], ("dataset",), opt("seed")),
    ("split-stratify", ["split", "./dataset", "--stratify", "colour"], ("dataset",), "stratify"),
    ("split-empty", ["split", "./empty-ds"], (), "no dataset"),
    ("versions-file", ["versions", "./notes.txt"], ("notes.txt",), "notes.txt"),
    ("diff-bad", ["diff", "./dataset", "HEAD~9"], ("dataset",), "fewer than 9"),
    ("diff-garbage", ["diff", "./dataset", "HEAD~x"], ("dataset",), "not a version"),
    ("checkout-bad", ["checkout", "./dataset", "0123abcd"], ("dataset",), "no version"),
    ("checkout-foreign", ["checkout", "./foreign", "HEAD"], ("foreign",), "not a dataset"),
):
    add(f"data-{id_}", ["data", *argv], files, needle)
# (end of section: data (manage: show, tag, edit, split, versions, diff, checkout))

# ---- data import ---------------------------------------------------------------------------------
# A zip-slip archive and `s3://` with no server are refused in tests/data/test_import*.py (the
# corpus has no archive, and a case cannot set AWS_ENDPOINT_URL).
_IMPORT = ("data", "import")
add("data-import-missing", [*_IMPORT, "missing.wav", "--into", "ds"], (), r"missing\.wav: no such")
add("data-import-empty", [*_IMPORT, "empty.wav", "--into", "ds"], ["empty.wav"], r"empty file")
add(
    "data-import-garbage-wav",
    [*_IMPORT, "random.wav", "--into", "ds"],
    ["random.wav"],
    r"random\.wav: not audio",
)
add(
    "data-import-text",
    [*_IMPORT, "notes.txt", "--into", "ds"],
    ["notes.txt"],
    r"unknown file type \(\.txt\)",
)
add(
    "data-import-empty-folder",
    [*_IMPORT, "folder.wav", "--into", "ds"],
    ["folder.wav"],
    r"found no files to import",
)
add(
    "data-import-into-a-file",
    [*_IMPORT, "tune.wav", "--into", "notes.txt"],
    ["tune.wav", "notes.txt"],
    r"notes\.txt is a file",
)
add(
    "data-import-into-a-file-path",
    [*_IMPORT, "tune.wav", "--into", "./notes.txt"],
    ["tune.wav", "notes.txt"],
    r"notes\.txt is a file",
)
add("data-import-unknown-scheme", [*_IMPORT, "foo://x", "--into", "ds"], (), r"foo://")
add(
    "data-import-all-bad",
    [*_IMPORT, "foo://x", "missing.mid", "empty.wav", "--into", "ds"],
    ["empty.wav"],
    r"nothing could be imported: all 3 files",
)
add("data-import-no-into", [*_IMPORT, "tune.wav"], ["tune.wav"], opt("--into"))
add("data-import-no-source", [*_IMPORT, "--into", "ds"], (), r"SOURCE|source")
# (end of section: data import)

# ---- data prep audio -----------------------------------------------------------------------------
# Options are checked before the dataset is opened, so "nope" (no such dataset) is enough.
numbers(
    "data-prep-audio",
    ["data", "prep", "audio", "nope"],
    (),
    (
        Num("--sample-rate", int, 8000, 192000, extra=("7999", "192001", "44100.5")),
        Num("--loudness", float, -70, -5, extra=("-71", "-4.9")),
        Num("--peak", float, -20, 0, extra=("-21", "0.5")),
        Num("--trim-db", float, 10, 100, extra=("9", "101")),
        Num("--workers", int, 1, 64, extra=("65",)),
    ),
)
# --denoise takes an optional STRENGTH: "-inf" after it would read as another option, so
# these give the value with "=".
for v in Num("--denoise", float, 0, 1, lo_open=True, extra=("1.5",)).invalid():
    add(
        f"data-prep-audio-denoise={_vid(v)}",
        ["data", "prep", "audio", "nope", f"--denoise={v}"],
        (),
        opt("--denoise"),
    )
for id_, argv, files, needle in (
    ("no-dataset", ["nope"], (), "no dataset 'nope'"),
    ("file-as-dataset", ["./notes.txt"], ("notes.txt",), r"notes\.txt is a file"),
    ("wav-as-dataset", ["./tune.wav"], ("tune.wav",), r"tune\.wav is a file"),
    ("plain-folder", ["./empty-folder"], ("empty-folder",), "not a dataset"),
    ("foreign-folder", ["./foreign"], ("foreign",), "not a dataset"),
    ("no-such-item", ["./dataset", "--items", "zzzz"], ("dataset",), "no item 'zzzz'"),
    ("not-audio", ["./dataset", "--items", "b.mid"], ("dataset",), r"b\.mid is a midi item"),
    ("segment=0-10", ["nope", "--segment", "0-10"], (), opt("--segment")),
    ("segment=10-5", ["nope", "--segment", "10-5"], (), opt("--segment")),
    ("segment=5-121", ["nope", "--segment", "5-121"], (), opt("--segment")),
    ("segment=5", ["nope", "--segment", "5"], (), opt("--segment")),
    ("segment=abc", ["nope", "--segment", "abc"], (), opt("--segment")),
    ("segment=empty", ["nope", "--segment", ""], (), opt("--segment")),
    ("segment=nan", ["nope", "--segment", "nan-10"], (), opt("--segment")),
    ("segment=huge", ["nope", "--segment", f"5-{HUGE}"], (), opt("--segment")),
    ("segment=neg", ["nope", "--segment=-5-10"], (), opt("--segment")),
    ("bit-depth=8", ["nope", "--bit-depth", "8"], (), opt("--bit-depth")),
    ("bit-depth=32", ["nope", "--bit-depth", "32"], (), opt("--bit-depth")),
    ("bit-depth=empty", ["nope", "--bit-depth", ""], (), opt("--bit-depth")),
    ("channels=quad", ["nope", "--channels", "quad"], (), opt("--channels")),
    ("cut-at=bars", ["nope", "--cut-at", "bars"], (), opt("--cut-at")),
    ("stems=spleeter", ["nope", "--stems", "spleeter"], (), opt("--stems")),
    # demucs is not installed here: the line says how to install it (else: no dataset)
    ("stems=demucs", ["nope", "--stems", "demucs"], (), r"pip install demucs|no dataset 'nope'"),
):
    add(f"data-prep-audio-{id_}", ["data", "prep", "audio", *argv], files, needle)
# (end of section: data prep audio)

# ---- data prep midi ------------------------------------------------------------------------------
numbers(
    "data-prep-midi",
    ["data", "prep", "midi", "nope", "--quantize", "16"],
    (),
    (
        Num("--resolution", int, 24, 32767, extra=("23", "32768", "1.5")),
        Num("--swing", float, 0, 0.75, extra=("0.8",)),
        Num("--strength", float, 0, 1, extra=("1.5",)),
    ),
)
for id_, argv, files, needle in (
    ("no-dataset", ["nope"], (), "no dataset 'nope'"),
    ("file-as-dataset", ["./notes.txt"], ("notes.txt",), "notes.txt is a file"),
    ("midi-as-dataset", ["./song.mid"], ("song.mid",), "song.mid is a file"),
    ("plain-folder", ["./empty-folder"], ("empty-folder",), "not a dataset"),
    ("foreign-folder", ["./foreign"], ("foreign",), "not a dataset"),
    ("no-such-item", ["./dataset", "--items", "zzzz"], ("dataset",), "no item 'zzzz'"),
    ("not-midi", ["./dataset", "--items", "*.wav"], ("dataset",), "a.wav is an audio item"),
    ("quantize=7", ["nope", "--quantize", "7"], (), opt("--quantize")),
    ("quantize=1/7", ["nope", "--quantize", "1/7"], (), opt("--quantize")),
    ("quantize=0", ["nope", "--quantize", "0"], (), opt("--quantize")),
    ("quantize=abc", ["nope", "--quantize", "abc"], (), opt("--quantize")),
    ("quantize=empty", ["nope", "--quantize", ""], (), opt("--quantize")),
    ("quantize=huge", ["nope", "--quantize", HUGE], (), opt("--quantize")),
    ("swing-no-grid", ["nope", "--swing", "0.5"], (), "--swing needs a grid"),
    ("strength-no-grid", ["nope", "--strength", "0.5"], (), "--strength needs a grid"),
    ("swing-triplets", ["nope", "--quantize", "12", "--swing", "0.3"], (), "straight grid"),
    ("transpose=0", ["nope", "--transpose", "0"], (), opt("--transpose")),
    ("transpose=13", ["nope", "--transpose", "13"], (), opt("--transpose")),
    ("transpose=-13..0", ["nope", "--transpose", "-13..0"], (), opt("--transpose")),
    ("transpose=3..-3", ["nope", "--transpose", "3..-3"], (), opt("--transpose")),
    ("transpose=huge", ["nope", "--transpose", f"-{HUGE}..{HUGE}"], (), opt("--transpose")),
    ("transpose=abc", ["nope", "--transpose", "abc"], (), opt("--transpose")),
    ("transpose=empty", ["nope", "--transpose", ""], (), opt("--transpose")),
    ("transpose=1.5", ["nope", "--transpose", "1.5"], (), opt("--transpose")),
    ("tempo-scale=1", ["nope", "--tempo-scale", "1"], (), opt("--tempo-scale")),
    ("tempo-scale=0", ["nope", "--tempo-scale", "0"], (), opt("--tempo-scale")),
    ("tempo-scale=-1", ["nope", "--tempo-scale", "-1"], (), opt("--tempo-scale")),
    ("tempo-scale=3", ["nope", "--tempo-scale", "0.9,3"], (), opt("--tempo-scale")),
    ("tempo-scale=nan", ["nope", "--tempo-scale", "nan"], (), opt("--tempo-scale")),
    ("tempo-scale=inf", ["nope", "--tempo-scale", "inf"], (), opt("--tempo-scale")),
    ("tempo-scale=abc", ["nope", "--tempo-scale", "abc"], (), opt("--tempo-scale")),
    ("tempo-scale=empty", ["nope", "--tempo-scale", ""], (), opt("--tempo-scale")),
    ("model=nope", ["nope", "--tokenize", "--model", "no-such-model"], (), "no-such-model"),
    ("model=file", ["nope", "--tokenize", "--model", "./notes.txt"], ("notes.txt",), "notes.txt"),
):
    add(f"data-prep-midi-{id_}", ["data", "prep", "midi", *argv], files, needle)
# (end of section: data prep midi)

# ---- data prep image/video -----------------------------------------------------------------------
numbers(
    "data-prep-video",
    ["data", "prep", "video", "nope"],
    (),
    (Num("--fps", float, 0, 60, lo_open=True, extra=("60.5", "1000")),),
)
for kind in ("image", "video"):
    for id_, argv, files, needle in (
        ("no-dataset", ["nope"], (), "no dataset 'nope'"),
        ("file-as-dataset", ["./notes.txt"], ("notes.txt",), "notes.txt is a file"),
        ("plain-folder", ["./empty-folder"], ("empty-folder",), "not a dataset"),
        ("foreign-folder", ["./foreign"], ("foreign",), "not a dataset"),
        ("none-of-kind", ["./dataset"], ("dataset",), f"no {kind}"),
        ("no-such-item", ["./dataset", "--items", "zzzz"], ("dataset",), "no item 'zzzz'"),
        ("not-of-kind", ["./dataset", "--items", "*.wav"], ("dataset",), f"is an? {kind}"),
    ):
        add(f"data-prep-{kind}-{id_}", ["data", "prep", kind, *argv], files, needle)
for id_, argv, needle in (
    ("size=0x512", ["--size", "0x512"], opt("--size")),
    ("size=512x0", ["--size", "512x0"], opt("--size")),
    ("size=-5x5", ["--size", "-5x5"], opt("--size")),
    ("size=huge", ["--size", f"{HUGE}x{HUGE}"], opt("--size")),
    ("size=abc", ["--size", "abc"], opt("--size")),
    ("size=empty", ["--size", ""], opt("--size")),
    ("size=1x2x3", ["--size", "1x2x3"], opt("--size")),
    ("size=nanxnan", ["--size", "nanxnan"], opt("--size")),
    ("size=1.5x2", ["--size", "1.5x2"], opt("--size")),
    ("fit=stretch", ["--fit", "stretch"], opt("--fit")),
    ("format=gif", ["--format", "gif"], opt("--format")),
    ("format=empty", ["--format", ""], opt("--format")),
):
    add(f"data-prep-image-{id_}", ["data", "prep", "image", "nope", *argv], (), needle)
for id_, argv, needle in (
    ("frame-size=0x0", ["--frame-size", "0x0"], opt("--frame-size")),
    ("frame-size=abc", ["--frame-size", "abc"], opt("--frame-size")),
    ("frame-size=huge", ["--frame-size", "99999x99999"], opt("--frame-size")),
    ("frame-size=empty", ["--frame-size", ""], opt("--frame-size")),
    ("fps-and-scenes", ["--fps", "2", "--scenes"], "--fps or --scenes"),
):
    add(f"data-prep-video-{id_}", ["data", "prep", "video", "nope", *argv], (), needle)
# (end of section: data prep image/video)

# ---- data get and data stats ---------------------------------------------------------------------
# ``data get`` must refuse before anything is downloaded or made: no case here reaches the
# network (each stops at its arguments, its target, its cache folder or the missing --yes).
add("data-get-unknown-name", ["data", "get", "imagenet", "--into", "x"], (), "imagenet")
add("data-get-no-into", ["data", "get", "maestro"], (), opt("--into"))
add(
    "data-get-no-terminal-no-yes",
    ["data", "get", "maestro", "--into", "piano"],
    (),
    "add --yes",
    terminal=False,
)
add(
    "data-get-no-terminal-no-yes-unknown-size",
    ["data", "get", "lakh", "--into", "pop"],
    (),
    "add --yes.*size is not published",
    terminal=False,
)
add(
    "data-get-into-a-file",
    ["data", "get", "maestro", "--into", "./notes.txt", "--yes"],
    ("notes.txt",),
    lit("notes.txt") + ".*not a dataset",
)
add(
    "data-get-into-a-file-music21",
    ["data", "get", "music21", "--into", "./notes.txt"],
    ("notes.txt",),
    lit("notes.txt") + ".*not a dataset",
)
add(
    "data-get-into-a-read-only-folder",
    ["data", "get", "maestro", "--into", "./locked", "--yes"],
    ("locked",),
    lit("locked") + ".*cannot be written",
    root_only_skip="read-only",
)
add(
    "data-get-cache-is-a-file",
    ["data", "get", "maestro", "--into", "piano", "--cache", "notes.txt", "--yes"],
    ("notes.txt",),
    opt("--cache") + ".*notes.txt",
)
add(
    "data-get-cache-under-a-file",
    ["data", "get", "maestro", "--into", "piano", "--cache", "notes.txt/sub", "--yes"],
    ("notes.txt",),
    opt("--cache") + ".*notes.txt",
)
for _v in ("0", "-1", "abc", "", "1.5", HUGE):
    add(
        f"data-get-limit-{_vid(_v)}",
        ["data", "get", "music21", "--into", "x", "--limit", _v],
        (),
        opt("--limit"),
    )
add(
    "data-get-music21-only-matches-nothing",
    ["data", "get", "music21", "--into", "chorales", "--only", "no-such-folder/*"],
    (),
    lit("no-such-folder/*"),
)
add("data-stats-missing", ["data", "stats", "nowhere"], (), "no dataset 'nowhere'")
add("data-stats-a-file", ["data", "stats", "./notes.txt"], ("notes.txt",), lit("notes.txt"))
add(
    "data-stats-a-folder-not-a-dataset",
    ["data", "stats", "./folder.wav"],
    ("folder.wav",),
    lit("folder.wav") + ".*not a dataset",
)
add("data-stats-bad-name", ["data", "stats", "my songs!"], (), "not a dataset name")
for _v in ("0", "0.4", "1.01", "nan", "inf", "abc", ""):
    add(
        f"data-stats-threshold-{_vid(_v)}",
        ["data", "stats", "x", "--threshold", _v],
        (),
        opt("--threshold"),
    )
add("data-stats-no-dataset", ["data", "stats"], (), "DATASET|dataset")
# (end of section: data get and data stats)

# ---- data export and load-hf ---------------------------------------------------------------------
_DS = ("dataset",)  # the corpus dataset (a WAV and a MIDI item)
_TXT = ("dataset", "notes.txt")
for id_, argv, files, needle in (
    ("no-dataset", ["nope", "--to", "out"], (), "no dataset 'nope'"),
    ("file-as-dataset", ["./notes.txt", "--to", "out"], ("notes.txt",), "notes.txt"),
    ("plain-folder", ["./empty-folder", "--hf", "out"], ("empty-folder",), "not a dataset"),
    ("foreign-folder", ["./foreign", "--to", "out"], ("foreign",), "not a dataset"),
    ("no-target", ["./dataset"], _DS, "--to --hf"),
    ("both-targets", ["./dataset", "--to", "a", "--hf", "b"], _DS, "not allowed"),
    ("to-not-empty", ["./dataset", "--to", "foreign"], (*_DS, "foreign"), "foreign exists"),
    ("hf-not-empty", ["./dataset", "--hf", "dataset"], _DS, "not empty"),
    ("to-file", ["./dataset", "--to", "notes.txt"], _TXT, "notes.txt is a file"),
    ("hf-file", ["./dataset", "--hf", "notes.txt"], _TXT, "notes.txt is a file"),
    ("to-here", ["./dataset", "--to", "."], _DS, "current folder"),
    ("to-parent", ["./dataset", "--to", ".."], _DS, "holds the current folder"),
    ("to-home", ["./dataset", "--hf", "{home}"], _DS, "home folder"),
    ("to-root", ["./dataset", "--to", "/"], _DS, "/ is not a new folder"),
    ("under-file", ["./dataset", "--to", "notes.txt/x"], _TXT, "notes.txt is a file"),
    ("bad-version", ["./dataset", "--to", "o", "--version", "zz"], _DS, "no version 'zz'"),
    ("far-version", ["./dataset", "--hf", "o", "--version", "HEAD~9"], _DS, "fewer than 9"),
    ("push-no-hf", ["./dataset", "--to", "o", "--push", "me/x"], _DS, opt("--push")),
    ("public-no-push", ["./dataset", "--hf", "o", "--public"], _DS, opt("--public")),
    ("push-bad-name", ["./dataset", "--hf", "o", "--push", "no slash"], _DS, opt("--push")),
    ("push-empty", ["./dataset", "--hf", "o", "--push", ""], _DS, opt("--push")),
    ("push-offline", ["./dataset", "--hf", "o", "--push", "me/x"], _DS, "offline"),
):
    add(f"data-export-{id_}", ["data", "export", *argv], files, needle)
for id_, argv, files, needle in (
    ("file", ["notes.txt", "--into", "x"], ("notes.txt",), "notes.txt is a file"),
    ("empty-folder", ["empty-folder", "--into", "x"], ("empty-folder",), "not a saved"),
    ("foreign-folder", ["foreign", "--into", "x"], ("foreign",), "foreign is not a saved"),
    ("fake-corpus", ["fake-corpus", "--into", "x"], ("fake-corpus",), "not a saved"),
    ("our-dataset", ["dataset", "--into", "x"], _DS, "dataset is not a saved"),
    ("home", ["{home}", "--into", "x"], (), "not a saved"),
    ("parent", ["..", "--into", "x"], (), "not a saved"),
    ("missing", ["gone-folder", "--into", "x"], (), "no folder 'gone-folder'"),
    ("empty-name", ["", "--into", "x"], (), "give a saved dataset folder"),
    ("hub-offline", ["someone/nothing", "--into", "x"], (), "someone/nothing"),
    ("hf-url", ["hf://datasets/someone/nothing", "--into", "x"], (), "someone/nothing"),
    ("hf-url-bad", ["hf://datasets/../../etc", "--into", "x"], (), "not a Hub dataset"),
    ("no-into", ["empty-folder"], ("empty-folder",), opt("--into")),
):
    add(f"data-load-hf-{id_}", ["data", "load-hf", *argv], files, needle)
# (end of section: data export and load-hf)

# ---- train score --data, train fuse (fine-tuning on your own music) ---------------------------
_FT = ["train", "score", "--data", "./dataset", "--name", "mine"]
numbers(
    "finetune",
    _FT,
    ("dataset",),
    (
        Num("--max-steps", int, 1, 10**7),
        Num("--epochs", float, 0.01, 10_000),
        Num("--lr", float, 1e-8, 1),
        Num("--min-lr", float, 0, 1),
        Num("--warmup", int, 0, 10**7),
        Num("--weight-decay", float, 0, 1),
        Num("--grad-clip", float, 0, 1e6),
        Num("--accumulate", int, 1, 1024),
        Num("--batch-tokens", int, 128, 2**20),
        Num("--label-smoothing", float, 0, 0.99),
        Num("--rank", int, 1, 1024),
        Num("--alpha", float, 1e-6, 1e6, lo_open=True),
        Num("--lora-dropout", float, 0, 0.99),
        Num("--dropout", float, 0, 0.99),
        Num("--eval-every", int, 1, 10**7),
        Num("--patience", int, 1, 10_000),
        Num("--min-delta", float, 0, 100),
        Num("--checkpoint-every", int, 1, 10**7),
        Num("--checkpoint-minutes", float, 0.1, 7 * 24 * 60),
        Num("--keep", int, 0, 1000),
        Num("--samples", int, 0, 64),
        SEED,
    ),
)
for id_, argv, files, needle in (
    ("both", [*_FT, "--corpus", "x"], ("dataset",), "not both"),
    ("neither", ["train", "score", "--name", "m"], (), "--data"),
    ("no-name", ["train", "score", "--data", "./dataset"], ("dataset",), "--name"),
    ("no-dataset", ["train", "score", "--data", "nothing-here", "--name", "m"], (), "no dataset"),
    ("one-piece", _FT, ("dataset",), "needs at least 2 pieces"),
    (
        "plain-folder",
        ["train", "score", "--data", "./empty-folder", "--name", "m"],
        ("empty-folder",),
        "not a dataset",
    ),
    (
        "bad-name",
        ["train", "score", "--data", "./dataset", "--name", "a b"],
        ("dataset",),
        "model name",
    ),
    (
        "shipped-name",
        ["train", "score", "--data", "./dataset", "--name", "score-base"],
        ("dataset",),
        "ships",
    ),
    ("from-ghost", [*_FT, "--from", "ghost"], ("dataset",), "no trained model named 'ghost'"),
    ("resume-nothing", [*_FT, "--resume"], ("dataset",), "no trained model named 'mine'"),
    ("base-ghost", [*_FT, "--base", "ghost"], ("dataset",), "ghost"),
    ("preset", [*_FT, "--preset", "base"], ("dataset",), "unknown preset 'base'"),
    ("preset=empty", [*_FT, "--preset", ""], ("dataset",), "unknown preset ''"),
    ("targets", [*_FT, "--targets", "qkv"], ("dataset",), "unknown LoRA target 'qkv'"),
    ("lora-layers=0", [*_FT, "--lora-layers", "0"], ("dataset",), opt("--lora-layers")),
    ("method", [*_FT, "--method", "dpo"], ("dataset",), opt("--method")),
    ("optimizer", [*_FT, "--optimizer", "adagrad"], ("dataset",), opt("--optimizer")),
    ("schedule", [*_FT, "--schedule", "step"], ("dataset",), opt("--schedule")),
    ("init-from", [*_FT, "--init-from", "score-base"], ("dataset",), "--from"),
    ("version", [*_FT, "--version", "ffff00"], ("dataset",), "no version"),
    ("fuse-ghost", ["train", "fuse", "ghost", "--name", "g2"], (), "ghost"),
    ("fuse-bad-name", ["train", "fuse", "ghost", "--name", "../x"], (), "model name"),
    ("generate-tag", ["generate", "--model", "ghost@step-5", "a waltz"], (), "ghost@step-5"),
):
    add(f"finetune-{id_}", argv, files, needle)
# (end of section: train score --data, train fuse)

# ---- adapt (a preference fine-tune from your ratings) -----------------------------------------
for id_, argv, needle in (
    ("no-name", [], "NAME"),
    ("unknown", ["nosuch"], "no trained model named 'nosuch'.*--from"),
    ("beta=0", ["x", "--beta", "0"], opt("--beta")),
    ("beta=nan", ["x", "--beta", "nan"], opt("--beta")),
    ("steps=0", ["x", "--max-steps", "0"], opt("--max-steps")),
    ("steps=huge", ["x", "--max-steps", HUGE], opt("--max-steps")),
    ("auto=-1", ["x", "--auto", "-1"], opt("--auto")),
    ("method", ["x", "--method", "ppo"], opt("--method")),
    ("lr=2", ["x", "--lr", "2"], opt("--lr")),
    ("min-ratings=0", ["x", "--min-ratings", "0"], opt("--min-ratings")),
    ("sft-weight=-1", ["x", "--sft-weight", "-1"], opt("--sft-weight")),
    ("seed=-1", ["x", "--seed", "-1"], opt("--seed")),
    ("from-unknown", ["x", "--from", "nosuch-model"], "unknown score model 'nosuch-model'"),
    ("shipped-name", ["score-base", "--from", "score-base"], "name of a model Disco-Musica ships"),
    ("bad-name", ["bad!name", "--from", "score-base"], "the model name 'bad!name' must be"),
    (
        "no-library",
        ["x", "--from", "score-base", "--library", "/nonexistent/lib"],
        "no library at /nonexistent/lib",
    ),
):
    add(f"adapt-{id_}", ["adapt", *argv], (), needle)
# (end of section: adapt)

IDS = [c.id for c in CASES]
assert len(IDS) == len(set(IDS)), sorted({i for i in IDS if IDS.count(i) > 1})
assert len(CASES) >= 300, len(CASES)

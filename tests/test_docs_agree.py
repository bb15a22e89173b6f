"""What `--help` and the docs say about ranges and defaults is what the code uses.

Three sources are held together: the constants the code checks (engine.names and the modules
that take theirs from it, or keep a copy), the help of every command (parsed from
`engine.cli.build_parser()`), and the numbers the docs state. A check of behaviour backs
each important one (a value just outside the range is refused, the default is what runs).
And the progress callbacks of a real generation count bars of the whole piece, forwards.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from engine import cli, names
from engine.audio import render
from engine.cli import common
from engine.pipelines import accompany, compose, prompt, transcribe, workflows
from engine.pipelines import musicgen as musicgen_api
from engine.progress import ProgressLog
from engine.symbolic import score_api
from engine.symbolic.tokenizer import MAX_VOICES

DOCS = Path(__file__).resolve().parents[1] / "docs"
n = names.num


# ---- the help of every command -----------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser, words=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*words, name))
    if words:
        yield " ".join(words), parser


COMMANDS = dict(_subparsers(cli.build_parser()))


def _help(command: str, option: str) -> str:
    """The help text of ``option`` as `--help` prints it (one line, %-formatting done)."""
    parser = COMMANDS[command]
    for action in parser._actions:
        if option in action.option_strings:
            text = parser._get_formatter()._expand_help(action)
            return " ".join(text.split())
    raise AssertionError(f"{command} has no {option}")


def test_every_command_is_there():
    expected = {
        "generate", "replay", "prompt", "sketch", "continue", "add-tracks", "regenerate",
        "harmonize", "restyle", "accompany", "transcribe", "convert musicgen", "corpus build",
        "train score", "eval score", "models",
    }  # fmt: skip
    assert expected <= set(COMMANDS)
    for parser in COMMANDS.values():
        assert parser.format_help()  # every help text formats


RANGE = re.compile(r"(-?\d[\d.]*)\.\.(-?\d[\d.]*)|0 < \w+ <= 1|more than 0|0 or more")
DEFAULT = re.compile(r"\(default[ :]|default (\S+?)[,;)]|\(\d[\d.]*\)")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_numeric_option_states_its_range_and_default(command):
    parser = COMMANDS[command]
    for action in parser._actions:
        if action.type not in (int, float) or not action.option_strings:
            continue
        option = action.option_strings[-1]
        text = _help(command, option)
        if action.choices is None:
            assert RANGE.search(text), f"{command} {option}: no range in {text!r}"
        assert "default" in text, f"{command} {option}: no default in {text!r}"
        if action.default is not None:  # argparse's own default is the one the help names
            assert f"default {n(action.default)}" in text, (command, option, text)


def _range(text: str) -> tuple[str, str]:
    m = re.search(r"(-?\d[\d.]*)\.\.(-?\d[\d.]*)", text)
    assert m, text
    return m[1], m[2]


def _default(text: str) -> str:
    m = re.search(r"default(?::[^)]*?else)? (-?\d[\d.]*)", text)
    assert m, text
    return m[1]


SCORE_COMMANDS = ("sketch", "continue", "add-tracks", "regenerate")
WORKFLOW_COMMANDS = ("harmonize", "restyle")

# (command, option): (low, high, default), each from the constant the code checks.
EXPECTED = {
    **{
        (c, o): v
        for c in SCORE_COMMANDS
        for o, v in {
            "--temperature": (0, score_api.MAX_TEMPERATURE, score_api.DEFAULT_TEMPERATURE),
            "--key-strength": (0, score_api.MAX_KEY_STRENGTH, score_api.DEFAULT_KEY_STRENGTH),
            "--seed": (0, score_api.MAX_SEED, None),
        }.items()
    },
    **{
        (c, o): v
        for c in WORKFLOW_COMMANDS
        for o, v in {
            "--temperature": (0, score_api.MAX_TEMPERATURE, score_api.DEFAULT_TEMPERATURE),
            "--key-strength": (0, score_api.MAX_KEY_STRENGTH, workflows.WORKFLOW_KEY_STRENGTH),
            "--seed": (0, score_api.MAX_SEED, None),
        }.items()
    },
    ("sketch", "--tempo"): (score_api.MIN_TEMPO_BPM, score_api.MAX_TEMPO_BPM, None),
    ("sketch", "--voices"): (1, MAX_VOICES, None),
    ("sketch", "--bars"): (1, score_api.MAX_BARS, score_api.DEFAULT_BARS),
    ("continue", "--bars"): (
        1,
        score_api.MAX_BARS,
        common.default_of(score_api.ScoreModel.continue_score, "bars"),
    ),
    ("harmonize", "--program"): (0, common.MAX_PROGRAM, None),
    ("generate", "--tempo"): (
        score_api.MIN_TEMPO_BPM,
        score_api.MAX_TEMPO_BPM,
        compose.DEFAULT_TEMPO,
    ),
    ("generate", "--bars"): (1, compose.MAX_TOTAL_BARS, compose.DEFAULT_BARS),
    ("generate", "--variations"): (1, names.MAX_VARIATIONS, 1),
    ("generate", "--creativity"): (0, 1, compose.DEFAULT_CREATIVITY),
    ("generate", "--guidance"): (0, names.MAX_GUIDANCE, musicgen_api.DEFAULT_GUIDANCE),
    ("generate", "--seed"): (0, score_api.MAX_SEED, None),
    ("generate", "--reverb"): (0, 1, render.Effects().reverb),
    ("generate", "--compression"): (0, 1, render.Effects().compression),
    ("generate", "--eq-low"): (-render.EQ_RANGE_DB, render.EQ_RANGE_DB, render.Effects().eq_low_db),
    ("generate", "--eq-high"): (
        -render.EQ_RANGE_DB,
        render.EQ_RANGE_DB,
        render.Effects().eq_high_db,
    ),
    ("accompany", "--seed"): (0, score_api.MAX_SEED, 0),
    ("transcribe", "--min-note-ms"): (0, names.MAX_MIN_NOTE_MS, transcribe.DEFAULT_MIN_NOTE_MS),
    ("transcribe", "--min-freq"): (names.MIN_FREQ_HZ, names.MAX_FREQ_HZ, None),
    ("transcribe", "--max-freq"): (names.MIN_FREQ_HZ, names.MAX_FREQ_HZ, None),
    ("eval score", "--bars"): (1, score_api.MAX_BARS, 8),
    ("eval score", "--key-strength"): (
        0,
        score_api.MAX_KEY_STRENGTH,
        score_api.DEFAULT_KEY_STRENGTH,
    ),
    ("train score", "--seed"): (0, score_api.MAX_SEED, 0),
}


@pytest.mark.parametrize("where", sorted(EXPECTED), ids=" ".join)
def test_help_states_the_ranges_and_defaults_the_code_uses(where):
    lo, hi, default = EXPECTED[where]
    text = _help(*where)
    assert _range(text) == (n(lo), n(hi)), text
    if default is not None:
        assert _default(text) == n(default), text


def test_help_of_the_other_defaults():
    assert _default(_help("generate", "--duration").split("MusicGen")[1]) == n(
        musicgen_api.DEFAULT_SECONDS
    )
    assert f"at most {n(compose.MAX_SECONDS)}" in _help("generate", "--duration")
    assert f"at most {n(musicgen_api.MAX_SECONDS)}" in _help("continue", "--duration")
    assert _default(_help("continue", "--duration")) == n(musicgen_api.DEFAULT_SECONDS)
    assert f"else {compose.DEFAULT_DYNAMICS})" in _help("generate", "--dynamics")
    assert f"{compose.DEFAULT_SECTION_BARS} bars a section" in _help("generate", "--structure")
    assert f"{n(workflows.WORKFLOW_KEY_STRENGTH)} for a recording" in _help(
        "continue", "--key-strength"
    )
    for c in (*SCORE_COMMANDS, *WORKFLOW_COMMANDS):
        assert _default(_help(c, "--top-p")) == n(score_api.DEFAULT_TOP_P)
    for option, value in (
        ("--onset-threshold", transcribe.DEFAULT_ONSET_THRESHOLD),
        ("--frame-threshold", transcribe.DEFAULT_FRAME_THRESHOLD),
    ):
        assert _default(_help("transcribe", option)) == n(value)
    assert f"default {accompany.DEFAULT_DRUM_STYLE}" in _help("accompany", "--style")
    assert ", ".join(accompany.DRUM_STYLES) in _help("accompany", "--style")
    assert ", ".join(accompany.PARTS) in _help("accompany", "--part")
    assert COMMANDS["harmonize"].get_default("voices") == workflows.DEFAULT_VOICES
    assert COMMANDS["harmonize"].get_default("style") == workflows.DEFAULT_STYLE


# ---- the code uses those values ----------------------------------------------------------------
def test_the_copies_in_engine_names_are_the_code_s():
    assert names.MAX_VOICES == MAX_VOICES
    assert names.WORKFLOW_KEY_STRENGTH == workflows.WORKFLOW_KEY_STRENGTH
    assert names.WORKFLOW_DEFAULT_VOICES == workflows.DEFAULT_VOICES
    assert names.WORKFLOW_DEFAULT_STYLE == workflows.DEFAULT_STYLE
    assert names.AUDIO_MELODY_PROGRAM == workflows.AUDIO_MELODY_PROGRAM
    assert names.WORKFLOW_VOICES == tuple(sorted(workflows.LOWER_PARTS))
    e = render.Effects()
    assert (e.reverb, e.compression, e.eq_low_db, e.eq_high_db) == (
        names.DEFAULT_REVERB,
        names.DEFAULT_COMPRESSION,
        names.DEFAULT_EQ_DB,
        names.DEFAULT_EQ_DB,
    )
    assert names.EQ_RANGE_DB == render.EQ_RANGE_DB
    assert names.BIT_DEPTHS == render.BIT_DEPTHS
    assert tuple(compose.VELOCITIES) == names.DYNAMICS
    assert names.DEFAULT_CONTINUE_BARS == common.default_of(
        score_api.ScoreModel.continue_score, "bars"
    )


def test_workflows_use_their_key_strength():
    s = workflows._sampling(None, None, None, 0)
    assert s["key_strength"] == _float(_default(_help("harmonize", "--key-strength")))
    assert s["temperature"] == _float(_default(_help("harmonize", "--temperature")))
    assert s["top_p"] == _float(_default(_help("harmonize", "--top-p")))


def _float(text: str) -> float:
    return float(text)


def test_generate_checks_the_ranges_its_help_states():
    lo, hi = map(float, _range(_help("generate", "--tempo")))
    compose.plan(tempo_bpm=hi)
    compose.plan(tempo_bpm=lo)
    for bad in (hi + 0.5, lo - 0.5, 350):
        with pytest.raises(compose.ComposeError, match="outside"):
            compose.plan(tempo_bpm=bad)
    top = int(_range(_help("generate", "--bars"))[1])
    assert compose.plan(bars=top)[0].bars == top
    with pytest.raises(compose.ComposeError):
        compose.plan(bars=top + 1)
    with pytest.raises(compose.ComposeError):
        compose.plan(seconds=compose.MAX_SECONDS + 1)
    p, _ = compose.plan()
    assert p.bars == int(_default(_help("generate", "--bars")))
    assert p.creativity == float(_default(_help("generate", "--creativity")))
    assert p.dynamics == compose.DEFAULT_DYNAMICS
    assert p.tempo_bpm == float(_default(_help("generate", "--tempo")))
    assert compose.plan(structure="AABA")[0].bars == 4 * compose.DEFAULT_SECTION_BARS


def test_the_command_line_refuses_just_outside_the_ranges(capsys):
    cases = [
        ("sketch", "--tempo", n(score_api.MAX_TEMPO_BPM + 1)),
        ("sketch", "--bars", str(score_api.MAX_BARS + 1)),
        ("sketch", "--temperature", n(score_api.MAX_TEMPERATURE + 0.5)),
        ("sketch", "--key-strength", n(score_api.MAX_KEY_STRENGTH + 0.5)),
        ("generate", "--variations", str(names.MAX_VARIATIONS + 1)),
    ]
    for command, option, value in cases:
        code = cli.main([command, option, value, "--seed", "1"])
        err = capsys.readouterr().err
        assert code == 2 and option in err, (command, option, err)


def test_musicgen_and_transcribe_check_the_ranges_their_help_states():
    musicgen_api.check_request(guidance=names.MAX_GUIDANCE, seconds=musicgen_api.MAX_SECONDS)
    with pytest.raises(musicgen_api.MusicgenError):
        musicgen_api.check_request(guidance=names.MAX_GUIDANCE + 0.1)
    with pytest.raises(musicgen_api.MusicgenError):
        musicgen_api.check_request(seconds=musicgen_api.MAX_SECONDS + 1)
    lo, hi = map(float, _range(_help("transcribe", "--min-freq")))
    top_ms = float(_range(_help("transcribe", "--min-note-ms"))[1])
    transcribe._check_settings(1.0, 1.0, top_ms, lo, hi)
    for bad in ((0.5, 0.3, top_ms + 1, None, None), (0.5, 0.3, 100, lo - 1, None)):
        with pytest.raises(transcribe.TranscribeError):
            transcribe._check_settings(*bad)
    assert accompany.DEFAULT_DRUM_STYLE in accompany.DRUM_STYLES


# ---- the docs ----------------------------------------------------------------------------------
def _doc(name: str) -> str:
    return " ".join((DOCS / name).read_text().split())


def test_docs_tempo_range_is_the_code_s():
    tempo = f"{n(score_api.MIN_TEMPO_BPM)} and {n(score_api.MAX_TEMPO_BPM)} BPM"
    assert f"A tempo must be between {tempo}" in _doc("prompting.md")
    for name in ("prompting.md", "user-guide.md", "workflows.md", "accompany.md", "audio.md"):
        text = _doc(name)
        for m in re.finditer(r"(use )?(\d+) (?:to|and|–|-) (\d+) (?:BPM|beats per minute)", text):
            lo, hi = int(m[2]), int(m[3])
            if m[1]:  # the prompt reader's own message, quoted: the same limit
                assert hi == prompt.MAX_TEMPO_BPM == score_api.MAX_TEMPO_BPM, (name, m[0])
                continue
            if lo == score_api.MIN_TEMPO_BPM:  # a statement of the tempo range
                assert hi == score_api.MAX_TEMPO_BPM, (name, m[0])
    assert f"`--tempo BPM` | {n(score_api.MIN_TEMPO_BPM)} to {n(score_api.MAX_TEMPO_BPM)}" in (
        _doc("user-guide.md")
    )


def test_docs_lengths_are_the_code_s():
    text = _doc("prompting.md")
    assert f"({n(compose.MAX_SECONDS)} s)" in text
    assert f"1 to {compose.MAX_TOTAL_BARS} whole bars" in text
    guide = _doc("user-guide.md")
    assert f"at most {n(compose.MAX_SECONDS)} s, or 1 to {compose.MAX_TOTAL_BARS} bars" in guide
    assert f"default {compose.DEFAULT_BARS} bars, or {compose.DEFAULT_SECTION_BARS} a section" in (
        guide
    )
    assert f"1 to {names.MAX_VARIATIONS} pieces (default 1)" in guide
    assert f"`--bars N` | 1 to {score_api.MAX_BARS} | {score_api.DEFAULT_BARS} |" in guide


def test_docs_sampling_defaults_are_the_code_s():
    guide = _doc("user-guide.md")
    row = re.search(r"\| `--key-strength S` \| 0 to (\d+):.*?\| ([\d.]+) \|", guide)
    assert row and (row[1], row[2]) == (
        n(score_api.MAX_KEY_STRENGTH),
        n(score_api.DEFAULT_KEY_STRENGTH),
    )
    row = re.search(r"\| `--temperature T` \| 0 to (\d+):.*?\| ([\d.]+) \|", guide)
    assert row and (row[1], row[2]) == (
        n(score_api.MAX_TEMPERATURE),
        n(score_api.DEFAULT_TEMPERATURE),
    )
    assert re.search(rf"\| `--top-p P` \|[^|]*\| {n(score_api.DEFAULT_TOP_P)} \|", guide)
    assert f"0 to {score_api.MAX_SEED}" in guide
    assert f"(default c = {n(compose.DEFAULT_CREATIVITY)})" in guide
    assert f"{n(compose.DEFAULT_CREATIVITY)} is the default" in _doc("prompting.md")


def test_docs_workflow_key_strength_and_replay():
    text = _doc("workflows.md")
    k = n(workflows.WORKFLOW_KEY_STRENGTH)
    assert f"(`--key-strength {k}`, not {n(score_api.DEFAULT_KEY_STRENGTH)})" in text
    assert f"| `--key-strength` | 0 to {n(score_api.MAX_KEY_STRENGTH)} | {k} |" in text
    assert f"| `--temperature` | 0 to {n(score_api.MAX_TEMPERATURE)} | " in text
    assert f"{n(score_api.DEFAULT_TEMPERATURE)} |" in text
    assert "cannot yet make these folders again" not in text
    assert "replay h --out h2" in text
    assert f"`{workflows.DEFAULT_VOICES}` (the default)" in text
    assert f"Choir Aahs ({workflows.AUDIO_MELODY_PROGRAM})" in text


def test_docs_effects_and_musicgen_defaults_are_the_code_s():
    audio = _doc("audio.md")
    e = render.Effects()
    assert re.search(rf"\| `compression` \| 0 to 1 \(0 = off\) \| {n(e.compression)} \|", audio)
    assert re.search(rf"\| `reverb` \| 0 to 1 \(0 = off\) \| {n(e.reverb)} \|", audio)
    mg = _doc("models/musicgen.md")
    assert (
        f"(default {n(musicgen_api.DEFAULT_SECONDS)}, at most {n(musicgen_api.MAX_SECONDS)})" in mg
    )
    assert f"top-k is {musicgen_api.DEFAULT_TOP_K}" in mg
    assert f"guidance scale ({n(musicgen_api.DEFAULT_GUIDANCE)})" in mg


def test_docs_accompany_parts_and_drum_styles():
    text = _doc("accompany.md")
    for part in accompany.PARTS:
        assert f"`{part}`" in text or part in text
    for style in accompany.DRUM_STYLES:
        assert style in text


# ---- progress goes forwards --------------------------------------------------------------------
def _check_stream(calls: list[tuple[str, int, int]]) -> None:
    """Per stage: done never decreases, total never changes, the last call has done == total."""
    by_stage: dict[str, list[tuple[int, int]]] = {}
    for stage, done, total in calls:
        by_stage.setdefault(stage, []).append((done, total))
    for stage, seq in by_stage.items():
        totals = {t for _, t in seq}
        assert len(totals) == 1, (stage, seq)
        dones = [d for d, _ in seq]
        assert dones == sorted(dones), (stage, dones)
        assert 0 <= dones[0] and dones[-1] == seq[-1][1], (stage, dones)


@pytest.fixture(scope="module")
def shipped_model():
    return score_api.load("score-base")


def test_generate_progress_counts_bars_of_the_whole_piece(shipped_model):
    log = ProgressLog()
    comp = compose.compose("AABA, 16 bars", model=shipped_model, seed=1, progress=log)
    calls = [(e.stage, e.done, e.total) for e in log]
    assert len({s for s, _, _ in calls}) == 1  # one stream for the whole piece
    assert {t for _, _, t in calls} == {comp.plan.bars} == {16}
    _check_stream(calls)
    assert len({d for _, d, _ in calls}) > 4  # it moves along the way, not only at the end


def test_the_stream_check_can_fail():
    with pytest.raises(AssertionError):
        _check_stream([("music", 8, 16), ("music", 7, 16), ("music", 16, 16)])
    with pytest.raises(AssertionError):
        _check_stream([("music", 1, 8), ("music", 16, 16)])


def test_docs_batch_size_is_the_code_s():
    guide = _doc("user-guide.md")
    assert f"up to {names.MAX_BATCH_ROWS} pieces share every decoding step" in guide
    assert f"up to {names.MAX_BATCH_ROWS} at a time" in guide

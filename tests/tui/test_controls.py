"""The Make screen's controls: the prompt's understanding and the generate controls, driven
by keys in a tiny app (no model is loaded: only `plan` runs)."""

from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App
from textual.widgets import Input, Select, SelectionList

from engine import names
from engine.pipelines.compose import plan
from tui.messages import ControlsChanged, Understood
from tui.widgets.controls import GenerateControls
from tui.widgets.understood import Understanding


class ControlsApp(App):
    """A prompt, its understanding and the controls, wired as the Make screen wires them."""

    def __init__(self):
        super().__init__()
        self.understood: list[Understood] = []
        self.changed: list[ControlsChanged] = []

    def compose(self):
        yield Input(id="prompt", placeholder="prompt")
        yield Understanding()
        yield GenerateControls()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "prompt":
            self.query_one(Understanding).set_prompt(event.value)

    def on_understood(self, message: Understood) -> None:
        self.understood.append(message)

    def on_controls_changed(self, message: ControlsChanged) -> None:
        self.changed.append(message)
        self.query_one(Understanding).set_options(message.options)


def run(test, size=(80, 24)):
    async def main():
        app = ControlsApp()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await test(app, pilot)

    asyncio.run(main())


async def settle(pilot, timeout: float = 20.0) -> None:
    """Wait until no reading is scheduled and no check runs (the debounce included)."""
    app = pilot.app
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause(0.05)
        u, c = app.query_one(Understanding), app.query_one(GenerateControls)
        if not u.pending and not c.checking:
            await pilot.pause()
            if not u.pending and not c.checking:
                return
    raise AssertionError("the widgets did not settle")


async def type_into(pilot, selector: str, text: str) -> None:
    widget = pilot.app.query_one(selector, Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text) if text else await pilot.pause()


def test_typing_a_prompt_updates_the_understanding_after_the_debounce():
    async def test(app, pilot):
        u = app.query_one(Understanding)
        # a debounce longer than any gap between keys on a loaded machine (Pilot's key
        # presses are seconds apart when the test suite runs on two busy cores)
        u.debounce_s = 5.0
        before = len(app.understood)
        await type_into(pilot, "#prompt", "a calm chorale in G major for choir")
        assert u.pending  # typed, not yet read: the reading waits for the typing to stop
        await settle(pilot)
        rows = {(x["attribute"], x["value"]) for x in u.understood}
        assert {("style", "chorale"), ("key", "G"), ("mode", "major")} <= rows
        assert u.error is None
        assert u.plan_summary["style"] == "chorale" and u.plan_summary["key"] == "G"
        assert u.plan_summary["line"].startswith("making ") and "G major" in u.summary()
        assert "Soprano, Alto, Tenor, Bass" in u.plan_summary["line"]
        # one reading for the whole typing, not one a key
        assert len(app.understood) - before == 1
        assert app.understood[-1].plan_summary == u.plan_summary

        await type_into(pilot, "#prompt", "blah")
        await settle(pilot)
        assert u.ignored == [{"word": "blah", "suggestions": ["bach"]}]
        assert "did you mean bach?" in u.summary()

    run(test)


def test_a_stale_reading_is_dropped():
    async def test(app, pilot):
        u = app.query_one(Understanding)
        u.set_prompt("a fast jig in D")
        u._read_now()  # a reading on its way ...
        u.set_prompt("a chorale in F minor")  # ... overtaken by a newer prompt
        await settle(pilot)
        assert u.plan_summary["key"] == "F" and u.plan_summary["mode"] == "minor"
        assert app.understood[-1].plan_summary["key"] == "F"

    run(test)


def test_a_problem_of_the_plan_is_one_line_not_an_exception():
    async def test(app, pilot):
        u = app.query_one(Understanding)
        u.set_options({"bars": 2, "structure": "AABA"})
        await settle(pilot)
        assert u.plan_summary is None and "do not fit" in u.error and "\n" not in u.error
        assert app.understood[-1].error == u.error
        assert u.summary().startswith("problem: ")

    run(test)


ABSURD = [
    ("#c-tempo", "5000", "tempo must be 20..300 BPM"),
    ("#c-length", "0", f"bars must be 1..{names.COMPOSE_MAX_BARS}"),
    ("#c-seed", "-1", "seed must be 0.."),
    ("#c-creativity", "2", "creativity must be 0..1"),
    ("#c-density", "1.5", "density must be 0..1"),
    ("#c-variations", "99", f"variations must be 1..{names.MAX_VARIATIONS}"),
    ("#c-tempo", "fast", "tempo must be 20..300 BPM"),
    ("#c-instruments", "violin, kazooo", "unknown instrument"),
    ("#c-structure", "A:4 B", "give every section a length"),
    ("#c-progression", "I-Q7-V", "Q7"),
]


def test_absurd_values_show_one_line_messages_and_appear_in_errors():
    async def test(app, pilot):
        c = app.query_one(GenerateControls)
        assert c.errors() == []
        for selector, typed, expected in ABSURD:
            await type_into(pilot, selector, typed)
            await settle(pilot)
            errors = c.errors()
            assert len(errors) == 1 and expected in errors[0], (typed, errors)
            msg = app.query_one(f"{selector}-msg")
            assert msg.display and expected in str(msg.render()) and "\n" not in errors[0]
            assert isinstance(c.options(), dict)  # still reads; the bad control is None
            await type_into(pilot, selector, "")
            await settle(pilot)
            assert c.errors() == [], selector
        # a meter the tokenizer has no token for, as a damaged record could hold it
        c.set_values(meter="7/3")
        await settle(pilot)
        assert any("unsupported meter '7/3'" in e for e in c.errors())
        assert c.options()["meter"] is None
        c.set_values(meter="3/4")
        await settle(pilot)
        assert c.errors() == [] and c.options()["meter"] == "3/4"

    run(test)


def test_options_are_what_plan_takes():
    async def test(app, pilot):
        c = app.query_one(GenerateControls)
        await type_into(pilot, "#c-tempo", "72")
        await type_into(pilot, "#c-length", "12")
        c.query_one("#c-key", Select).value = "D"
        c.query_one("#c-mode", Select).value = "minor"
        c.query_one("#c-meter", Select).value = "3/4"
        await type_into(pilot, "#c-instruments", "violin, cello")
        await type_into(pilot, "#c-seed", "7")
        await settle(pilot)
        assert c.errors() == []
        options = c.options()
        assert set(options) == {
            "style", "mood", "key", "mode", "meter", "tempo_bpm", "seconds", "bars",
            "instruments", "structure", "progression", "dynamics", "creativity", "density",
            "seed",
        }  # fmt: skip
        p, _ = plan("a calm piece", **options)
        assert (p.tempo_bpm, p.key, p.mode, p.meter, p.bars, p.seed) == (
            72.0, "D", "minor", "3/4", 12, 7,
        )  # fmt: skip
        assert [q.name for q in p.parts] == ["Violin", "Cello"]
        assert app.changed and app.changed[-1].options == options
        # the understanding reads the prompt with the controls' options
        await type_into(pilot, "#prompt", "a calm piece")
        await settle(pilot)
        u = app.query_one(Understanding)
        assert u.plan_summary["tempo_bpm"] == 72 and u.plan_summary["meter"] == "3/4"
        assert "12 bars" in u.plan_summary["line"]
        # seconds instead of bars; an empty seed is None (random)
        c.query_one("#c-unit", Select).value = "seconds"
        await type_into(pilot, "#c-seed", "")
        await settle(pilot)
        options = c.options()
        assert (options["seconds"], options["bars"], options["seed"]) == (12.0, None, None)
        p, _ = plan("", **options)
        assert p.bars == round(12 * 72 / 60 / 3)

    run(test)


def test_set_values_round_trips():
    request = {
        "style": "madrigal",
        "mood": "nostalgia",
        "key": "Eb",
        "mode": "major",
        "meter": "6/8",
        "tempo_bpm": 84.5,
        "seconds": None,
        "bars": 16,
        "instruments": "soprano, alto, tenor",
        "structure": "AABA",
        "progression": "I-vi-IV-V",
        "dynamics": "mp",
        "creativity": 0.3,
        "density": 0.6,
        "seed": 1234,
    }

    async def test(app, pilot):
        c = app.query_one(GenerateControls)
        c.set_values(**request, variations=3, formats=["mid", "png"])
        await settle(pilot)
        assert c.errors() == []
        assert c.options() == request
        assert c.variations() == 3 and c.formats() == ["mid", "png"]
        assert c.model() is None
        plan("", **c.options())
        c.set_values(seconds=30.0, seed=None)
        await settle(pilot)
        assert c.options() == {**dict.fromkeys(request), "seconds": 30.0}
        assert c.query_one("#c-unit", Select).value == "seconds"

    run(test)


def test_musicgen_disables_the_score_only_controls():
    async def test(app, pilot):
        c = app.query_one(GenerateControls)
        assert c.query_one("#c-guidance", Input).disabled
        c.set_values(meter="3/4", structure="AABA", density=0.5, formats=["wav", "mid"])
        await settle(pilot)
        c.query_one("#c-model", Select).value = "musicgen-small"
        await settle(pilot)
        assert c.model() == "musicgen-small"
        for name in ("meter", "structure", "progression", "dynamics", "density", "unit"):
            assert c.query_one(f"#c-{name}").disabled, name
            if name != "unit":
                assert "MusicGen" in str(c.query_one(f"#c-{name}-msg").render())
        for name in ("tempo", "key", "seed", "creativity", "length", "guidance"):
            assert not c.query_one(f"#c-{name}").disabled, name
        assert c.formats() == ["wav"]
        fl = c.query_one("#c-formats", SelectionList)
        assert fl.get_option("fmt-mid").disabled and not fl.get_option("fmt-flac").disabled
        options = c.options()
        assert options["meter"] is None and options["structure"] is None
        await type_into(pilot, "#c-length", "250")  # seconds, MusicGen's limit
        await settle(pilot)
        assert c.errors() == [] and c.options()["seconds"] == 250.0
        await type_into(pilot, "#c-guidance", "50")
        await settle(pilot)
        assert any("guidance must be" in e for e in c.errors())
        await type_into(pilot, "#c-guidance", "4")
        await settle(pilot)
        assert c.guidance() == 4.0
        # back to the score model: the controls and the files come back
        c.query_one("#c-model", Select).value = "score-base"
        await settle(pilot)
        assert not c.query_one("#c-meter").disabled and c.query_one("#c-guidance").disabled
        assert c.formats() == ["wav", "mid"] and c.options()["meter"] == "3/4"
        # a problem of a control the model does not read is no problem
        c.set_values(model="musicgen-small", meter="7/3", guidance=4.0)
        await settle(pilot)
        assert c.errors() == [] and c.options()["meter"] is None
        c.set_values(meter="3/4", guidance=50.0)
        await settle(pilot)
        assert c.errors() == []
        # a model that is neither listed nor a folder
        c.set_values(model="no-such-model")
        await settle(pilot)
        assert c.errors() == ["no folder no-such-model"]

    run(test)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_keyboard_alone_reaches_every_control(size):
    async def test(app, pilot):
        c = app.query_one(GenerateControls)
        app.query_one("#prompt").focus()
        seen = []
        for _ in range(40):
            await pilot.press("tab")
            f = app.focused
            if f is None or f.id in seen:
                break
            seen.append(f.id)
            if f.id != "prompt":  # scrolled into view
                assert f.region.height > 0 and c.region.contains_region(f.region), f.id
        expected = ["c-model", "c-folder", "c-length", "c-unit", "c-tempo", "c-key", "c-mode"]
        assert seen[: len(expected)] == expected
        assert "c-formats" in seen and "c-guidance" not in seen  # disabled: skipped
        # a value typed by keys alone
        c.query_one("#c-tempo").focus()
        await pilot.press("1", "2", "0")
        await settle(pilot)
        assert c.options()["tempo_bpm"] == 120.0

    run(test, size)

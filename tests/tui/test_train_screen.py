"""The studio's Train screen, driven with Textual's Pilot: a real (tiny) fine-tune of the tiny
score model on a MIDI dataset in a temporary folder. It opens by its key and lists the
datasets and models; a run draws its charts (coalesced), makes samples to hear and
checkpoints to pick; pause, resume and stop reach the trainer; bad input and a crash are one
line."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track
from textual.widgets import Checkbox, Input, OptionList, Select, Static

from tui.app import make_app
from tui.screens.train import TRAIN_KEY, TrainScreen, checkpoints_of, history
from tui.widgets.train_chart import MAX_POINTS, REDRAW_HZ, TrainChart, thinned

DORIAN = [0, 2, 3, 5, 7, 9, 10]
# A run of a few steps: one sample at each validation, small batches.
TINY = dict(samples=1, sample_bars=2, tokens_per_batch=1024, keep_last=3)


def _write_pieces(folder: Path, n: int) -> Path:
    """``n`` two-voice MIDI pieces of 8 bars in 5/4, D Dorian."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng([7, i])
        s = Score(480)
        s.time_signatures.append(TimeSignature(0, 5, 4))
        s.tempos.append(Tempo(0, 110))
        bar, step = 5 * 480, 240
        for v, (shift, program) in enumerate([(12, 0), (-12, 32)]):
            t = Track(program=program, name=f"voice {v}")
            deg = 0
            for b in range(8):
                for k in range(0, bar // step, 1 + v):
                    deg = int(np.clip(deg + rng.integers(-2, 3), -7, 10))
                    pitch = 62 + shift + DORIAN[deg % 7] + 12 * (deg // 7)
                    t.notes.append(Note(b * bar + k * step, int(step * (1 + v) * 0.3), pitch, 80))
            s.tracks.append(t)
        s.dump_midi(str(folder / f"piece{i:02d}.mid"))
    return folder


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """The studio's home, the datasets and the trained models in this test's folder, and a
    dataset of six pieces in it."""
    from engine.data.ingest import import_sources
    from engine.data.store import Dataset

    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DISCO_MUSICA_DATASETS", str(tmp_path / "datasets"))
    for name in ("DISCO_MUSICA_PLAIN", "DISCO_MUSICA_REDUCED_MOTION", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    import_sources(Dataset.create("dorian"), [str(_write_pieces(tmp_path / "midi", 6))])
    return tmp_path / "home"


def _app(tmp_path):
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "studio.json",
        first_run=False,
        audio=False,
    )


def _run(app, test, size=(120, 40)):
    async def main():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            try:
                await test(app, pilot)
            finally:  # never leave a trainer thread behind
                for s in _train_screens(app):
                    if s.control is not None:
                        s.control.stop()
        assert app._exception is None, app._exception

    asyncio.run(main())


def _train_screens(app) -> list[TrainScreen]:
    return [s for stack in app._screen_stacks.values() for s in stack if isinstance(s, TrainScreen)]


async def _wait(pilot, condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            screen = pilot.app.screen
            raise AssertionError(
                f"{what}: not after {timeout:.0f} s; state {getattr(screen, 'state', '')!r}, "
                f"status {getattr(screen, 'status', '')!r}, message "
                f"{getattr(screen, 'message', '')!r}"
            )
        await pilot.pause(0.05)


async def _train_screen(pilot) -> TrainScreen:
    await pilot.press(TRAIN_KEY)
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    await _wait(pilot, lambda: screen.choices is not None and screen.engine_ready, "the lists")
    return screen


def _options(screen, selector: str) -> list[tuple[str, str]]:
    options = screen.query_one(selector, Select)._options
    return [(str(label), value) for label, value in options if isinstance(value, str)]


async def _type(pilot, screen, selector: str, text: str) -> None:
    box = screen.query_one(selector, Input)
    box.value = text
    await pilot.pause()


def _msg(screen) -> str:
    return str(screen.query_one("#tr-msg", Static).render())


def _points(screen, chart: str, series: str) -> list[tuple[float, float]]:
    s = screen.query_one(chart, TrainChart).series[series]
    return list(zip(s.xs, s.ys, strict=True))


# ---- the chart: coalesced redraws, the latest point always drawn ------------------------------
def test_the_chart_redraws_at_most_its_rate_and_always_ends_on_the_latest_point():
    from textual.app import App

    class One(App):
        def compose(self):
            yield TrainChart("loss", id="chart")

    async def main():
        async with One().run_test(size=(60, 16)) as pilot:
            chart = pilot.app.query_one(TrainChart)
            chart.add_series("train", "train")
            await pilot.pause()
            before, tic = chart.redraws, time.monotonic()
            for i in range(600):  # a burst of reports, the app running between them
                chart.add("train", i, 1.0 / (i + 1))
                if i % 30 == 0:
                    await pilot.pause(0.02)
            seconds = time.monotonic() - tic
            assert chart.dirty  # the last points are not drawn yet: no redraw per point
            await pilot.pause(1.5 / REDRAW_HZ)
            assert not chart.dirty and chart.drawn["train"] == (599.0, 1.0 / 600)
            redraws = chart.redraws - before
            assert 1 <= redraws <= seconds * REDRAW_HZ + 2, (redraws, seconds)
            assert "train: 600 points" in chart.summary()
            assert "latest 1.67e-03 at step 599" in chart.summary()

    asyncio.run(main())
    xs = list(range(5000))
    tx, ty = thinned(xs, [2 * x for x in xs])
    assert len(tx) <= MAX_POINTS + 1 and tx[0] == 0 and tx[-1] == 4999
    assert ty == [2 * x for x in tx]


# ---- the form: lists, and bad input in one line ----------------------------------------------
def test_opens_by_its_key_lists_data_and_models_and_refuses_bad_input_in_one_line(
    tmp_path, home, tiny_model_dir, monkeypatch
):
    import engine.train.finetune as finetune

    async def test(app, pilot):
        screen = await _train_screen(pilot)
        assert app.current_mode == "train"
        data = _options(screen, "#tr-data")
        assert [label for label, _ in data] == ["dorian (6 items)"]
        assert Path(data[0][1]) == tmp_path / "datasets" / "dorian"
        assert screen.query_one("#tr-data", Select).value == data[0][1]  # the only one: chosen
        assert ("score-base", "score-base") in _options(screen, "#tr-base")
        assert screen.query_one("#tr-base", Select).value == "score-base"
        assert _options(screen, "#tr-from") == []  # no models of yours yet
        assert [v for _, v in _options(screen, "#tr-preset")] == list(finetune.PRESETS)
        assert [v for _, v in _options(screen, "#tr-method")] == list(finetune.METHODS)
        # the preset's numbers are the fields' placeholders, by method
        assert screen.query_one("#tr-steps", Input).placeholder == "150 steps"
        assert screen.query_one("#tr-lr-in", Input).placeholder == "lr 0.001"
        screen.query_one("#tr-method", Select).value = "full"
        await pilot.pause()
        assert screen.query_one("#tr-lr-in", Input).placeholder == "lr 0.0001"
        assert screen.query_one("#tr-rank", Input).disabled  # rank is LoRA's
        screen.query_one("#tr-method", Select).value = "lora"
        await pilot.pause()

        # no dataset chosen: said at once, nothing starts
        screen.query_one("#tr-data", Select).clear()
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert screen.state == "idle" and "pick a dataset" in _msg(screen)
        screen.query_one("#tr-data", Select).value = data[0][1]

        # no name; a number that is not one
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "name your model" in _msg(screen) and screen.state == "idle"
        await _type(pilot, screen, "#tr-name", "mine")
        await _type(pilot, screen, "#tr-lr-in", "fast")
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert _msg(screen) == "learning rate: a number like 5e-4, not 'fast'"
        await _type(pilot, screen, "#tr-lr-in", "")
        # "save memory": the run recomputes activations (--grad-checkpoint)
        assert "grad_checkpoint" not in screen.read_form()[0]["options"]
        screen.query_one("#tr-lowmem", Checkbox).value = True
        assert screen.read_form()[0]["options"]["grad_checkpoint"] is True
        screen.query_one("#tr-lowmem", Checkbox).value = False

        # a name the engine refuses: its one line, and nothing made on disk
        await _type(pilot, screen, "#tr-name", "no spaces please")
        await _type(pilot, screen, "#tr-base-folder", str(tiny_model_dir))
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.state == "idle" and _msg(screen), "the refusal")
        line = _msg(screen)
        assert "model name 'no spaces please'" in line and "\n" not in line, line
        assert not (home / "my-models").exists()
        assert screen.status == line  # the status line says it too

        # a bug in the run's thread: one line that asks for a report, the screen goes on
        def boom(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(finetune, "finetune_score", boom)
        await _type(pilot, screen, "#tr-name", "mine")
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: "boom" in _msg(screen), "the bug's line")
        assert _msg(screen) == "a bug stopped the work (RuntimeError: boom); please report it"
        assert screen.state == "idle"
        assert not screen.query_one("#tr-start").disabled

    _run(_app(tmp_path), test)


# ---- a short run: charts, samples, checkpoints, use one, hear one ----------------------------
def test_a_short_run_draws_charts_makes_samples_and_checkpoints_to_pick(
    tmp_path, tiny_model_dir, monkeypatch
):
    from engine import hub
    from tui.widgets.controls import GenerateControls

    monkeypatch.setattr(TrainScreen, "extra_options", dict(TINY, eval_every=2))

    async def test(app, pilot):
        screen = await _train_screen(pilot)
        await _type(pilot, screen, "#tr-base-folder", str(tiny_model_dir))
        await _type(pilot, screen, "#tr-name", "mine")
        await _type(pilot, screen, "#tr-steps", "4")
        screen.query_one("#tr-lowmem", Checkbox).value = True  # a run that saves memory
        # every change of state, with the buttons as it left them: on a loaded machine the
        # whole tiny run can pass between two polls, so the test records, not samples
        seen, set_state = [], screen._set_state

        def recording(state):
            set_state(state)
            start, stop = screen.query_one("#tr-start"), screen.query_one("#tr-stop")
            seen.append((state, start.disabled, stop.disabled))

        monkeypatch.setattr(screen, "_set_state", recording)
        tic = time.monotonic()
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.result is not None, "the end of the run", 90)
        assert seen == [
            ("preparing", True, False),
            ("running", True, False),
            ("idle", False, True),
        ], (seen, _msg(screen))
        seconds = time.monotonic() - tic
        assert screen.state == "idle" and not screen.message, screen.message
        r = screen.result
        assert r["status"] == "finished" and r["steps"] == 4 and r["stop_reason"] == "max_steps"

        # the charts: every report is a point (train at each step, validation at 0, 2, 4)
        train = _points(screen, "#tr-loss", "train")
        assert [x for x, _ in train] == [1, 2, 3, 4]
        assert all(np.isfinite(y) and y > 0 for _, y in train)
        assert [x for x, _ in _points(screen, "#tr-loss", "val")] == [0, 2, 4]
        assert [x for x, _ in _points(screen, "#tr-lr", "lr")] == [1, 2, 3, 4]
        # coalesced: at most REDRAW_HZ redraws a second (plus the first, the clear at the
        # start and the flush at the end), and nothing left undrawn
        for chart in screen.query(TrainChart):
            assert chart.redraws <= 3 + REDRAW_HZ * seconds + 1, (chart.redraws, seconds)
            assert not chart.dirty
        stats = str(screen.query_one("#tr-stats", Static).render())
        assert stats.startswith("step 4/4") and "tok/s" in stats and "validation" in stats
        assert screen.status.startswith("done: mine round 1, 4 steps")
        assert "Style distance to your data" in str(screen.query_one("#tr-style").render())
        assert len(screen.style_reports) == 3

        # a sample at each validation, listed as it came; each a MIDI file
        assert len(screen.samples) == 3 and all(p.endswith(".mid") for p in screen.samples)
        assert all(Path(p).is_file() for p in screen.samples)
        assert screen.query_one("#tr-samples", OptionList).option_count == 3

        # the checkpoints: the round's best, the latest and each kept step; each loads
        specs = [c.spec for c in screen.checkpoints]
        assert specs == ["mine@round-1", "mine@latest", "mine@step-4", "mine@step-2"]
        assert [c.spec for c in checkpoints_of("mine")] == specs
        for c in screen.checkpoints:
            assert hub.resolve_trained(c.spec) == c.folder
        # what a resumed round shows of its past: the run's metrics up to where it resumes
        past = history(Path(r["run"]) / "metrics.jsonl", 2)
        assert [(x, y) for x, y, _ in past["train"]] == train[:2]
        assert [x for x, _ in past["val"]] == [0, 2]
        assert [e["samples"] for e in past["sample"]] == [[p] for p in screen.samples[:2]]
        labels = [c.label for c in screen.checkpoints[:2]]
        assert labels == [f"best: step {r['best_step']}", "latest: step 4"]

        # your new model is one to continue from (a LoRA one is not a base)
        await _wait(pilot, lambda: ("mine", "mine") in _options(screen, "#tr-from"), "lists")
        assert all(v != "mine" for _, v in _options(screen, "#tr-base"))

        # use step 2 on the Make screen
        box = screen.query_one("#tr-ckpts", OptionList)
        box.focus()
        box.highlighted = 3
        await pilot.press("m")
        await pilot.pause()
        assert app.model_name == "mine@step-2"
        make_controls = [c for s in app._screen_stacks["make"] for c in s.query(GenerateControls)]
        assert make_controls and make_controls[0].model() == str(hub.resolve_trained("mine@step-2"))
        assert "now writes with mine@step-2" in screen.status

        # hear the last sample: rendered and played (silently here: no audio device)
        samples = screen.query_one("#tr-samples", OptionList)
        samples.focus()
        samples.highlighted = 2
        await pilot.press("enter")
        await _wait(pilot, lambda: screen.playing == screen.samples[2], "the sample's audio", 60)
        assert screen.player.length_s > 1.0 and screen.player.playing
        await pilot.press("space")
        await pilot.pause()
        assert not screen.player.playing

    _run(_app(tmp_path), test)


# ---- pause, resume, stop ---------------------------------------------------------------------
def test_pause_waits_resume_goes_on_and_stop_keeps_a_checkpoint(
    tmp_path, tiny_model_dir, monkeypatch
):
    monkeypatch.setattr(
        TrainScreen, "extra_options", dict(TINY, samples=0, eval_every=2000, max_steps=2000)
    )

    async def test(app, pilot):
        screen = await _train_screen(pilot)
        await _type(pilot, screen, "#tr-base-folder", str(tiny_model_dir))
        await _type(pilot, screen, "#tr-name", "long")
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.last_train is not None, "the first report")

        await pilot.press("p")
        await _wait(pilot, lambda: screen.state == "paused", "the pause")
        assert screen.control.paused and not screen.control.stopping
        assert screen.query_one("#tr-pause").disabled
        assert not screen.query_one("#tr-resume-btn").disabled
        # paused: a checkpoint of where it is, and no step more
        at = screen.step
        assert at >= screen.last_train["iteration"]
        latest = next(c for c in screen.checkpoints if c.spec == "long@latest")
        assert latest.label == f"latest: step {at}"
        assert f"paused at step {at}" in screen.status
        points = len(_points(screen, "#tr-loss", "train"))
        await pilot.pause(0.8)
        assert screen.step == at and len(_points(screen, "#tr-loss", "train")) == points

        await pilot.press("r")
        await _wait(pilot, lambda: screen.step > at, "steps after resuming")
        assert screen.state == "running" and not screen.control.paused

        await pilot.press("x")
        await _wait(pilot, lambda: screen.result is not None, "the stop")
        r = screen.result
        assert r["stop_reason"] == "stopped" and at < r["steps"] < 2000
        latest = next(c for c in screen.checkpoints if c.spec == "long@latest")
        assert latest.label == f"latest: step {r['steps']}"  # it stopped with a checkpoint
        assert "stopped by the user" in screen.status
        assert screen.state == "idle" and screen.control is None

    _run(_app(tmp_path), test)


# ---- the picture at the smallest size the studio supports -----------------------------------
def test_snapshot_at_80x24(tmp_path, snap_compare):
    async def before(pilot):
        screen = await _train_screen(pilot)
        for box in screen.query(Input):
            box.cursor_blink = False
        await pilot.pause()

    assert snap_compare(_app(tmp_path), terminal_size=(80, 24), run_before=before)

"""Training monitors: one callback interface; metrics.jsonl, TensorBoard event files, W&B
(a fake module), the fan-out, the live display and the time-left arithmetic."""

from __future__ import annotations

import io
import json
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from engine.cli.train_live import LiveDisplay, sparkline
from engine.train import monitor
from engine.train.monitor import (
    Callback,
    Fanout,
    MetricsJsonl,
    TensorBoard,
    format_duration,
    read_metrics,
    time_left,
    wandb_callback,
)

CONFIG = {"learning_rate": 1e-3, "max_steps": 40, "batch_size": 4}


def start_event(start_step: int = 0) -> dict:
    return {
        "max_steps": 40,
        "start_step": start_step,
        "method": "lora",
        "trainable_parameters": 1234,
        "total_parameters": 56789,
        "out_dir": "runs/x",
        "config": CONFIG,
    }


def train_event(it: int, loss: float, eta: float | None) -> dict:
    return {
        "iteration": it,
        "train_loss": loss,
        "learning_rate": 1e-3 * it / 40,
        "tokens_per_second": 1234.0 + it,
        "peak_memory": 0.125,
        "elapsed_s": 2.5 * it,
        "max_steps": 40,
        "eta_s": eta,
    }


def val_event(it: int, loss: float, best: float, groups: dict) -> dict:
    return {
        "iteration": it,
        "val_loss": loss,
        "val_loss_by_group": groups,
        "best_val_loss": best,
        "is_best": loss == best,
        "val_time_s": 0.5,
        "elapsed_s": 2.5 * it + 0.5,
    }


def run_events(start_step: int = 0) -> list[tuple[str, dict]]:
    """A synthetic run: start, train reports every 10 steps, validations at 20 and 40, a
    sample report, checkpoints and the end (steps after ``start_step`` only)."""
    events = [("start", start_event(start_step))]
    for it in (10, 20, 30, 40):
        if it <= start_step:
            continue
        events.append(("train", train_event(it, 3.0 - it / 20, time_left(it, 0, 40, 2.5 * it))))
        if it == 20:
            events.append(("val", val_event(20, 2.25, 2.25, {"bach": 2.5, "jazz": 2.0})))
            events.append(("checkpoint", {"iteration": 20, "path": "runs/x/best", "kind": "best"}))
        if it == 40:
            events.append(("val", val_event(40, 2.5, 2.25, {"bach": 2.75, "jazz": 2.25})))
            d = {"pitch_class": 0.125, "interval": 0.25}
            events.append(
                ("sample", {"iteration": 40, "distances": d, "overall": 0.1875, "samples": ["a"]})
            )
            path = "runs/x/checkpoint"
            events.append(("checkpoint", {"iteration": 40, "path": path, "kind": "checkpoint"}))
    events.append(
        ("end", {"step": 40, "best_val": 2.25, "stop_reason": "max_steps", "elapsed_s": 100.5})
    )
    return events


def feed(callback, events) -> None:
    for kind, info in events:
        getattr(callback, monitor.EVENTS[kind])(info)


# -- TensorBoard: a tiny reader of the TFRecord stream --------------------------------------


def read_events(logdir: Path) -> list:
    """Every Event of every event file in ``logdir`` (file order by name, then record order).

    TFRecord: uint64 length, uint32 masked crc of the length, data, uint32 masked crc."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for file in sorted(logdir.glob("events.out.tfevents.*")):
        data = file.read_bytes()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            record = data[pos + 12 : pos + 12 + n]
            assert len(record) == n
            events.append(Event.FromString(record))
            pos += 12 + n + 4
        assert pos == len(data)
    return events


def scalar_series(events) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for e in events:
        for v in e.summary.value:
            if v.HasField("simple_value"):
                out.setdefault(v.tag, []).append((e.step, v.simple_value))
    return out


def texts(events) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for e in events:
        for v in e.summary.value:
            if v.metadata.plugin_data.plugin_name == "text":
                out.setdefault(v.tag, []).append((e.step, v.tensor.string_val[0].decode()))
    return out


def f32(x: float) -> float:
    return float(np.float32(x))


def test_tensorboard_writes_the_scalars_at_their_steps(tmp_path):
    tb = TensorBoard(tmp_path / "tb")
    feed(tb, run_events())
    assert tb.writer is None  # closed on end
    got = scalar_series(read_events(tmp_path / "tb"))
    want = {
        "train/loss": [(10, 2.5), (20, 2.0), (30, 1.5), (40, 1.0)],
        "train/learning_rate": [(i, f32(1e-3 * i / 40)) for i in (10, 20, 30, 40)],
        "train/tokens_per_second": [(i, 1234.0 + i) for i in (10, 20, 30, 40)],
        "train/peak_memory_gb": [(i, 0.125) for i in (10, 20, 30, 40)],
        "val/loss": [(20, 2.25), (40, 2.5)],
        "val/best_loss": [(20, 2.25), (40, 2.25)],
        "val/loss/bach": [(20, 2.5), (40, 2.75)],
        "val/loss/jazz": [(20, 2.0), (40, 2.25)],
        "style/interval": [(40, 0.25)],
        "style/pitch_class": [(40, 0.125)],
        "style/overall": [(40, 0.1875)],
    }
    assert got == want
    t = texts(read_events(tmp_path / "tb"))
    assert t["run/text_summary"] == [(0, "lora: 1,234 of 56,789 parameters trainable, steps to 40")]
    ((step, table),) = t["config/text_summary"]
    assert step == 0 and "| learning_rate | 0.001 |" in table and "| batch_size | 4 |" in table
    assert t["summary/text_summary"] == [
        (40, "stopped at step 40: step limit reached, best validation loss 2.2500")
    ]


def test_tensorboard_events_are_on_disk_when_reported(tmp_path):
    tb = TensorBoard(tmp_path / "tb")
    tb.on_start(start_event())
    tb.on_train_report(train_event(10, 2.5, None))
    # still open, yet on disk: a run killed now keeps what was reported
    assert tb.writer is not None
    assert scalar_series(read_events(tmp_path / "tb"))["train/loss"] == [(10, 2.5)]
    tb.on_val_report(val_event(10, 2.25, 2.25, {}))
    assert scalar_series(read_events(tmp_path / "tb"))["val/loss"] == [(10, 2.25)]
    tb.close()
    tb.close()  # twice is fine


def test_tensorboard_resume_purges_the_redone_steps(tmp_path):
    first = TensorBoard(tmp_path / "tb")
    feed(first, run_events()[:-1])  # killed at step 40, before the end
    first.close()
    resumed = TensorBoard(tmp_path / "tb")
    feed(resumed, run_events(start_step=20))
    events = read_events(tmp_path / "tb")
    starts = [e.step for e in events if e.HasField("session_log")]
    assert starts == [21]  # TensorBoard hides the old file's events from step 21 on
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2


# -- metrics.jsonl ---------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_metrics_jsonl_has_one_line_per_event(tmp_path):
    path = tmp_path / "run" / monitor.METRICS_FILE
    feed(MetricsJsonl(path, clock=Clock()), run_events())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    events = run_events()
    assert [line.pop("time") for line in lines] == [1001.0 + i for i in range(len(events))]
    assert lines == [{"kind": kind, **info} for kind, info in events]


def test_metrics_jsonl_lines_are_on_disk_as_they_are_written(tmp_path):
    path = tmp_path / monitor.METRICS_FILE
    m = MetricsJsonl(path)
    m.on_start(start_event())
    m.on_train_report(train_event(10, 2.5, 30.0))
    # not closed (a killed run): both lines are already in the file
    assert [json.loads(x)["kind"] for x in path.read_text().splitlines()] == ["start", "train"]
    m.on_train_report(train_event(20, float("nan"), float("inf")))
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["train_loss"] is None and last["eta_s"] is None  # strict JSON: no NaN
    m.close()


def test_a_resumed_run_appends_and_reading_keeps_the_latest_steps(tmp_path):
    path = tmp_path / monitor.METRICS_FILE
    killed = MetricsJsonl(path, clock=Clock())
    feed(killed, run_events()[:-1])  # killed after step 40, last checkpoint at step 20
    killed.close()
    with path.open("a") as f:
        f.write('{"kind": "train", "iter')  # killed in the middle of a line
    before = path.read_text()
    feed(MetricsJsonl(path, clock=Clock()), run_events(start_step=20))
    text = path.read_text()
    assert text.startswith(before)  # appended, nothing rewritten
    all_lines = read_metrics(path, latest=False)
    assert len(all_lines) == len(run_events()) - 1 + len(run_events(20))
    assert [e["kind"] for e in all_lines].count("start") == 2
    assert all_lines[len(run_events()) - 1] | {"time": 0} == {
        "kind": "start",
        "time": 0,
        **start_event(20),
    }
    latest = read_metrics(path)
    train_steps = [e["iteration"] for e in latest if e["kind"] == "train"]
    assert train_steps == [10, 20, 30, 40]  # 30 and 40 from the resumed run only
    val_steps = [e["iteration"] for e in latest if e["kind"] == "val"]
    assert val_steps == [20, 40]
    assert [e["kind"] for e in latest].count("end") == 1


# -- Fanout ----------------------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self):
        self.calls = []
        self.closed = 0

    def on_train_report(self, info):
        self.calls.append(("train", info["iteration"]))

    def on_end(self, summary):
        self.calls.append(("end", summary["step"]))

    def close(self):
        self.closed += 1


class Failing(Callback):
    name = "Cloud"

    def __init__(self, optional: bool):
        self.optional = optional
        self.calls = 0
        self.closed = 0

    def on_train_report(self, info):
        self.calls += 1
        raise ConnectionError("no network\nsecond line")

    def close(self):
        self.closed += 1


class OnlyVal:  # any object with some of the methods will do
    def __init__(self):
        self.seen = []

    def on_val_report(self, info):
        self.seen.append(info["iteration"])


def test_fanout_drops_a_failing_optional_callback_with_one_warning():
    warnings = []
    rec, bad, plain = Recorder(), Failing(optional=True), OnlyVal()
    fan = Fanout([rec, None, bad, plain], warn=warnings.append)
    for it in (10, 20, 30):
        fan.on_train_report(train_event(it, 1.0, None))
    fan.on_val_report(val_event(30, 1.0, 1.0, {}))
    fan.on_end({"step": 30})
    assert rec.calls == [("train", 10), ("train", 20), ("train", 30), ("end", 30)]
    assert plain.seen == [30]
    assert bad.calls == 1 and bad.closed == 1
    assert warnings == ["Cloud failed (ConnectionError: no network); training goes on without it"]
    fan.close()
    assert rec.closed == 1 and bad.closed == 1  # the dropped one is not closed again


def test_fanout_propagates_a_failing_required_callback():
    fan = Fanout([Recorder(), Failing(optional=False)], warn=pytest.fail)
    with pytest.raises(ConnectionError, match="no network"):
        fan.on_train_report(train_event(10, 1.0, None))


def test_fanout_warns_on_stderr_by_default(capsys):
    fan = Fanout([Failing(optional=True)])
    fan.on_train_report(train_event(10, 1.0, None))
    fan.on_train_report(train_event(20, 1.0, None))
    err = capsys.readouterr().err
    assert (
        err == "warning: Cloud failed (ConnectionError: no network); training goes on without it\n"
    )


def test_make_monitor_writes_both_logs_and_closes_on_error(tmp_path):
    rec = Recorder()
    with pytest.raises(RuntimeError):
        with monitor.make_monitor(tmp_path, display=rec) as mon:
            mon.on_start(start_event())
            mon.on_train_report(train_event(10, 2.5, 1.0))
            raise RuntimeError("training failed")
    assert rec.closed == 1 and rec.calls == [("train", 10)]
    assert [e["kind"] for e in read_metrics(tmp_path / monitor.METRICS_FILE)] == [
        "start",
        "train",
    ]
    tb = scalar_series(read_events(tmp_path / monitor.TENSORBOARD_DIR))  # closed, so flushed
    assert tb["train/loss"] == [(10, 2.5)]


# -- W&B with a fake module ------------------------------------------------------------------


class FakeRun:
    def __init__(self, log: list):
        self.log_calls = log
        self.summary = {}
        self.finished = 0

    def log(self, values, step):
        self.log_calls.append((step, values))

    def finish(self):
        self.finished += 1


def fake_wandb(monkeypatch, api_key: str | None):
    mod = types.ModuleType("wandb")
    mod.api = types.SimpleNamespace(api_key=api_key)
    mod.inits, mod.logged = [], []

    def init(**kwargs):
        mod.inits.append(kwargs)
        mod.run = FakeRun(mod.logged)
        return mod.run

    mod.init = init
    monkeypatch.setitem(sys.modules, "wandb", mod)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return mod


def test_wandb_logged_in_logs_the_tensorboard_scalars(monkeypatch, tmp_path):
    wandb = fake_wandb(monkeypatch, api_key="k" * 40)
    cb, note = wandb_callback("disco", "my-model", {"preset": "quick"}, dir=tmp_path)
    assert note == "logging to W&B project disco, run my-model"
    assert cb.optional and wandb.inits == []  # nothing sent before the run starts
    feed(cb, run_events())
    (init,) = wandb.inits
    assert init["project"] == "disco" and init["name"] == "my-model"
    assert init["dir"] == str(tmp_path)
    assert init["config"]["preset"] == "quick" and init["config"]["learning_rate"] == 1e-3
    assert init["config"]["method"] == "lora" and init["config"]["trainable_parameters"] == 1234
    # the same scalars at the same steps as TensorBoard
    series: dict = {}
    for step, values in wandb.logged:
        for tag, v in values.items():
            series.setdefault(tag, []).append((step, v))
    tb = TensorBoard(tmp_path / "tb")
    feed(tb, run_events())
    assert series == {
        tag: [(s, pytest.approx(v, rel=1e-6)) for s, v in pts]
        for tag, pts in scalar_series(read_events(tmp_path / "tb")).items()
    }
    assert wandb.run.summary["stop_reason"] == "max_steps" and wandb.run.finished == 1


def test_wandb_env_key_is_seen_through_wandbs_api(monkeypatch):
    # wandb's api object reads WANDB_API_KEY itself; the fake stands for it
    fake_wandb(monkeypatch, api_key=None)
    cb, note = wandb_callback("disco", "run", {})
    assert cb is None and note == monitor.WANDB_NOT_LOGGED_IN


def test_wandb_not_logged_in(monkeypatch):
    wandb = fake_wandb(monkeypatch, api_key="")
    cb, note = wandb_callback("disco", "run", {})
    assert cb is None
    assert note == "wandb is not logged in: run `wandb login` (or set WANDB_API_KEY)"
    assert wandb.inits == []


def test_wandb_offline_mode_needs_no_login(monkeypatch):
    fake_wandb(monkeypatch, api_key=None)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cb, note = wandb_callback("disco", "run", {})
    assert cb is not None and "offline" in note


def test_wandb_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cb, note = wandb_callback("disco", "run", {})
    assert (cb, note) == (None, "wandb is not installed: pip install wandb")
    warnings = []
    mon = monitor.make_monitor(tmp_path, wandb_project="disco", warn=warnings.append)
    assert warnings == ["wandb is not installed: pip install wandb; training goes on without W&B"]
    assert [type(c).__name__ for c in mon.callbacks] == ["MetricsJsonl", "TensorBoard"]


def test_a_failing_wandb_is_dropped_and_training_goes_on(monkeypatch, tmp_path):
    wandb = fake_wandb(monkeypatch, api_key="k")

    def broken_log(values, step):
        raise OSError("upload failed")

    cb, _ = wandb_callback("disco", "run", {})
    warnings = []
    fan = Fanout([MetricsJsonl(tmp_path / "m.jsonl"), cb], warn=warnings.append)
    fan.on_start(start_event())
    wandb.run.log = broken_log
    fan.on_train_report(train_event(10, 2.5, None))
    fan.on_train_report(train_event(20, 2.0, None))
    assert warnings == ["W&B failed (OSError: upload failed); training goes on without it"]
    assert wandb.run.finished == 1  # closed when dropped
    assert len(read_metrics(tmp_path / "m.jsonl")) == 3


# -- the live display ------------------------------------------------------------------------


def test_live_display_on_a_terminal_shows_the_numbers():
    console = Console(record=True, width=100, force_terminal=True, file=io.StringIO())
    events = run_events()
    with LiveDisplay(console, title="Training my-model") as display:
        feed(display, events[:4])  # start, train 10, train 20, val 20
        mid = Console(record=True, width=100, file=io.StringIO())
        mid.print(display.render())
        text = mid.export_text()
        assert "Training my-model (lora)" in text
        assert "20/40  50%" in text
        assert "2.0000" in text  # train loss
        assert "2.2500 (iter 20), best 2.2500 (iter 20)" in text
        assert "5.00e-04" in text  # learning rate
        assert "1,254 tokens/s, peak memory 0.12 GB" in text
        assert f"50s elapsed, {format_duration(time_left(20, 0, 40, 50.0))} left" in text
        assert "50s left" in text
        assert "█▁" in text  # the trend: 2.5 then 2.0
        feed(display, events[4:])
    final = console.export_text()
    assert "40/40  100%" in final
    assert "1.0000" in final and "2.5000 (iter 40), best 2.2500 (iter 20)" in final
    assert "0.1875 (interval 0.250, pitch_class 0.125)" in final
    assert "stopped" in final and "step limit reached" in final
    assert "1m40s elapsed" in final
    assert display.live is None


def test_live_display_of_a_resumed_run_keeps_the_best_it_was_told():
    console = Console(record=True, width=100, force_terminal=True, file=io.StringIO())
    with LiveDisplay(console) as display:
        display.on_start(start_event(start_step=20))
        text = render_text(display)
        assert "20/40  50%" in text and "waiting for the first steps" in text
        display.on_train_report(train_event(30, 1.5, 25.0))
        display.on_val_report(val_event(30, 2.5, 2.25, {}))  # the best was before the resume
        assert "2.5000 (iter 30), best 2.2500\n" in render_text(display)
        display.on_val_report(val_event(40, 2.0, 2.0, {}))
        assert "2.0000 (iter 40), best 2.0000 (iter 40)" in render_text(display)


def render_text(display) -> str:
    """The panel as text, each line without its right border and padding."""
    out = Console(record=True, width=100, file=io.StringIO())
    out.print(display.render())
    lines = out.export_text().splitlines()
    return "\n".join(line.rstrip().removesuffix("│").rstrip() for line in lines) + "\n"


def test_live_display_off_a_terminal_prints_plain_lines():
    out = io.StringIO()
    console = Console(file=out, width=100)
    assert not console.is_terminal
    with LiveDisplay(console) as display:
        feed(display, run_events())
    assert display.live is None
    assert out.getvalue().splitlines() == [
        "training lora: 1,234 of 56,789 parameters trainable, steps to 40",
        "iter 10: train loss 2.5000, lr 2.50e-04, 1244 tok/s, peak mem 0.12 GB, 1m15s left",
        "iter 20: train loss 2.0000, lr 5.00e-04, 1254 tok/s, peak mem 0.12 GB, 50s left",
        "iter 20: val loss 2.2500 (new best; bach 2.5000, jazz 2.0000), 0.5 s",
        "iter 30: train loss 1.5000, lr 7.50e-04, 1264 tok/s, peak mem 0.12 GB, 25s left",
        "iter 40: train loss 1.0000, lr 1.00e-03, 1274 tok/s, peak mem 0.12 GB, 0s left",
        "iter 40: val loss 2.5000 (best 2.2500; bach 2.7500, jazz 2.2500), 0.5 s",
        "iter 40: style distance 0.1875 (interval 0.2500, pitch_class 0.1250), 1 sample",
        "iter 40: checkpoint saved in runs/x/checkpoint",
    ]
    assert "\x1b" not in out.getvalue()


def test_plain_train_line_without_time_left():
    line = monitor.train_line(train_event(10, 1.23456, None))
    assert line == "iter 10: train loss 1.2346, lr 2.50e-04, 1244 tok/s, peak mem 0.12 GB"


def test_sparkline_maps_low_to_high():
    assert sparkline([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert sparkline([1.0, float("nan"), 3.0]) == "▁ █"
    assert sparkline(range(100), width=10) == "▁▂▃▃▄▅▆▆▇█"
    assert sparkline([]) == ""


# -- time left -------------------------------------------------------------------------------


def test_time_left_arithmetic():
    assert time_left(0, 0, 100, 0.0) is None  # no step yet
    assert time_left(400, 400, 1000, 5.0) is None  # resumed, no step in this session
    assert time_left(10, 0, 100, 20.0) == 180.0  # 2 s a step, 90 steps to go
    assert time_left(450, 400, 1000, 25.0) == 275.0  # resumed at 400: 0.5 s a step, 550 left
    assert time_left(100, 0, 100, 50.0) == 0.0
    assert time_left(120, 0, 100, 50.0) == 0.0  # never negative


def test_format_duration():
    assert [
        format_duration(s) for s in (None, float("nan"), 0, 42.4, 192, 3900, 2 * 86400 + 3 * 3600)
    ] == [
        "?",
        "?",
        "0s",
        "42s",
        "3m12s",
        "1h05m",
        "2d03h",
    ]

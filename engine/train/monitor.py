"""Monitoring a training run: one callback interface and the writers behind it.

The trainer reports plain dicts to one callback object; every view of a run is a callback:
the CLI's live panel (`engine.cli.train_live.LiveDisplay`), the Train screen of the studio,
`metrics.jsonl` (`MetricsJsonl`), TensorBoard event files (`TensorBoard`) and, when asked for,
installed and logged in, Weights & Biases (`wandb_callback`). `Fanout` hands each report to
several of them. Nothing here draws anything (no rich, no textual).

The six events and their dicts (every method is optional on a callback; the trainer calls
those present):

- ``on_start(info)``: ``max_steps``, ``start_step`` (> 0 when resumed), ``method`` ("lora",
  "full" ...), ``trainable_parameters``, ``total_parameters``, ``out_dir``, ``config`` (the
  TrainConfig as a dict);
- ``on_train_report(info)``: ``iteration``, ``train_loss``, ``learning_rate``,
  ``tokens_per_second``, ``peak_memory`` (GB), ``elapsed_s``, ``max_steps``, ``eta_s``
  (seconds left, None before it can be estimated; see `time_left`);
- ``on_val_report(info)``: ``iteration``, ``val_loss``, ``val_loss_by_group`` (group ->
  loss), ``best_val_loss``, ``is_best``, ``val_time_s``, ``elapsed_s``;
- ``on_sample_report(info)``: ``iteration``, ``distances`` (measure -> distance between the
  samples and the dataset, e.g. "pitch_class": 0.12), ``overall``, ``samples`` (file paths);
- ``on_checkpoint(info)``: ``iteration``, ``path``, ``kind`` ("checkpoint" or "best");
- ``on_end(summary)``: ``step``, ``best_val``, ``stop_reason`` (a key of `STOP_REASONS`),
  ``elapsed_s`` and whatever else the trainer's summary holds.

Layout in the run folder: ``metrics.jsonl`` (`METRICS_FILE`) and ``tensorboard/``
(`TENSORBOARD_DIR`; view with ``tensorboard --logdir RUN/tensorboard``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

# Event kind -> the callback method that receives it.
EVENTS = {
    "start": "on_start",
    "train": "on_train_report",
    "val": "on_val_report",
    "sample": "on_sample_report",
    "checkpoint": "on_checkpoint",
    "end": "on_end",
}

# Why a run stopped, for people (the summary's ``stop_reason`` -> words).
STOP_REASONS = {
    "max_steps": "step limit reached",
    "early_stop": "validation loss stopped improving",
    "time_budget": "time limit reached",
    "data_exhausted": "no more training data",
    "nan_loss": "the loss became NaN (the last good checkpoint is kept)",
    "stopped": "stopped by the user",
}

WANDB_NOT_INSTALLED = "wandb is not installed: pip install wandb"
WANDB_NOT_LOGGED_IN = "wandb is not logged in: run `wandb login` (or set WANDB_API_KEY)"


class Callback:
    """The monitoring interface: the trainer calls each method with a plain dict.

    Every method is a no-op here; subclass and override the ones you need (the keys of each
    dict are listed in this module's docstring). ``optional`` callbacks (a cloud logger)
    may fail without stopping training when run inside a `Fanout`. ``close()`` releases
    files or displays; it is safe to call more than once, and a callback used as a context
    manager closes on exit.
    """

    optional: bool = False
    name: str = ""

    def on_start(self, info: dict) -> None:
        """Training begins (or resumes at ``info["start_step"]``)."""

    def on_train_report(self, info: dict) -> None:
        """Every ``report_every`` steps: mean train loss since the last report, speed, memory."""

    def on_val_report(self, info: dict) -> None:
        """After each validation: loss overall and by group, the best so far."""

    def on_sample_report(self, info: dict) -> None:
        """After samples were generated and compared with the dataset."""

    def on_checkpoint(self, info: dict) -> None:
        """A checkpoint (``kind`` "checkpoint") or the best weights (``kind`` "best") saved."""

    def on_pause(self, info: dict) -> None:
        """Paused at ``info["iteration"]`` (`engine.train.trainer.TrainControl`), checkpointed."""

    def on_end(self, summary: dict) -> None:
        """Training finished; ``summary["stop_reason"]`` says why."""

    def close(self) -> None:
        """Release what the callback holds (files, a display)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _warn_stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _callback_name(callback: Any) -> str:
    return getattr(callback, "name", "") or type(callback).__name__


class Fanout(Callback):
    """Hands every event to each of ``callbacks`` in order (``None`` entries are skipped).

    The callbacks may be any objects with some of the six methods. One marked ``optional``
    (attribute ``optional = True``, e.g. W&B) that raises is dropped: ``warn`` gets one line
    naming it and the error (default: ``warning: ...`` on stderr), and training goes on;
    an error in any other callback propagates.
    """

    def __init__(
        self, callbacks: Iterable[Any] = (), warn: Callable[[str], None] | None = None
    ) -> None:
        self.callbacks = [c for c in callbacks if c is not None]
        self.warn = warn or _warn_stderr

    def add(self, callback: Any) -> None:
        if callback is not None:
            self.callbacks.append(callback)

    def _call(self, method: str, info: dict) -> None:
        for cb in list(self.callbacks):
            fn = getattr(cb, method, None)
            if fn is None:
                continue
            try:
                fn(info)
            except Exception as e:
                if not getattr(cb, "optional", False):
                    raise
                self._drop(cb, e)

    def _drop(self, cb: Any, error: Exception) -> None:
        self.callbacks.remove(cb)
        detail = str(error).splitlines()[0] if str(error) else ""
        self.warn(
            f"{_callback_name(cb)} failed ({type(error).__name__}"
            + (f": {detail}" if detail else "")
            + "); training goes on without it"
        )
        try:
            close = getattr(cb, "close", None)
            if close is not None:
                close()
        except Exception:
            pass

    def on_start(self, info: dict) -> None:
        self._call("on_start", info)

    def on_train_report(self, info: dict) -> None:
        self._call("on_train_report", info)

    def on_val_report(self, info: dict) -> None:
        self._call("on_val_report", info)

    def on_sample_report(self, info: dict) -> None:
        self._call("on_sample_report", info)

    def on_checkpoint(self, info: dict) -> None:
        self._call("on_checkpoint", info)

    def on_pause(self, info: dict) -> None:
        self._call("on_pause", info)

    def on_end(self, summary: dict) -> None:
        self._call("on_end", summary)

    def close(self) -> None:
        """Close every callback (each once; an optional one that fails is dropped)."""
        for cb in list(self.callbacks):
            close = getattr(cb, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception as e:
                if not getattr(cb, "optional", False):
                    raise
                self.callbacks.remove(cb)
                self.warn(f"{_callback_name(cb)} failed to close ({type(e).__name__}: {e})")


def _jsonable(value: Any) -> Any:
    """``value`` with what JSON cannot hold made plain: NaN and infinities -> None (strict
    JSON has no such numbers), paths -> str, numpy scalars -> Python numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item"):  # numpy / mlx scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


class MetricsJsonl(Callback):
    """Appends one JSON line per event to ``path`` (usually ``RUN/metrics.jsonl``):
    ``{"kind": "train"|"val"|"sample"|"checkpoint"|"start"|"end", "time": unix time, **info}``.

    Each line is flushed as it is written, so a killed run keeps every line before the kill;
    a resumed run appends after them (its "start" line has ``start_step``), and `read_metrics`
    drops the lines of steps that the resumed run does again. NaN and infinite numbers are
    written as null.
    """

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._file = None

    def _write(self, kind: str, info: dict) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.is_file() and self.path.stat().st_size > 0
            if partial:
                with self.path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    partial = f.read(1) != b"\n"
            self._file = self.path.open("a", encoding="utf-8")
            if partial:  # a run killed mid-line: start on a fresh line
                self._file.write("\n")
        line = json.dumps(_jsonable({"kind": kind, "time": self.clock(), **info}))
        self._file.write(line + "\n")
        self._file.flush()

    def on_start(self, info: dict) -> None:
        self._write("start", info)

    def on_train_report(self, info: dict) -> None:
        self._write("train", info)

    def on_val_report(self, info: dict) -> None:
        self._write("val", info)

    def on_sample_report(self, info: dict) -> None:
        self._write("sample", info)

    def on_checkpoint(self, info: dict) -> None:
        self._write("checkpoint", info)

    def on_end(self, summary: dict) -> None:
        self._write("end", summary)
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(path: str | Path, latest: bool = True) -> list[dict]:
    """The events of a ``metrics.jsonl``, in order; a line that does not parse (the last line
    of a run killed while writing it) is skipped.

    ``latest=True``: a "start" line with ``start_step`` S (a resume) drops the earlier
    train/val/sample/checkpoint events after step S, which the resumed run does again, so
    that each step is reported once, by the run whose weights went on.
    """
    events: list[dict] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if latest and event.get("kind") == "start":
            start = event.get("start_step") or 0
            events = [
                e
                for e in events
                if e.get("kind") in ("start", "end") or (e.get("iteration") or 0) <= start
            ]
        events.append(event)
    return events


def scalars(kind: str, info: dict) -> dict[str, float]:
    """The scalars that TensorBoard and W&B log for an event of ``kind`` (see `EVENTS`):

    train: ``train/loss``, ``train/learning_rate``, ``train/tokens_per_second``,
    ``train/peak_memory_gb``; val: ``val/loss``, ``val/best_loss``, ``val/loss/<group>``;
    sample: ``style/<measure>``, ``style/overall``. Missing or None values are left out.
    """
    if kind == "train":
        pairs = [
            ("train/loss", info.get("train_loss")),
            ("train/learning_rate", info.get("learning_rate")),
            ("train/tokens_per_second", info.get("tokens_per_second")),
            ("train/peak_memory_gb", info.get("peak_memory")),
        ]
    elif kind == "val":
        pairs = [("val/loss", info.get("val_loss")), ("val/best_loss", info.get("best_val_loss"))]
        by_group = info.get("val_loss_by_group") or {}
        pairs += [(f"val/loss/{g}", by_group[g]) for g in sorted(by_group)]
    elif kind == "sample":
        distances = info.get("distances") or {}
        pairs = [(f"style/{m}", distances[m]) for m in sorted(distances)]
        pairs.append(("style/overall", info.get("overall")))
    else:
        return {}
    return {tag: float(v) for tag, v in pairs if v is not None}


def _markdown_table(values: dict) -> str:
    rows = [f"| {k} | {json.dumps(_jsonable(v))} |" for k, v in sorted(values.items())]
    return "\n".join(["| setting | value |", "|---|---|", *rows])


def run_description(info: dict) -> str:
    """One line about a starting run: ``lora: 1,234 of 56,789 parameters trainable, steps
    to 2000`` (``, resumed at step 400`` when resumed)."""
    parts = [str(info.get("method") or "training")]
    trainable, total = info.get("trainable_parameters"), info.get("total_parameters")
    if trainable is not None and total:
        parts.append(f": {trainable:,} of {total:,} parameters trainable")
    if info.get("max_steps"):
        parts.append(f", steps to {info['max_steps']}")
    if info.get("start_step"):
        parts.append(f", resumed at step {info['start_step']}")
    return "".join(parts)


class TensorBoard(Callback):
    """TensorBoard event files in ``logdir`` (tensorboardX; no account, nothing uploaded).

    Scalars (see `scalars`) at the step of each report; the run's description and its
    settings as text on start; the summary as text on end. Each event is on disk when the
    method returns (a run killed later keeps it, and ``tensorboard --logdir`` shows it at
    once); closed on end. A resumed run (``start_step`` S > 0) writes a new event file that
    tells TensorBoard to hide the earlier files' events after step S.

    The events are written by tensorboardX's synchronous `EventsWriter` rather than its
    `SummaryWriter`, whose ``flush()`` does not wait for the events still queued for its
    writer thread (they reach the file up to ``flush_secs`` later, or at ``close()``).
    tensorboardX is imported when the first event comes (about a second: it imports torch
    when torch is installed).
    """

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self.writer = None

    def _write(self, step: int, summary=None, purge: bool = False) -> None:
        from tensorboardX.proto.event_pb2 import Event, SessionLog

        if self.writer is None:
            from tensorboardX.event_file_writer import EventsWriter

            self.logdir.mkdir(parents=True, exist_ok=True)
            # The file is named by the second it is opened in; the suffix keeps a run resumed
            # within the same second from overwriting the first file, and sorts after it.
            self.writer = EventsWriter(str(self.logdir / "events"), f".{time.time_ns()}")
        if purge:
            log = SessionLog(status=SessionLog.START)
            event = Event(wall_time=time.time(), step=step, session_log=log)
        else:
            event = Event(wall_time=time.time(), step=step, summary=summary)
        self.writer.write_event(event)

    def _text(self, tag: str, text: str, step: int) -> None:
        from tensorboardX.summary import text as text_summary

        self._write(step, text_summary(tag, text))

    def _scalars(self, kind: str, info: dict) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=t, simple_value=v) for t, v in scalars(kind, info).items()]
        if values:
            self._write(int(info["iteration"]), Summary(value=values))
            self.writer.flush()

    def on_start(self, info: dict) -> None:
        start = int(info.get("start_step") or 0)
        if start > 0:
            self._write(start + 1, purge=True)
        self._text("run", run_description(info), start)
        if info.get("config"):
            self._text("config", _markdown_table(info["config"]), start)
        self.writer.flush()

    def on_train_report(self, info: dict) -> None:
        self._scalars("train", info)

    def on_val_report(self, info: dict) -> None:
        self._scalars("val", info)

    def on_sample_report(self, info: dict) -> None:
        self._scalars("sample", info)

    def on_end(self, summary: dict) -> None:
        reason = summary.get("stop_reason")
        line = f"stopped at step {summary.get('step')}: {STOP_REASONS.get(reason, reason)}"
        if summary.get("best_val") is not None:
            line += f", best validation loss {summary['best_val']:.4f}"
        self._text("summary", line, int(summary.get("step") or 0))
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


class WandbCallback(Callback):
    """Logs the same scalars as `TensorBoard` to a Weights & Biases run (made by
    `wandb_callback`). Optional: inside a `Fanout`, an error drops it with one warning."""

    optional = True
    name = "W&B"

    def __init__(
        self, wandb: Any, project: str, run_name: str, config: dict, dir: str | None = None
    ) -> None:
        self.wandb = wandb
        self.project, self.run_name, self.config, self.dir = project, run_name, config, dir
        self.run = None

    def _init(self, info: dict | None = None):
        if self.run is None:
            config = dict(_jsonable(self.config or {}))
            if info:
                config.update(
                    _jsonable({k: v for k, v in info.items() if k not in ("config", "out_dir")})
                )
                config.update(_jsonable(info.get("config") or {}))
            kwargs = {"project": self.project, "name": self.run_name, "config": config}
            if self.dir is not None:
                kwargs["dir"] = self.dir
            self.run = self.wandb.init(**kwargs)
        return self.run

    def _log(self, kind: str, info: dict) -> None:
        values = scalars(kind, info)
        if values:
            self._init().log(values, step=int(info["iteration"]))

    def on_start(self, info: dict) -> None:
        self._init(info)

    def on_train_report(self, info: dict) -> None:
        self._log("train", info)

    def on_val_report(self, info: dict) -> None:
        self._log("val", info)

    def on_sample_report(self, info: dict) -> None:
        self._log("sample", info)

    def on_end(self, summary: dict) -> None:
        run = self._init()
        run.summary.update(_jsonable(summary))
        self.close()

    def close(self) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish()


def _wandb_api_key(wandb: Any) -> str | None:
    """The API key wandb would use (WANDB_API_KEY, its settings or netrc), asked of wandb's
    own API so that nothing prompts; None when it has none."""
    try:
        return getattr(getattr(wandb, "api", None), "api_key", None) or None
    except Exception:
        return None


def wandb_callback(
    project: str, run_name: str, config: dict, dir: str | Path | None = None
) -> tuple[Callback | None, str]:
    """A W&B callback when ``wandb`` is installed and logged in (or in offline mode,
    ``WANDB_MODE=offline``), else None; with a one-line note either way: where it logs, or why
    it cannot (`WANDB_NOT_INSTALLED`, `WANDB_NOT_LOGGED_IN`).

    Nothing is sent until the first event (``wandb.init`` runs on ``on_start``); ``dir`` is
    where wandb keeps its local files (a ``wandb/`` folder inside it).
    """
    try:
        import wandb
    except ImportError:
        return None, WANDB_NOT_INSTALLED
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode == "disabled":
        return None, "wandb is disabled (WANDB_MODE=disabled)"
    offline = mode in ("offline", "dryrun")
    if not offline and _wandb_api_key(wandb) is None:
        return None, WANDB_NOT_LOGGED_IN
    where = "offline (sync later with `wandb sync`)" if offline else f"project {project}"
    callback = WandbCallback(wandb, project, run_name, config, None if dir is None else str(dir))
    return callback, f"logging to W&B {where}, run {run_name}"


def make_monitor(
    out_dir: str | Path,
    display: Any = None,
    wandb_project: str | None = None,
    run_name: str | None = None,
    config: dict | None = None,
    warn: Callable[[str], None] | None = None,
) -> Fanout:
    """The usual callbacks of a run in ``out_dir``: ``display`` (a live view, or None),
    ``metrics.jsonl``, TensorBoard files in ``tensorboard/`` and, when ``wandb_project`` is
    given, W&B (if it cannot be used, ``warn`` gets the reason and the run goes on without
    it). Use as a context manager, so that files are closed even if training fails."""
    out_dir = Path(out_dir)
    warn = warn or _warn_stderr
    callbacks = [
        display,
        MetricsJsonl(out_dir / METRICS_FILE),
        TensorBoard(out_dir / TENSORBOARD_DIR),
    ]
    if wandb_project:
        cb, note = wandb_callback(wandb_project, run_name or out_dir.name, config or {}, out_dir)
        if cb is None:
            warn(f"{note}; training goes on without W&B")
        callbacks.append(cb)
    return Fanout(callbacks, warn=warn)


def time_left(
    iteration: int, start_step: int, max_steps: int, elapsed_s_since_start: float
) -> float | None:
    """Seconds until ``max_steps`` at the pace of this session: the time since it started
    (at ``start_step``, validation included) per step done, times the steps still to do.
    None before this session has done a step."""
    done = iteration - start_step
    if done <= 0 or elapsed_s_since_start < 0:
        return None
    return max(max_steps - iteration, 0) * elapsed_s_since_start / done


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m12s``, ``1h05m``, ``2d03h``; ``?`` for None or not a number."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def train_line(info: dict) -> str:
    """``iter 40: train loss 1.2345, lr 1.00e-03, 1234 tok/s, peak mem 0.12 GB, 3m12s left``
    (no time left before it is known)."""
    line = (
        f"iter {info['iteration']}: train loss {info['train_loss']:.4f}, "
        f"lr {info['learning_rate']:.2e}, {info['tokens_per_second']:.0f} tok/s, "
        f"peak mem {info['peak_memory']:.2f} GB"
    )
    if info.get("eta_s") is not None:
        line += f", {format_duration(info['eta_s'])} left"
    return line


def val_line(info: dict) -> str:
    """``iter 40: val loss 1.1000 (best 1.0000), 2.1 s`` with the groups' losses, if any,
    after the best: ``(best 1.0000; bach 1.2000, jazz 1.0500)``; ``(new best)`` when it is."""
    inside = ["new best" if info.get("is_best") else f"best {info['best_val_loss']:.4f}"]
    groups = info.get("val_loss_by_group") or {}
    line = f"iter {info['iteration']}: val loss {info['val_loss']:.4f} ({inside[0]}"
    if groups:
        line += "; " + ", ".join(f"{g} {groups[g]:.4f}" for g in sorted(groups))
    line += ")"
    if info.get("val_time_s") is not None:
        line += f", {info['val_time_s']:.1f} s"
    return line


def sample_line(info: dict) -> str:
    """``iter 40: style distance 0.2345 (interval 0.1000, pitch_class 0.1200), 4 samples``."""
    d = info.get("distances") or {}
    line = f"iter {info['iteration']}: style distance {info['overall']:.4f}"
    if d:
        line += " (" + ", ".join(f"{m} {d[m]:.4f}" for m in sorted(d)) + ")"
    n = len(info.get("samples") or [])
    return line + f", {n} sample{'s' if n != 1 else ''}"

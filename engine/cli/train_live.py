"""The live view of a training run on the terminal: a training callback drawn with rich.

On a terminal, `LiveDisplay` keeps one panel up to date (steps, losses with a trend line,
learning rate, speed, memory, elapsed and time left, style distances); elsewhere (a log
file, a pipe) it prints one plain line per report, with no escape codes.
"""

from __future__ import annotations

import threading
from collections import deque

from engine.train import monitor
from engine.train.monitor import Callback, format_duration

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
TREND_POINTS = 48  # train reports kept for the trend line
REFRESH_PER_SECOND = 4


def sparkline(values, width: int = TREND_POINTS) -> str:
    """The last ``width`` of ``values`` as block characters, lowest ▁ to highest █; a value
    that is not a finite number is a space; all equal values draw a flat middle line."""
    values = list(values)[-width:]
    finite = [v for v in values if v is not None and v == v and abs(v) != float("inf")]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    top = len(SPARK_BLOCKS) - 1
    chars = []
    for v in values:
        if v is None or v != v or abs(v) == float("inf"):
            chars.append(" ")
        elif hi == lo:
            chars.append(SPARK_BLOCKS[top // 2])
        else:
            chars.append(SPARK_BLOCKS[round((v - lo) / (hi - lo) * top)])
    return "".join(chars)


class LiveDisplay(Callback):
    """A training callback that shows the run on ``console`` (a rich Console, e.g.
    `engine.cli.progress.make_console()`); use it as a context manager, or call ``close()``.

    On a terminal: a `rich.live.Live` panel, redrawn at most ``REFRESH_PER_SECOND`` times a
    second from the latest reports; it starts with the first event and stays on screen at
    the end. Otherwise: one plain line per start, train, validation, sample and checkpoint
    report (`engine.train.monitor.train_line` ...).
    """

    def __init__(self, console, title: str = "Training") -> None:
        self.console = console
        self.title = title
        self.live = None
        self.lock = threading.Lock()
        self.start: dict = {}
        self.train: dict | None = None
        self.val: dict | None = None
        self.best_iteration: int | None = None  # where the best validation loss was seen
        self.sample: dict | None = None
        self.first_overall: float | None = None
        self.losses: deque[float] = deque(maxlen=TREND_POINTS)
        self.checkpoint: dict | None = None
        self.end: dict | None = None

    # -- events --------------------------------------------------------------------------

    def _update(self, line: str | None, **state) -> None:
        with self.lock:
            for key, value in state.items():
                setattr(self, key, value)
        if not self.console.is_terminal:
            if line is not None:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        if self.live is None and self.end is None:
            from rich.live import Live

            self.live = Live(
                get_renderable=self.render,
                console=self.console,
                refresh_per_second=REFRESH_PER_SECOND,
                transient=False,
            )
            self.live.start()

    def on_start(self, info: dict) -> None:
        self._update(f"training {monitor.run_description(info)}", start=dict(info))

    def on_train_report(self, info: dict) -> None:
        with self.lock:
            self.losses.append(info["train_loss"])
        self._update(monitor.train_line(info), train=dict(info))

    def on_val_report(self, info: dict) -> None:
        best_iteration = info["iteration"] if info.get("is_best") else self.best_iteration
        self._update(monitor.val_line(info), val=dict(info), best_iteration=best_iteration)

    def on_sample_report(self, info: dict) -> None:
        first = self.first_overall if self.first_overall is not None else info.get("overall")
        self._update(monitor.sample_line(info), sample=dict(info), first_overall=first)

    def on_checkpoint(self, info: dict) -> None:
        line = None
        if info.get("kind") == "checkpoint":
            line = f"iter {info['iteration']}: checkpoint saved in {info['path']}"
        self._update(line, checkpoint=dict(info))

    def on_end(self, summary: dict) -> None:
        with self.lock:
            self.end = dict(summary)
        self.close()

    def close(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            live.stop()  # draws the last state once more, and leaves it on screen

    # -- the panel -----------------------------------------------------------------------

    def render(self):
        """The panel of the latest state (a rich renderable)."""
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            start, train, val, sample, end = self.start, self.train, self.val, self.sample, self.end
            best_iteration, first_overall = self.best_iteration, self.first_overall
            losses = list(self.losses)
        if best_iteration is None and end is not None:
            best_iteration = end.get("best_step")

        max_steps = (train or {}).get("max_steps") or start.get("max_steps")
        step = (train or {}).get("iteration", start.get("start_step", 0))
        if end is not None and end.get("step") is not None:
            step = end["step"]
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()

        if max_steps:
            bar = Table.grid(padding=(0, 1))
            bar.add_row(
                ProgressBar(total=max_steps, completed=min(step, max_steps), width=40),
                Text(f"{step}/{max_steps}  {100 * step / max_steps:.0f}%"),
            )
            grid.add_row("steps", bar)
        else:
            grid.add_row("steps", str(step))
        if train is not None:
            trend = sparkline(losses)
            grid.add_row(
                "train loss", Text(f"{train['train_loss']:.4f}  ") + Text(trend, style="cyan")
            )
        if val is not None:
            text = f"{val['val_loss']:.4f} (iter {val['iteration']})"
            if val.get("best_val_loss") is not None:
                text += f", best {val['best_val_loss']:.4f}"
                if best_iteration is not None:  # not known yet after a resume
                    text += f" (iter {best_iteration})"
            grid.add_row("val loss", text)
        if train is not None:
            grid.add_row("learning rate", f"{train['learning_rate']:.2e}")
            grid.add_row(
                "speed",
                f"{train['tokens_per_second']:,.0f} tokens/s, peak memory "
                f"{train['peak_memory']:.2f} GB",
            )
        elapsed = (end or train or {}).get("elapsed_s")
        if elapsed is not None:
            left = "" if end is not None else f", {format_duration(train.get('eta_s'))} left"
            grid.add_row("time", f"{format_duration(elapsed)} elapsed{left}")
        if sample is not None:
            text = f"{sample['overall']:.4f}"
            if first_overall is not None and sample["overall"] != first_overall:
                text = f"{first_overall:.4f} -> " + text
            d = sample.get("distances") or {}
            if d:
                text += " (" + ", ".join(f"{m} {d[m]:.3f}" for m in sorted(d)) + ")"
            grid.add_row("style distance", text)
        if end is not None:
            reason = end.get("stop_reason")
            grid.add_row("stopped", monitor.STOP_REASONS.get(reason, str(reason)))
        elif not train:
            grid.add_row("", Text("waiting for the first steps...", style="dim"))

        title = self.title
        if start.get("method"):
            title += f" ({start['method']})"
        return Panel(grid, title=title, title_align="left", expand=False)

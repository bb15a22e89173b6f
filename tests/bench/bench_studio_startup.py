"""The studio's start-up: from process start to the first frame of the app.

    python -m tests.bench.bench_studio_startup [--runs 7]

Each run is a fresh ``python`` process, headless at 120×40, over an empty temporary home,
library and output folder, with no audio device. The parent notes the wall clock just before
it starts the process; the child, once the first frame is drawn (the first refresh after
``on_mount``), prints the seconds since then and exits. Median over ``--runs`` runs of:

(a) ours: the studio app (``tui.app.make_app``), its Make screen drawn; target <= 1 s;
(b) ``python -c "import textual.app"`` (the whole process, as a reference);
(c) a bare Textual ``App`` with one ``Static``, its first frame (the same measure as (a));

and ours / bare. Also whether mlx, torch or transformers were imported by then (by the app or
its start-up workers): mlx must not be (the engine loads it in the worker, when a piece is
first written).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0
ROOT = Path(__file__).resolve().parents[2]

FIRST_FRAME = """
import json, os, sys, time

def report(app):
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"mlx", "torch", "transformers"})
    print(json.dumps({"s": time.time() - float(os.environ["T0"]), "heavy": heavy}))
    app.exit()

def timed(cls):
    import inspect
    from pathlib import Path

    css = getattr(cls, "CSS_PATH", None)  # relative to cls's file, not to this -c script

    class Timed(cls):
        if isinstance(css, str):
            CSS_PATH = str(Path(inspect.getfile(cls)).parent / css)

        def on_mount(self):
            mount = getattr(super(), "on_mount", None)
            if mount is not None:
                mount()
            self.call_after_refresh(report, self)
    return Timed
"""

OURS = (
    FIRST_FRAME
    + """
from pathlib import Path
from tui.app import StudioApp
d = Path(sys.argv[1])
app = timed(StudioApp)(library=d / "lib", output=d / "out", settings_file=d / "studio.json",
                       first_run=False, audio=False)
app.run(headless=True, size=(120, 40))
"""
)

BARE = (
    FIRST_FRAME
    + """
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("hello")

timed(Bare)().run(headless=True, size=(120, 40))
"""
)


def child(code: str, folder: Path) -> dict:
    env = {**os.environ, "DISCO_MUSICA_HOME": str(folder / "home")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["T0"] = repr(time.time())
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    whole = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the run failed:\n{done.stderr}")
    line = next((x for x in done.stdout.splitlines() if x.startswith("{")), None)
    out = json.loads(line) if line else {}
    out["whole"] = whole
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    ours, bare, imports, heavy = [], [], [], set()
    with tempfile.TemporaryDirectory(prefix="disco-musica-startup-") as tmp:
        child(OURS, Path(tmp))  # a first run, not counted: .pyc files, the disk cache
        for i in range(args.runs):
            folder = Path(tmp) / f"run-{i}"
            folder.mkdir()
            r = child(OURS, folder)
            ours.append(r["s"])
            heavy |= set(r["heavy"])
            imports.append(child("import textual.app", folder)["whole"])
            bare.append(child(BARE, folder)["s"])
            print(
                f"  run {i + 1}: ours {ours[-1]:.3f} s, import textual.app "
                f"{imports[-1]:.3f} s, bare app {bare[-1]:.3f} s",
                flush=True,
            )

    med_ours, med_bare = statistics.median(ours), statistics.median(bare)
    med_import = statistics.median(imports)
    print(
        f"\nstart-up to the first frame, median of {args.runs} runs "
        f"(python {sys.version.split()[0]})"
    )
    print("| what | median s | worst s |")
    print("|---|---:|---:|")
    print(f"| studio (Make screen drawn) | {med_ours:.3f} | {max(ours):.3f} |")
    print(
        f'| python -c "import textual.app" (whole process) | {med_import:.3f} '
        f"| {max(imports):.3f} |"
    )
    print(f"| bare Textual App, first frame | {med_bare:.3f} | {max(bare):.3f} |")
    print(f"\nours / bare app: {med_ours / med_bare:.2f}x")
    met = "yes" if med_ours <= TARGET_S else "NO"
    print(f"target: studio <= {TARGET_S:g} s: {met}")
    for name in ("mlx", "torch", "transformers"):
        print(f"{name} imported by the first frame: {'YES' if name in heavy else 'no'}")
    if "mlx" in heavy:
        print("mlx must not be imported at start-up: the engine loads it in the worker")


if __name__ == "__main__":
    main()

"""The studio's settings, kept in the user's config folder as JSON.

``$DISCO_MUSICA_HOME/studio.json`` when that variable is set, else
``platformdirs.user_config_path("disco-musica")/studio.json``. A damaged or foreign file is
never overwritten silently: it is read as the defaults, the problem is reported once, and
the next save moves it aside to ``studio.json.damaged`` first.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.atomic import write_text_atomic

SETTINGS_FILE = "studio.json"
THEMES = ("disco-dark", "disco-high-contrast", "disco-light")
DEFAULT_THEME = THEMES[0]
DENSITIES = ("comfortable", "compact")
PALETTES = ("okabe-ito", "classic")  # part colours: colour-blind safe first


def settings_path() -> Path:
    """Where the settings live (see the module docstring)."""
    home = os.environ.get("DISCO_MUSICA_HOME")
    if home:
        return Path(home).expanduser() / SETTINGS_FILE
    import platformdirs

    return platformdirs.user_config_path("disco-musica", appauthor=False) / SETTINGS_FILE


@dataclass
class Settings:
    """What the studio remembers between runs."""

    theme: str = DEFAULT_THEME
    density: str = DENSITIES[0]
    palette: str = PALETTES[0]
    audio_device: str | None = None  # None: the system's default output
    library: str | None = None  # None: the library's usual place (see engine.library.store)
    output: str | None = None  # None: the usual output folder (see tui.app.default_output)
    plain: bool = False  # widgets announce changes as text lines (screen readers)
    reduced_motion: bool = False
    first_run_done: bool = False
    last_prompts: list[str] = field(default_factory=list)
    problem: str | None = field(default=None, compare=False)
    """Why the file could not be read (shown once; not saved)."""

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """The settings at ``path`` (default `settings_path`); defaults where absent or bad."""
        path = path or settings_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except UnicodeDecodeError:
            return cls(problem=f"{path} is not a settings file (not text); using the defaults")
        except OSError as e:
            return cls(problem=f"cannot read {path} ({e.strerror}); using the defaults")
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            return cls(problem=f"{path} is not a settings file; using the defaults")
        s = cls()
        known = {f.name: f for f in fields(cls) if f.name != "problem"}
        for name, value in data.items():
            if name in known and _valid(name, value):
                setattr(s, name, value)
        return s

    def save(self, path: Path | None = None) -> Path:
        """Write the settings atomically (a damaged file is first moved aside, never lost)."""
        path = path or settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.problem and path.exists():
            aside, n = path.with_name(path.name + ".damaged"), 2
            while aside.exists():  # an earlier damaged file stays as it is
                aside, n = path.with_name(f"{path.name}.damaged-{n}"), n + 1
            path.replace(aside)
            self.problem = None
        data = {k: v for k, v in asdict(self).items() if k != "problem"}
        return write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def _valid(name: str, value) -> bool:
    choices = {"theme": THEMES, "density": DENSITIES, "palette": PALETTES}
    if name in choices:
        return value in choices[name]
    if name in ("plain", "reduced_motion", "first_run_done"):
        return isinstance(value, bool)
    if name in ("audio_device", "library", "output"):
        return value is None or (isinstance(value, str) and value.strip() != "")
    if name == "last_prompts":
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    return False

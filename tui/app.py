"""The studio app: ``disco-musica studio``.

`make_app` builds it (tests give it a temporary library, output folder and settings file);
`main` is the ``studio`` command. Screens come from the registry in `tui.screens`; each is a
Textual mode opened by its function key, by the tabs line, or from the command palette
(Ctrl+P), which also reaches every action of the current screen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.theme import Theme

from tui.screens import ScreenEntry, registered
from tui.settings import DEFAULT_THEME, THEMES, Settings, settings_path

REDUCED_MOTION_ENV = "DISCO_MUSICA_REDUCED_MOTION"
PLAIN_ENV = "DISCO_MUSICA_PLAIN"

# Our themes. Dark and light use the Okabe-Ito colours (safe for the common colour-blindness
# types); high contrast is white and yellow on black, every text at least 7:1 (WCAG AAA).
STUDIO_THEMES = (
    Theme(
        name="disco-dark",
        primary="#56B4E9",
        secondary="#E69F00",
        accent="#F0E442",
        warning="#E69F00",
        error="#D55E00",
        success="#009E73",
        foreground="#E8E8E8",
        background="#14161A",
        surface="#1E2127",
        panel="#262A31",
        dark=True,
    ),
    Theme(
        name="disco-high-contrast",
        primary="#FFFF00",
        secondary="#00FFFF",
        accent="#FFFFFF",
        warning="#FFFF00",
        error="#FF6060",
        success="#00FF00",
        foreground="#FFFFFF",
        background="#000000",
        surface="#000000",
        panel="#000000",
        boost="#FFFFFF",
        dark=True,
        variables={
            "border": "#FFFFFF",
            "border-blurred": "#BBBBBB",
            "block-cursor-background": "#FFFF00",
            "block-cursor-foreground": "#000000",
            "input-selection-background": "#FFFF00 60%",
            "footer-key-foreground": "#FFFF00",
        },
    ),
    Theme(
        name="disco-light",
        primary="#0072B2",
        secondary="#A05A00",
        accent="#CC79A7",
        warning="#A05A00",
        error="#B24000",
        success="#006E50",
        foreground="#111111",
        background="#FAFAF7",
        surface="#FFFFFF",
        panel="#EDEDE8",
        dark=False,
    ),
)


def default_output() -> Path:
    """Where the studio writes its pieces' folders (they are also kept in the library):
    ``$DISCO_MUSICA_HOME/studio``, else the user's music folder / Disco-Musica."""
    home = os.environ.get("DISCO_MUSICA_HOME")
    if home:
        return Path(home).expanduser() / "studio"
    import platformdirs

    return platformdirs.user_music_path() / "Disco-Musica"


class StudioApp(App):
    """Disco-Musica's studio: make, see, hear, change, keep; the library; the models."""

    TITLE = "Disco-Musica studio"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMAND_PALETTE_BINDING = "ctrl+p"
    BINDINGS = [
        Binding("f1", "help", "Help", priority=True),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True),
        Binding("ctrl+t", "next_theme", "Theme", show=False),
        Binding("ctrl+comma,f9", "settings", "Settings", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        *,
        library: str | Path | None = None,
        output: str | Path | None = None,
        settings: Settings | None = None,
        settings_file: str | Path | None = None,
        model: str | None = None,
        first_run: bool | None = None,
        plain: bool | None = None,
        audio: bool = True,
    ):
        self.settings_file = Path(settings_file) if settings_file else settings_path()
        self.settings = settings if settings is not None else Settings.load(self.settings_file)
        self.library_path = (
            Path(library).expanduser()
            if library is not None
            else (Path(self.settings.library).expanduser() if self.settings.library else None)
        )
        self.output_root = (
            Path(output).expanduser()
            if output is not None
            else (Path(self.settings.output).expanduser() if self.settings.output else None)
        ) or default_output()
        self.model_name = model
        self.plain = self.settings.plain if plain is None else plain
        if os.environ.get(PLAIN_ENV):
            self.plain = True
        self.first_run = (not self.settings.first_run_done) if first_run is None else first_run
        self.audio_enabled = audio
        self.announcements: list[str] = []
        self.entries: list[ScreenEntry] = registered()
        self.MODES = {e.name: e.factory for e in self.entries}
        super().__init__()
        if self.settings.reduced_motion or os.environ.get(REDUCED_MOTION_ENV):
            self.animation_level = "none"
        for e in self.entries:
            self.bind(e.key, f"switch_screen('{e.name}')", description=e.title, show=True)

    @property
    def reduced_motion(self) -> bool:
        return self.animation_level == "none"

    # -- start --
    def on_mount(self) -> None:
        import gc

        gc.freeze()  # the modules loaded so far stay: no full collection walks them again
        for theme in STUDIO_THEMES:
            self.register_theme(theme)
        self.theme = self.settings.theme if self.settings.theme in THEMES else DEFAULT_THEME
        if self.plain:
            self.add_class("plain")
        if self.settings.density == "compact":
            self.add_class("compact")
        self.switch_mode(self.entries[0].name)
        if self.settings.problem:
            self.notify(self.settings.problem, severity="warning", timeout=8)
        if self.first_run:
            from tui.screens._wizard import WizardScreen

            self.push_screen(WizardScreen(), self._wizard_done)

    def on_unmount(self) -> None:
        import gc

        gc.unfreeze()  # (a process that goes on after the app, a test run, collects them)

    def _wizard_done(self, result) -> None:
        self.settings.first_run_done = True
        self.save_settings()
        screen = self.screen
        if isinstance(result, str) and result:
            start = getattr(screen, "start_from_prompt", None)
            if start is not None:
                start(result)
        elif hasattr(screen, "action_focus_prompt"):
            screen.action_focus_prompt()

    async def action_quit(self) -> None:
        """Leave, after what is being kept is on disk: a changed version not yet kept is
        kept now; a piece being written is cancelled (nothing half-written is left)."""
        waiting = []
        for screen in self.screen_stack + list(self._installed_screens_or_modes()):
            finish = getattr(screen, "finish_before_exit", None)
            if finish is not None:
                waiting += finish()
        for worker in waiting:
            await worker.wait()
        self.exit()

    def _installed_screens_or_modes(self):
        for stack in self._screen_stacks.values():
            yield from stack

    # -- settings --
    def save_settings(self) -> None:
        try:
            self.settings.save(self.settings_file)
        except OSError as e:
            self.notify(f"cannot save the settings to {self.settings_file}: {e.strerror}")

    def watch_theme(self, theme: str) -> None:
        if theme in THEMES and self.settings.theme != theme:
            self.settings.theme = theme
            self.save_settings()
            self.announce(f"theme: {theme}")

    def action_next_theme(self) -> None:
        i = THEMES.index(self.theme) if self.theme in THEMES else -1
        self.theme = THEMES[(i + 1) % len(THEMES)]

    def set_plain(self, plain: bool) -> None:
        self.plain = self.settings.plain = plain
        self.set_class(plain, "plain")
        self.save_settings()
        self.announce("plain mode on" if plain else "plain mode off")

    def set_reduced_motion(self, on: bool) -> None:
        self.settings.reduced_motion = on
        self.animation_level = "none" if on else "full"
        self.save_settings()
        self.announce("reduced motion on" if on else "reduced motion off")

    # -- screens --
    def action_switch_screen(self, name: str) -> None:
        if name in self.MODES and self.current_mode != name:
            self.switch_mode(name)
            title = next(e.title for e in self.entries if e.name == name)
            self.announce(f"{title} screen")

    def action_settings(self) -> None:
        from tui.screens._settings import SettingsScreen

        if not isinstance(self.screen, SettingsScreen):
            self.push_screen(SettingsScreen())

    def action_help(self) -> None:
        from tui.screens._help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- telling the user --
    def announce(self, text: str) -> None:
        """Say a state change in words: kept in ``announcements``, shown by the current
        screen's announcer (plain mode)."""
        self.announcements.append(text)
        from tui.widgets.announcer import Announcer

        for announcer in self.screen.query(Announcer):
            announcer.say(text)

    def show_error(self, message: str, title: str = "Problem") -> None:
        from tui.screens._modals import ErrorScreen

        self.push_screen(ErrorScreen(message, title))

    # -- the command palette --
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for e in self.entries:
            yield SystemCommand(
                f"Go to {e.title}",
                e.description or f"open the {e.title} screen ({e.key.upper()})",
                lambda name=e.name: self.action_switch_screen(name),
            )
        yield SystemCommand("Help: every key", "all the bindings (F1)", self.action_help)
        yield SystemCommand(
            "Settings",
            "theme, density, colours, audio output, library and output folders (F9)",
            self.action_settings,
        )
        yield SystemCommand(
            "Theme: next", "dark, high contrast, light (Ctrl+T)", self.action_next_theme
        )
        yield SystemCommand(
            "Plain mode: " + ("off" if self.plain else "on"),
            "announce changes as lines of text (for screen readers)",
            lambda: self.set_plain(not self.plain),
        )
        yield SystemCommand(
            "Reduced motion: " + ("off" if self.reduced_motion else "on"),
            "no animations; the playhead moves once a beat",
            lambda: self.set_reduced_motion(not self.reduced_motion),
        )
        from tui.screens._wizard import WizardScreen

        yield SystemCommand(
            "First steps again",
            "the four-step introduction",
            lambda: self.push_screen(WizardScreen(), self._wizard_done),
        )
        commands = getattr(screen, "commands", None)
        if commands is not None:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)
        yield SystemCommand("Quit", "leave the studio (Ctrl+Q)", self.exit)


def make_app(**kwargs) -> StudioApp:
    """The studio app (see `StudioApp` for the arguments); tests build it with a temporary
    library, output folder and settings file."""
    return StudioApp(**kwargs)

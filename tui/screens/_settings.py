"""The settings dialog: theme, density, part colours, audio device, library and output
folders, plain mode, reduced motion. Saved in the user's config folder (`tui.settings`)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from tui.settings import DENSITIES, PALETTES, THEMES


def output_devices() -> tuple[list[str], str | None]:
    """Names of the audio output devices, and why there are none (one line) or None."""
    from tui.player import available

    ok, why = available()
    if not ok:
        return [], why
    try:
        import sounddevice

        names = [d["name"] for d in sounddevice.query_devices() if d["max_output_channels"] > 0]
    except Exception as e:  # PortAudio errors are not a crash of the settings dialog
        return [], f"cannot list the audio devices ({e})"
    return names, None


class SettingsScreen(ModalScreen[bool]):
    """Change the settings; Enter on Save keeps them, Escape leaves them as they were."""

    BINDINGS = [Binding("escape", "cancel", "Close without saving")]

    DEFAULT_CSS = """
    SettingsScreen .row { height: auto; }
    SettingsScreen .row > Label { width: 16; padding: 1 1 0 0; text-style: bold; }
    SettingsScreen .row > Input, SettingsScreen .row > Select { width: 1fr; }
    SettingsScreen #settings-msg { color: $error; height: auto; }
    """

    def compose(self) -> ComposeResult:
        s = self.app.settings
        devices, why = output_devices()
        self.devices_problem = why
        with VerticalScroll(id="dialog", classes="dialog"):
            yield Label("Settings", classes="dialog-title")
            with Horizontal(classes="row"):
                yield Label("Theme")
                yield Select(
                    [(t, t) for t in THEMES], value=s.theme, id="set-theme", allow_blank=False
                )
            with Horizontal(classes="row"):
                yield Label("Density")
                yield Select(
                    [(d, d) for d in DENSITIES],
                    value=s.density,
                    id="set-density",
                    allow_blank=False,
                )
            with Horizontal(classes="row"):
                yield Label("Part colours")
                yield Select(
                    [("Okabe-Ito (colour-blind safe)", PALETTES[0]), ("classic", PALETTES[1])],
                    value=s.palette,
                    id="set-palette",
                    allow_blank=False,
                )
            with Horizontal(classes="row"):
                yield Label("Audio output")
                options = [("the system's default", "")] + [(d, d) for d in devices]
                if s.audio_device and s.audio_device not in devices:
                    options.append((f"{s.audio_device} (not found now)", s.audio_device))
                yield Select(
                    options, value=s.audio_device or "", id="set-device", allow_blank=False
                )
            if why:
                yield Static(f"no audio output here: {why}", classes="hint")
            with Horizontal(classes="row"):
                yield Label("Library")
                yield Input(value=s.library or "", placeholder="the usual place", id="set-library")
            with Horizontal(classes="row"):
                yield Label("Output folder")
                yield Input(
                    value=s.output or "", placeholder=str(self.app.output_root), id="set-output"
                )
            yield Checkbox(
                "Plain mode: announce changes as lines (screen readers)", s.plain, id="set-plain"
            )
            yield Checkbox("Reduced motion", s.reduced_motion, id="set-motion")
            yield Static("", id="settings-msg")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.app.announce("settings: Tab moves between them, Save keeps them")
        self.query_one("#set-theme").focus()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(False)
            return
        problem = self.save()
        if problem:
            self.query_one("#settings-msg", Static).update(problem)
            self.app.announce(problem)
            return
        self.dismiss(True)

    def save(self) -> str | None:
        """Check and apply the values; a problem in one line, or None when saved."""
        app = self.app
        s = app.settings
        library = self.query_one("#set-library", Input).value.strip() or None
        output = self.query_one("#set-output", Input).value.strip() or None
        for what, value in (("library", library), ("output folder", output)):
            if (
                value is not None
                and Path(value).expanduser().exists()
                and not Path(value).expanduser().is_dir()
            ):
                return f"the {what} {value} is a file, not a folder; give a folder"
        if library is not None and library != s.library:
            from engine.errors import UserError
            from engine.library.store import Library

            try:
                Library.open(library).close()
            except UserError as e:
                return str(e)
        s.density = self.query_one("#set-density", Select).value
        s.palette = self.query_one("#set-palette", Select).value
        s.audio_device = self.query_one("#set-device", Select).value or None
        s.library, s.output = library, output
        app.library_path = Path(library).expanduser() if library else None
        if output:
            app.output_root = Path(output).expanduser()
        app.theme = self.query_one("#set-theme", Select).value
        app.set_class(s.density == "compact", "compact")
        plain = self.query_one("#set-plain", Checkbox).value
        if plain != app.plain:
            app.set_plain(plain)
        motion = self.query_one("#set-motion", Checkbox).value
        if motion != s.reduced_motion:
            app.set_reduced_motion(motion)
        for roll in app.screen_stack[0].query("PianoRoll") if app.screen_stack else []:
            roll.palette = s.palette
        app.save_settings()
        app.announce("settings saved")
        return None

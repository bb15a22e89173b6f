"""First steps: a four-step introduction, shown once (and again from the palette).

1. What the studio makes; 2. a first piece from a choice of ready prompts; 3. where pieces
are kept; 4. the keys to know. Escape skips it; either way it is not shown again.
The result is the prompt chosen in step 2 (or None), which the Make screen then generates.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static

READY_PROMPTS = (
    "a calm chorale in G major for choir, 20 seconds",
    "a lively celtic jig for fiddle and flute in D major",
    "a gentle lullaby for harp in F major, 3/4",
    "a melancholy waltz for string quartet in D minor, 30 seconds",
    "a bright classical minuet for piano, 16 bars",
)

STEPS = 4


class WizardScreen(ModalScreen[str | None]):
    """The introduction; returns the chosen ready prompt or None."""

    BINDINGS = [
        Binding("escape", "skip", "Skip the introduction"),
        Binding("right,n", "next", "Next step"),
        Binding("left,b", "back", "Previous step"),
    ]

    def __init__(self):
        super().__init__()
        self.step = 1
        self.choice: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog wizard"):
            yield Label("", id="wizard-title", classes="dialog-title")
            yield Static("", id="wizard-text")
            yield OptionList(*READY_PROMPTS, id="ready-prompts")
            with Horizontal(classes="buttons"):
                yield Button("Back (b)", id="back")
                yield Button("Next (n)", id="next", variant="primary")
                yield Button("Skip (Esc)", id="skip")

    def on_mount(self) -> None:
        self.show_step()

    def show_step(self) -> None:
        app = self.app
        library = getattr(app, "library_path", None)
        where = str(library) if library else "the library in your user data folder"
        title, text = {
            1: (
                "Welcome to the studio",
                "Describe music in plain words and the studio writes it bar by bar, on this "
                "computer, offline. You see it as a piano roll, hear it, change tempo, "
                "dynamics or instruments while it plays, and keep the versions you like.",
            ),
            2: (
                "Your first piece",
                "Pick a ready prompt with the arrows and Enter, or press n to write your own "
                "on the Make screen.",
            ),
            3: (
                "Where your music is kept",
                f"Every piece goes into your library automatically: {where}. Rate it with "
                "1-5, tag it, find it again on the Library screen (F3); nothing is deleted "
                "without asking, and deleted pieces wait 30 days in the trash.",
            ),
            4: (
                "The keys to know",
                "Ctrl+G generate  ·  Escape cancel  ·  Space play/pause  ·  1-5 rate  ·  "
                "F2 Make  ·  F3 Library  ·  F4 Models  ·  F1 every key  ·  Ctrl+P every "
                "action by name  ·  Ctrl+Q quit",
            ),
        }[self.step]
        self.query_one("#wizard-title", Label).update(f"Step {self.step} of {STEPS}: {title}")
        self.query_one("#wizard-text", Static).update(text)
        prompts = self.query_one("#ready-prompts", OptionList)
        prompts.display = self.step == 2
        self.query_one("#back", Button).disabled = self.step == 1
        self.query_one("#next", Button).label = "Start (n)" if self.step == STEPS else "Next (n)"
        if self.step == 2:
            prompts.focus()
        else:
            self.query_one("#next", Button).focus()
        self.app.announce(f"step {self.step} of {STEPS}: {title}. {text}")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.choice = READY_PROMPTS[event.option_index]
        self.app.announce(f"chosen: {self.choice}")
        self.action_next()

    def action_next(self) -> None:
        if self.step >= STEPS:
            self.dismiss(self.choice)
            return
        self.step += 1
        self.show_step()

    def action_back(self) -> None:
        if self.step > 1:
            self.step -= 1
            self.show_step()

    def action_skip(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"next": self.action_next, "back": self.action_back, "skip": self.action_skip}[
            event.button.id
        ]()

"""The terminal studio: one Textual app for making, hearing, seeing and keeping music.

``disco-musica studio`` opens it (`tui.app.main`). The app is a face, like the CLI: it turns
keys into calls of `engine` pipelines and services, run in worker threads, and shows what
they report. Nothing here imports mlx; the engine loads it inside the workers.

Layout: `tui.app` (the App and its factory), ``app.tcss`` (the theme), `tui.screens` (one
module per screen, found by the registry in `tui.screens`), `tui.widgets` (widgets of our
own), `tui.messages` (the messages workers post), `tui.settings` (what persists).
"""

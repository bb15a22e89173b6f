"""The studio's Models screen: the listing, a download without network, a cancelled one."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from textual.widgets import DataTable

from tui.app import make_app
from tui.screens.models import ModelsScreen, gigabytes


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty models home of this test (converted models go there)."""
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def _app(tmp_path):
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "s.json",
        first_run=False,
    )


async def _models_screen(pilot) -> ModelsScreen:
    await pilot.press("f4")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ModelsScreen)
    return screen


async def _select(screen, pilot, name: str) -> None:
    table = screen.query_one("#models-table", DataTable)
    table.move_cursor(row=list(screen.models).index(name))
    await pilot.pause()
    assert screen.selected == name


def _cells(screen, name: str) -> dict[str, str]:
    table = screen.query_one("#models-table", DataTable)
    keys = [c.key.value for c in table.ordered_columns]
    return dict(zip(keys, map(str, table.get_row(name)), strict=True))


def test_lists_shipped_catalogue_and_converted_models(tmp_path, home):
    converted = home / "my-musicgen-mlx"
    converted.mkdir(parents=True)
    config = {"model_type": "musicgen", "disco_musica": {"dtype": "float16", "source": "x"}}
    (converted / "config.json").write_text(json.dumps(config))
    (converted / "README.md").write_text("# My MusicGen\n\nFine-tuned on my own recordings.\n")

    async def test():
        async with _app(tmp_path).run_test(size=(120, 40)) as pilot:
            screen = await _models_screen(pilot)
            assert {"score-base", "score-base-v1", "musicgen-small", "musicgen-large"} <= set(
                screen.models
            )
            base = _cells(screen, "score-base")
            assert base["installed"] == "yes" and base["kind"] == "score"
            assert base["size"].endswith("MB") and base["params"].endswith(" M")
            assert "Apache-2.0" in base["licence"]
            assert base["fp32"].endswith("MB") and base["4-bit"] == "—"
            small = _cells(screen, "musicgen-small")
            assert small["installed"] == "no" and small["licence"] == "CC-BY-NC-4.0"
            assert small["size"].startswith("↓ ") and small["size"].endswith("GB")
            from engine.hub import CATALOG

            assert small["params"] == f"{CATALOG['musicgen-small'].params / 1e6:.1f} M"
            e = CATALOG["musicgen-small"]
            assert small["fp32"] == gigabytes(e.memory_bytes("float32")) and "GB" in small["fp32"]
            assert small["fp16"] == small["bf16"] == gigabytes(e.memory_bytes("float16"))
            assert small["8-bit"] == gigabytes(e.memory_bytes(bits=8))
            assert small["4-bit"] == gigabytes(e.memory_bytes(bits=4))
            mine = _cells(screen, "my-musicgen-mlx")
            assert mine["kind"] == "converted" and mine["installed"] == "yes"

            await _select(screen, pilot, "score-base")
            assert "Model card: score-base" in screen.card_text
            await _select(screen, pilot, "musicgen-small")
            assert "CC-BY-NC" in screen.card_text and "may not be used" in screen.card_text
            await _select(screen, pilot, "my-musicgen-mlx")
            assert "Fine-tuned on my own recordings" in screen.card_text

            await _select(screen, pilot, "score-base")
            await pilot.press("d")
            assert "nothing to download" in screen.status

    asyncio.run(test())


def test_download_without_network_says_one_line(tmp_path, home, monkeypatch):
    import huggingface_hub

    # the Hub cannot be reached and its cache is empty: what the engine does offline
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _models_screen(pilot)
            await _select(screen, pilot, "musicgen-small")
            await pilot.press("d")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "could not be downloaded" in screen.status
            assert "\n" not in screen.status and "Traceback" not in screen.status
            shown = str(app.screen.query_one("#error-text").render())
            assert shown == screen.status
            await pilot.press("enter")
            assert not (home / "musicgen-small").exists()
            assert not (home / ".musicgen-small.partial").exists()
            assert _cells(screen, "musicgen-small")["installed"] == "no"

    asyncio.run(test())


def test_cancel_leaves_no_half_written_model(tmp_path, home, monkeypatch):
    import convert.musicgen

    def slow_convert(src, out, **options):  # writes for 10 s unless stopped
        out.mkdir(parents=True, exist_ok=True)
        for i in range(200):
            (out / f"part-{i}.bin").write_bytes(b"\0" * 1000)
            time.sleep(0.05)
        (out / "config.json").write_text("{}")
        return out

    monkeypatch.setattr(convert.musicgen, "convert_musicgen", slow_convert)
    partial = home / ".musicgen-small.partial"

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _models_screen(pilot)
            await _select(screen, pilot, "musicgen-small")
            await pilot.press("d")
            for _ in range(100):
                await pilot.pause(0.05)
                if partial.is_dir() and any(partial.iterdir()):
                    break
            assert partial.is_dir()  # it is writing
            started = time.monotonic()
            await pilot.press("escape")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert time.monotonic() - started < 5
            assert "cancelled" in screen.status
            assert not (home / "musicgen-small").exists()
            assert not partial.exists()
            assert _cells(screen, "musicgen-small")["installed"] == "no"

    asyncio.run(test())

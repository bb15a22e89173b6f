"""The default model that ships inside the package: present, small, loadable, musical."""

from __future__ import annotations

import json

import pytest

from engine.symbolic.grammar import ScoreGrammar
from engine.symbolic.score_api import DEFAULT_MODEL, MODELS_DIR, available_models, load

MAX_SHIPPED_MB = 50


def test_default_model_ships_complete():
    assert DEFAULT_MODEL in available_models()
    folder = MODELS_DIR / DEFAULT_MODEL
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < MAX_SHIPPED_MB * 1e6
    for name in ("config.json", "model.safetensors", "tokenizer/tokenizer.json", "training.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "training.json").read_text())
    assert record["command"].startswith("disco-musica train score --corpus")
    assert record["summary"]["best_val"] < 2.0


@pytest.fixture(scope="module")
def model():
    return load(DEFAULT_MODEL)


def test_default_model_writes_a_chorale(model, tmp_path):
    g = model.generate(
        style="chorale", key="G", mode="major", meter="4/4", voices=4, bars=4, seed=0
    )
    assert g.finish_reason == "stop"
    grammar = ScoreGrammar(model.tokenizer)
    grammar.feed_all(g.tokens)
    assert grammar.done
    path = g.save_midi(tmp_path / "c.mid")
    from symusic import Score

    again = Score(path)
    assert len(again.tracks) == 4 and again.note_num() > 16

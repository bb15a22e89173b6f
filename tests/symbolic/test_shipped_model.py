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
    # score-base of 0.9.0: score-base-v1 merged half-way with its continued run, each
    # source's own training record kept (the model card has the whole recipe)
    assert record["command"].startswith("disco-musica train merge score-base-v1 ")
    first, second = record["merge"]["first"], record["merge"]["second"]
    assert record["merge"]["weight"] == 0.5 and first["name"] == "score-base-v1"
    assert first["training"]["command"].startswith("disco-musica train score --corpus")
    assert second["training"]["command"].startswith("disco-musica train score --corpus")
    assert second["training"]["init_from"]["sha256"] == first["sha256"]
    assert second["training"]["summary"]["best_val"] < first["training"]["summary"]["best_val"]
    config = json.loads((folder / "config.json").read_text())
    assert record["key_strength_scale"] == config["key_strength_scale"] == 0.85


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

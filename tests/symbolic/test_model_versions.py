"""engine.symbolic.model_versions: which shipped model reproduces a record's model (name +
sha256)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from engine.symbolic import model_versions as mv
from engine.symbolic import score_api as api


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_previous_default_ships_unchanged_as_v1():
    base, v1 = api.MODELS_DIR / "score-base", api.MODELS_DIR / "score-base-v1"
    assert "score-base-v1" in api.available_models()
    for name in ("config.json", "training.json", "tokenizer/tokenizer.json"):
        assert (v1 / name).read_bytes() == (base / name).read_bytes(), name
    release = next(r for r in mv.RELEASES if r.kept_as == "score-base-v1")
    assert release.name == "score-base"
    assert _sha(v1 / "model.safetensors") == release.sha256
    assert json.loads((v1 / "training.json").read_text())["summary"]["step"] == 800


def _fake_model(folder, weights: bytes):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "score"}))
    (folder / "tokenizer").mkdir()
    (folder / "model.safetensors").write_bytes(weights)
    return hashlib.sha256(weights).hexdigest()


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A models folder where score-base has moved on to v2 and v1 keeps the old weights."""
    models = tmp_path / "models"
    old = _fake_model(models / "score-base-v1", b"old weights")
    new = _fake_model(models / "score-base", b"new weights")
    _fake_model(models / "other-v1", b"old weights")  # same bytes under an unrelated name
    monkeypatch.setattr(api, "MODELS_DIR", models)
    monkeypatch.setattr(mv, "RELEASES", (mv.Release("score-base", "0.1.0", old, "score-base-v1"),))
    return models, old, new


def test_a_record_of_the_current_weights_keeps_its_name(shipped):
    _, _, new = shipped
    name, why = mv.reproducing_model({"name": "score-base", "sha256": new})
    assert name == "score-base" and "holds the recorded weights" in why


def test_a_record_of_replaced_weights_finds_the_versioned_copy(shipped):
    _, old, _ = shipped
    name, why = mv.reproducing_model({"name": "score-base", "sha256": old})
    assert name == "score-base-v1"  # preferred over other-v1, which has the same bytes
    assert "score-base now holds other weights" in why and "\n" not in why


def test_weights_no_longer_installed_name_their_release(shipped):
    models, old, _ = shipped
    shutil.rmtree(models / "score-base-v1")
    shutil.rmtree(models / "other-v1")
    name, why = mv.reproducing_model({"name": "score-base", "sha256": old})
    assert name is None
    assert "Disco-Musica 0.1.0 and later" in why and "score-base-v1" in why and "\n" not in why
    assert why.endswith("install Disco-Musica 0.1.0 to reproduce it")
    _, why = mv.reproducing_model({"name": "score-base", "sha256": old}, made_by="0.2.0")
    assert why.endswith("install Disco-Musica 0.2.0 to reproduce it")


def test_a_base_keeps_the_weights_a_model_was_trained_on(shipped):
    """A LoRA adapter or a later round names its base by name and sha256: when the name has
    moved on, the versioned copy holding those weights is its base."""
    models, old, new = shipped
    assert api.folder_with_weights("score-base", new) == models / "score-base"
    assert api.folder_with_weights("score-base", None) == models / "score-base"
    assert api.folder_with_weights("score-base", old) == models / "score-base-v1"  # not other-v1
    # weights nobody holds: the named folder, whose mismatch the caller reports
    assert api.folder_with_weights("score-base", "0" * 64) == models / "score-base"
    with pytest.raises(api.ScoreModelError, match="no-such"):
        api.folder_with_weights("no-such", old)


def test_unknown_weights_and_folders(shipped, tmp_path):
    name, why = mv.reproducing_model({"name": "score-base", "sha256": "0" * 64})
    assert name is None and "no shipped model and no release" in why
    folder = tmp_path / "runs" / "mine"
    sha = _fake_model(folder, b"my own weights")
    assert mv.reproducing_model({"name": str(folder), "sha256": sha})[0] == str(folder)
    name, why = mv.reproducing_model({"name": str(folder), "sha256": "1" * 64})
    assert name is None and str(folder) in why
    for broken in (None, "score-base", {"name": "score-base"}, {"sha256": 5}):
        name, why = mv.reproducing_model(broken)
        assert name is None and "no sha256" in why

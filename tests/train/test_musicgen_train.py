"""Fine-tuning MusicGen (engine.train.musicgen) on tiny random-weight models.

The base is the ``tiny_musicgen`` fixture's transformers MusicGen (an 800 Hz EnCodec with 4
codebooks of 64 codes at 100 frames/s, a 2-block decoder), saved and converted as a user's
model would be; the data are real datasets made by `data import` from a folder of tones
with a ``metadata.csv``.
"""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.data.ingest import import_sources  # noqa: E402
from engine.data.store import Dataset, Item  # noqa: E402
from engine.models import lora as lora_lib  # noqa: E402
from engine.models.lora import LoraConfig, LoraError  # noqa: E402
from engine.models.musicgen import MusicGen, undelay  # noqa: E402
from engine.train import musicgen as mt  # noqa: E402
from engine.train.score import TrainingError  # noqa: E402
from engine.train.trainer import TrainConfig  # noqa: E402

SR = 8000  # the files' rate; the model's codec runs at 800 Hz
SEGMENT_S = 0.32  # 32 frames
WORDS = ["low", "high", "calm", "bright", "drone", "tone", "piano", "jazz", "bpm"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_musicgen) -> Path:
    """A converted tiny MusicGen folder with a word-level tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from convert.musicgen import convert_musicgen

    snap = tmp_path_factory.mktemp("snap")
    tiny_musicgen.build_hf("mono").save_pretrained(snap)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    tok.save(str(snap / "tokenizer.json"))
    return convert_musicgen(snap, tmp_path_factory.mktemp("mlx"))


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.shape)
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def make_dataset(
    root: Path, name: str, files: dict[str, tuple[float, float]], rows: str
) -> Dataset:
    """A dataset imported from a folder of tones {file: (Hz, seconds)} and a metadata.csv."""
    import soundfile as sf

    folder = root / f"{name}-files"
    folder.mkdir()
    for i, (file, (freq, seconds)) in enumerate(files.items()):
        sf.write(folder / file, tone(freq, seconds, i), SR)
    (folder / "metadata.csv").write_text(rows)
    ds = Dataset.create(root / name)
    report = import_sources(ds, [str(folder)])
    assert len(report.added) == len(files), report.skipped
    return ds


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Dataset:
    """Six 1.3 s tones: three low calm drones, three high bright tones, captioned."""
    files = {f"low{i}.wav": (110.0 + 5 * i, 1.3) for i in range(3)}
    files |= {f"high{i}.wav": (300.0 + 5 * i, 1.3) for i in range(3)}
    rows = "file,caption\n" + "".join(
        f"{f},{'low calm drone' if f.startswith('low') else 'high bright tone'}\n" for f in files
    )
    return make_dataset(tmp_path_factory.mktemp("toy"), "toy", files, rows)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def prepared(toy, base, cache) -> mt.PreparedData:
    return mt.prepare(toy, None, base, cache, segment_s=SEGMENT_S)


def lm(folder: Path) -> mt.MusicgenLM:
    return mt.MusicgenLM.of(MusicGen.load(folder))


def task_for(folder: Path, **kw) -> mt.MusicgenTask:
    cfg = MusicGen.load(folder).config
    return mt.MusicgenTask(4, cfg.decoder.start_token_id, 1, **kw)


def logits(model, batch, task) -> np.ndarray:
    inputs, _, _, text, mask = task.arrays(batch)
    return np.array(model(inputs, text, mask))


def config(**kw) -> TrainConfig:
    defaults = dict(
        batch_size=4,
        learning_rate=1e-2,
        min_learning_rate=1e-3,
        warmup_steps=0,
        max_steps=6,
        eval_every=3,
        checkpoint_every=3,
        report_every=1,
        weight_decay=0.0,
        seed=3,
    )
    return TrainConfig(**{**defaults, **kw})


# -- captions, the delay pattern, the loss ---------------------------------------------------


def test_caption_is_told_or_built_from_metadata_in_generation_words():
    from engine.pipelines.musicgen import describe_text

    told = Item("a", "a.wav", "0" * 64, "audio", 1, meta={"caption": "slow soul", "genre": "x"})
    assert mt.caption_for(told) == "slow soul"
    meta = {"genre": "funk", "mood": "groovy", "instruments": ["bass", "drums"]}
    meta |= {"key": "E minor", "tempo": 96.0}
    built = Item("b", "b.wav", "0" * 64, "audio", 1, meta=meta, meta_from={"tempo": "estimate"})
    assert mt.caption_for(built) == "funk, groovy mood, featuring bass, drums, in E minor, 96 bpm"
    options = {"style": "funk", "mood": "groovy", "instruments": ["bass", "drums"]}
    options |= {"key": "E minor", "tempo_bpm": 96.0}
    assert mt.caption_for(built) == describe_text("", options)
    tempo_only = Item("c", "c.wav", "0" * 64, "audio", 1, meta={"tempo": 72.5})
    assert mt.caption_for(tempo_only) == "72.5 bpm"
    assert mt.caption_for(Item("d", "d.wav", "0" * 64, "audio", 1, meta={"tags": ["raw"]})) is None


@pytest.mark.parametrize("channels", [1, 2])
def test_delay_pattern_targets_are_the_codes_generation_lays_out(channels):
    K, F, start = 4 * channels, 9, 64
    rng = np.random.default_rng(channels)
    codes = rng.integers(0, 64, (3, K, F))
    lengths = np.array([9, 5, 1])
    for b, n in enumerate(lengths):
        codes[b, :, n:] = -1
    inputs, targets, valid = mt.delayed(codes, lengths, start, channels)
    Kc = K // channels
    assert inputs.shape == targets.shape == valid.shape == (3, K, F + Kc - 1)
    # The targets, put back on the full sequence and undelayed, are the codes themselves.
    seq = np.concatenate([inputs[:, :, :1], targets], axis=-1)
    seq = np.where(np.concatenate([np.ones_like(valid[:, :, :1]), valid], -1), seq, start)
    back = undelay(seq, channels)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(back[b, :, :n], codes[b, :, :n])
        assert valid[b].sum() == K * n  # every real code is predicted once, nothing else
    # The model is fed the same tokens one step earlier (teacher forcing).
    np.testing.assert_array_equal(
        inputs[:, :, 1:][valid[:, :, :-1]], targets[:, :, :-1][valid[:, :, :-1]]
    )
    # Codebook k's first target sits k // channels steps late, after start tokens.
    for k in range(K):
        d = k // channels
        assert (
            (inputs[0, k, : d + 1] == start).all() and valid[0, k, d] and not valid[0, k, :d].any()
        )


def test_codebook_weights_weigh_each_codebooks_cross_entropy(base, prepared):
    model = lm(base)
    batch = mt.collate(prepared.train[:4], prepared.texts)
    plain = task_for(base, cond_dropout=0.0)
    nll, count = plain.codebook_nll(model, batch)
    per_codebook = nll / count
    model.eval()
    arrays = plain.arrays(batch)
    loss, ntoks = plain.loss(model, *arrays)
    assert ntoks.item() == count.sum()
    assert loss.item() == pytest.approx(nll.sum() / count.sum(), rel=1e-5)
    only4 = task_for(base, cond_dropout=0.0, codebook_weights=(0, 0, 0, 1))
    assert only4.loss(model, *arrays)[0].item() == pytest.approx(per_codebook[3], rel=1e-5)
    mixed = task_for(base, cond_dropout=0.0, codebook_weights="3,1,1,1")
    w = np.array([3, 1, 1, 1])
    want = (w * nll).sum() / (w * count).sum()
    assert mixed.loss(model, *arrays)[0].item() == pytest.approx(want, rel=1e-5)
    smoothed = task_for(base, cond_dropout=0.0, label_smoothing=0.2)
    assert smoothed.loss(model, *arrays)[0].item() != pytest.approx(loss.item(), rel=1e-3)
    val_loss, groups = plain.evaluate(model, [batch])
    assert sorted(groups) == [f"codebook {k}" for k in range(1, 5)]
    assert [groups[f"codebook {k + 1}"] for k in range(4)] == pytest.approx(per_codebook, 1e-5)
    for bad in ("1,1,1", "1,1,1,-1", "0,0,0,0", "a,b,c,d"):
        with pytest.raises(TrainingError):
            mt.check_codebook_weights(bad, 4)


# -- prepare: the cache, bad data --------------------------------------------------------------


def test_prepare_caches_codes_and_text_states(toy, base, tmp_path, monkeypatch):
    from engine.models.encodec import EncodecModel
    from engine.models.t5 import T5Encoder

    calls = {"encodec": 0, "t5": 0}  # EnCodec and T5 calls (not their loading)
    encode, t5_call = EncodecModel.encode, T5Encoder.__call__

    def counted_encode(self, *a, **k):
        calls["encodec"] += 1
        return encode(self, *a, **k)

    def counted_t5(self, *a, **k):
        calls["t5"] += 1
        return t5_call(self, *a, **k)

    monkeypatch.setattr(EncodecModel, "encode", counted_encode)
    monkeypatch.setattr(T5Encoder, "__call__", counted_t5)
    events = []
    first = mt.prepare(toy, None, base, tmp_path, segment_s=SEGMENT_S, progress=events.append)
    assert (first.encoded_items, first.encoded_texts) == (6, 2)
    assert calls == {"encodec": 6, "t5": 2}  # 4 segments of an item in one call
    assert (first.items, len(first.train) + len(first.val), len(first.texts)) == (6, 24, 2)
    assert first.val_from == "held out" and len(first.val) == 4  # one song of six
    assert {s.item for s in first.val}.isdisjoint({s.item for s in first.train})
    assert all(s.length == 32 and s.codes.shape == (4, 32) for s in first.train)
    assert ("audio codes", 6, 6) in [(e.stage, e.done, e.total) for e in events]
    again = mt.prepare(toy, None, base, tmp_path, segment_s=SEGMENT_S)
    assert calls == {"encodec": 6, "t5": 2}  # nothing computed again
    assert (again.encoded_items, again.encoded_texts) == (0, 0)
    for a, b in zip(first.train, again.train, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
    for key, states in first.texts.items():
        np.testing.assert_array_equal(states, again.texts[key])
    # Codes vary within a segment and differ between the low and the high tones.
    low = [s.codes for s in first.train if first.captions[s.item] == "low calm drone"]
    high = [s.codes for s in first.train if first.captions[s.item] == "high bright tone"]
    assert len(np.unique(low[0][0])) > 1 and not np.array_equal(low[0], high[0])
    # A loaded model gives the same codes and states (its cache keys come from its arrays).
    loaded = mt.prepare(toy, None, MusicGen.load(base), tmp_path / "c2", segment_s=SEGMENT_S)
    assert (loaded.encoded_items, loaded.encoded_texts) == (6, 2)
    for a, b in zip(first.train, loaded.train, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
    assert sorted(map(np.ndarray.tolist, loaded.texts.values())) == sorted(
        map(np.ndarray.tolist, first.texts.values())
    )
    # Another segment length is another cache entry; the captions' states are reused.
    other = mt.prepare(toy, None, base, tmp_path, segment_s=0.5)
    assert (other.encoded_items, other.encoded_texts) == (6, 0)
    assert other.segment_frames == 50 and len(other.train) + len(other.val) == 12  # 2 per item


def test_dataset_without_captions_is_one_line_with_the_way_out(tmp_path, base):
    files = {"a.wav": (200.0, 1.0), "b.wav": (220.0, 1.0), "c.wav": (240.0, 1.0)}
    ds = make_dataset(tmp_path, "nocap", files, "file,genre\nb.wav,ambient\n")
    with pytest.raises(TrainingError) as e:
        mt.prepare(ds, None, base, tmp_path / "cache", segment_s=SEGMENT_S)
    msg = str(e.value)
    assert "\n" not in msg and "2 of 3 audio items of nocap have no caption" in msg
    assert "disco-musica data edit nocap" in msg and "data prep audio nocap" in msg


def test_audio_too_short_is_left_out_and_none_long_enough_is_an_error(tmp_path, base):
    files = {"long.wav": (200.0, 1.0), "short.wav": (220.0, 0.2)}
    rows = "file,caption\nlong.wav,calm drone\nshort.wav,calm drone\n"
    ds = make_dataset(tmp_path, "mixed", files, rows)
    data = mt.prepare(ds, None, base, tmp_path / "cache", segment_s=SEGMENT_S)
    assert data.too_short == ["mixed-files/short.wav"] and data.items == 1
    assert len(data.train) == 3 and data.val_from == "train"  # 1.0 s: 3 segments of 0.32 s
    files = {"x.wav": (200.0, 0.2), "y.wav": (220.0, 0.25)}
    ds = make_dataset(tmp_path, "short", files, "file,caption\nx.wav,drone\ny.wav,drone\n")
    with pytest.raises(TrainingError) as e:
        mt.prepare(ds, None, base, tmp_path / "cache", segment_s=SEGMENT_S)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("need at least 0.32 s of audio")
    assert "the longest 0.25 s" in msg
    with pytest.raises(TrainingError, match="no audio"):
        mt.prepare(Dataset.create(tmp_path / "empty"), None, base, tmp_path / "c")


# -- LoRA: zero adapters, fusing, what trains --------------------------------------------------


def test_an_adapter_of_zeros_changes_nothing(base, prepared, tmp_path):
    from engine.atomic import sha256_file

    task = task_for(base)
    batch = mt.collate(prepared.val, prepared.texts)
    want = logits(lm(base), batch, task)
    model = lm(base)
    cfg = LoraConfig(rank=4, keys=mt.musicgen_targets("all"))
    lora_lib.apply(model, cfg)
    assert all((v == 0).all() for k, v in lora_lib.adapter_weights(model).items() if "lora_b" in k)
    assert len(lora_lib.adapter_weights(model)) == 2 * 2 * 10  # 2 blocks x 10 linears x (a, b)
    np.testing.assert_array_equal(logits(model, batch, task), want)
    # Saved and loaded for generation (fused): still exactly the base.
    info = {"method": "lora", "base": {"name": "tiny", "path": str(base), "sha256": None}}
    info["base"]["sha256"] = sha256_file(base / "model.safetensors")
    mt.LoraWeights(cfg, info).export(tmp_path / "zero", model)
    mg = mt.load_finetuned(tmp_path / "zero", cache_dir=tmp_path)
    np.testing.assert_array_equal(logits(mt.MusicgenLM.of(mg), batch, task), want)


@pytest.fixture(scope="module")
def lora_run(toy, base, cache, tmp_path_factory):
    """A LoRA run of 12 steps on the toy dataset (rank 4, every target, dropout)."""
    out = tmp_path_factory.mktemp("lora-run")
    reports = Reports()
    record = mt.train_musicgen(
        toy,
        out,
        base=base,
        lora=LoraConfig(rank=4, alpha=8, dropout=0.1, keys=mt.musicgen_targets("all")),
        config=config(max_steps=12, eval_every=6, checkpoint_every=6),
        segment_s=SEGMENT_S,
        cache_dir=cache,
        callback=reports,
        tensorboard=False,
    )
    return out, record, reports


class Reports:
    def __init__(self, stop_at: int | None = None):
        self.train, self.val, self.stop_at = [], [], stop_at

    def on_train_report(self, info):
        self.train.append(info)

    def on_val_report(self, info):
        self.val.append(info)

    def on_checkpoint(self, info):
        if info["kind"] == "checkpoint" and info["iteration"] == self.stop_at:
            raise KeyboardInterrupt  # killed right after this checkpoint


def test_lora_training_lowers_the_loss_and_fuses_to_the_same_model(lora_run, base, prepared, cache):
    out, record, reports = lora_run
    assert record["summary"]["step"] == 12 and record["method"] == "lora"
    losses = [r["train_loss"] for r in reports.train]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    task = task_for(base)
    val = mt.val_batches(prepared, 4)
    before, _ = task.evaluate(lm(base), val)
    fused = mt.load_finetuned(out / "model", cache_dir=cache)
    after, _ = task.evaluate(mt.MusicgenLM.of(fused), val)
    assert after < before - 0.5, (before, after)  # held-out song
    # The model folder holds the adapter of the best validation, and where it came from.
    files = {p.name for p in (out / "model").iterdir()}
    assert {"adapter_config.json", "adapters.safetensors", "finetune.json"} <= files
    training = json.loads((out / "model" / "training.json").read_text())
    assert training["dataset"] == prepared.dataset and training["data"]["val_from"] == "held out"
    assert (out / "metrics.jsonl").is_file()
    # Fused equals base + adapter kept apart.
    apart = mt.load_finetuned(out / "model", fuse=False, cache_dir=cache)
    batch = mt.collate(prepared.val, prepared.texts)
    a = logits(mt.MusicgenLM.of(fused), batch, task)
    b = logits(mt.MusicgenLM.of(apart), batch, task)
    assert np.abs(a - b).max() < 1e-5
    assert np.abs(a - logits(lm(base), batch, task)).max() > 0.1


def test_lora_trains_the_adapters_only(base, prepared, tmp_path):
    from engine.train.trainer import train

    model = lm(base)
    frozen = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    cfg = LoraConfig(rank=4, keys=mt.musicgen_targets("self_attn,ffn"))
    lora_lib.apply(model, cfg)
    trainable = dict(tree_flatten(model.trainable_parameters()))
    assert set(trainable) == set(lora_lib.adapter_weights(model))
    batches = mt.SegmentBatches(prepared.train, prepared.texts, 4, seed=1)
    train(
        model,
        config(max_steps=4, eval_every=4, checkpoint_every=4),
        batches,
        lambda: iter(mt.val_batches(prepared, 4)),
        tmp_path,
        task=task_for(base),
        weights=mt.LoraWeights(cfg, {"method": "lora", "base": {"name": "t", "sha256": "x"}}),
    )
    after = dict(tree_flatten(model.parameters()))
    base_after = {
        k.replace(".linear.", "."): v
        for k, v in after.items()
        if not k.endswith(("lora_a", "lora_b"))
    }
    assert set(base_after) == set(frozen)
    for k, v in frozen.items():  # bit-identical
        np.testing.assert_array_equal(np.array(base_after[k]), v, err_msg=k)
    assert all(np.abs(np.array(after[k])).max() > 0 for k in after if k.endswith("lora_b"))
    saved = mx.load(str(tmp_path / "checkpoint" / "adapters.safetensors"))
    assert set(saved) == set(trainable)  # a checkpoint holds the adapters only


def test_resumed_run_ends_bit_identical(toy, base, cache, tmp_path):
    kw = dict(
        base=base,
        lora=LoraConfig(rank=4, alpha=8, dropout=0.2, keys=mt.musicgen_targets("attention")),
        config=config(max_steps=6),
        segment_s=SEGMENT_S,
        cache_dir=cache,
        tensorboard=False,
    )
    mt.train_musicgen(toy, tmp_path / "whole", **kw)
    with pytest.raises(KeyboardInterrupt):
        mt.train_musicgen(toy, tmp_path / "cut", callback=Reports(stop_at=3), **kw)
    assert json.loads((tmp_path / "cut/checkpoint/trainer_state.json").read_text())["step"] == 3
    with pytest.raises(TrainingError, match="already holds a training run"):
        mt.train_musicgen(toy, tmp_path / "cut", **kw)
    with pytest.raises(TrainingError, match="another segment length"):
        mt.train_musicgen(toy, tmp_path / "cut", resume=True, **{**kw, "segment_s": 0.5})
    record = mt.train_musicgen(toy, tmp_path / "cut", resume=True, **kw)
    assert record["summary"]["step"] == 6
    whole = mx.load(str(tmp_path / "whole/checkpoint/adapters.safetensors"))
    cut = mx.load(str(tmp_path / "cut/checkpoint/adapters.safetensors"))
    assert set(whole) == set(cut)
    for k in whole:
        np.testing.assert_array_equal(np.array(whole[k]), np.array(cut[k]), err_msg=k)
    assert any(np.abs(np.array(v)).max() > 0 for k, v in whole.items() if "lora_b" in k)


# -- full fine-tuning, loading --------------------------------------------------------------------


def test_full_fine_tuning_trains_every_decoder_weight(toy, base, cache, prepared, tmp_path):
    out = tmp_path / "full"
    reports = Reports()
    record = mt.train_musicgen(
        toy,
        out,
        base=base,
        method="full",
        config=config(learning_rate=3e-3, max_steps=8, eval_every=4, checkpoint_every=4),
        segment_s=SEGMENT_S,
        cache_dir=cache,
        codebook_weights=(2, 1, 1, 1),
        callback=reports,
        tensorboard=False,
    )
    assert record["codebook_weights"] == [2.0, 1.0, 1.0, 1.0]
    losses = [r["train_loss"] for r in reports.train]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    saved = mx.load(str(out / "model" / "decoder.safetensors"))
    base_model = lm(base)
    want = dict(tree_flatten(base_model.parameters()))
    assert set(saved) == set(want)  # decoder and projection, under MusicgenModel's names
    changed = [k for k in want if not np.array_equal(np.array(saved[k]), np.array(want[k]))]
    assert len(changed) > 0.9 * len(want)
    mg = mt.load_finetuned(out, cache_dir=cache)  # the run folder: its model/
    got = dict(tree_flatten(mt.MusicgenLM.of(mg).parameters()))
    for k in saved:
        np.testing.assert_array_equal(np.array(got[k]), np.array(saved[k]))
    audio = mg.generate(["low calm drone"], duration_s=0.1, seed=1, guidance_scale=3.0)
    assert audio.shape[0] == 1 and np.isfinite(audio).all()


def test_a_fine_tune_needs_its_own_base(lora_run, base, tmp_path, cache):
    out, _, _ = lora_run
    other = tmp_path / "other"
    import shutil

    shutil.copytree(base, other)
    weights = mx.load(str(other / "model.safetensors"))
    key = next(k for k in weights if k.startswith("decoder.layers.0.fc1"))
    weights[key] = weights[key] + 1
    mx.save_safetensors(str(other / "model.safetensors"), weights)
    info = json.loads((out / "model" / "finetune.json").read_text())
    info["base"]["path"] = str(other)
    folder = tmp_path / "moved"
    shutil.copytree(out / "model", folder)
    (folder / "finetune.json").write_text(json.dumps(info))
    with pytest.raises(LoraError, match="another base model"):
        mt.load_finetuned(folder, cache_dir=cache)
    with pytest.raises(TrainingError, match="not a MusicGen fine-tune"):
        mt.load_finetuned(tmp_path, cache_dir=cache)


def test_targets_and_bad_settings_are_refused(toy, base, cache, tmp_path):
    assert mt.musicgen_targets("ffn") == ("fc1", "fc2")
    assert len(mt.musicgen_targets("all")) == 10
    assert mt.musicgen_targets("cross_attn,fc1")[-1] == "fc1"
    with pytest.raises(LoraError, match="unknown LoRA target"):
        mt.musicgen_targets("mlp")
    kw = dict(base=base, cache_dir=cache, tensorboard=False, segment_s=SEGMENT_S)
    with pytest.raises(LoraError, match="rank 99 is larger"):
        mt.train_musicgen(toy, tmp_path / "a", lora=LoraConfig(rank=99, keys=("fc1",)), **kw)
    with pytest.raises(TrainingError, match="segment length 45 s"):
        mt.train_musicgen(toy, tmp_path / "b", **{**kw, "segment_s": 45})
    with pytest.raises(TrainingError, match="one codebook weight per codebook"):
        mt.train_musicgen(toy, tmp_path / "c", codebook_weights=(1, 1), **kw)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        mt.train_musicgen(toy, tmp_path / "d", resume=True, **kw)


# -- the command line ------------------------------------------------------------------------------


def test_train_musicgen_command(toy, base, cache, tmp_path, capsys):
    import argparse

    from engine.cli import common, register
    from engine.cli.train_musicgen import add_parser

    parser = argparse.ArgumentParser(prog="disco-musica")
    add_parser(parser.add_subparsers(dest="command").add_parser("train").add_subparsers(), register)
    out = tmp_path / "run"
    argv = ["train", "musicgen", "--data", str(toy.path), "--base", str(base), "--out", str(out)]
    argv += ["--steps", "4", "--batch-size", "4", "--segment", str(SEGMENT_S), "--rank", "2"]
    argv += ["--targets", "cross_attn", "--eval-every", "2", "--checkpoint-every", "2"]
    argv += ["--cache-dir", str(cache), "--no-tensorboard", "--codebook-weights", "1,1,1,2"]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "6 items, 0.1 min of audio: 20 training segments of 0.32 s, 4 validating" in printed
    assert f"model: {out / 'model'}" in printed and "4 steps" in printed
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    assert adapter["lora_parameters"]["rank"] == 2
    assert adapter["lora_parameters"]["keys"] == list(mt.MUSICGEN_TARGETS["cross_attn"])
    training = json.loads((out / "model" / "training.json").read_text())
    assert (
        training["codebook_weights"] == [1, 1, 1, 2] and training["train_config"]["max_steps"] == 4
    )
    with pytest.raises(common.CliError, match="already holds a training run"):
        args.handler(parser.parse_args(argv))
    for bad, match in (
        (["--rank", "0"], "--rank must be 1"),
        (["--lr", "5"], "--lr must be"),
        (["--lora-layers", "x"], "--lora-layers takes"),
        (["--targets", "mlp"], "unknown LoRA target"),
    ):
        with pytest.raises((common.CliError, LoraError), match=match):
            a = parser.parse_args([*argv[:6], "--out", str(tmp_path / "x"), *bad])
            a.handler(a)

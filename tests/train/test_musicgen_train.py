"""Fine-tuning MusicGen (engine.train.musicgen) on tiny random-weight models, and generating
with the result (engine.pipelines.musicgen): by folder, by name and tag, replayed.

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
    with pytest.raises(TrainingError, match="is a fine-tuned MusicGen; .* with --from"):
        mt.resolve_base(out / "model")


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
    argv += ["--max-steps", "4", "--batch-size", "4", "--segment", str(SEGMENT_S), "--rank", "2"]
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
    # --resume needs only what changes: the LoRA, segment and codebook weights are the run's.
    again = ["train", "musicgen", "--data", str(toy.path), "--out", str(out), "--resume"]
    again += [
        "--max-steps",
        "6",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--cache-dir",
        str(cache),
    ]
    args = parser.parse_args([*again, "--no-tensorboard"])
    assert args.handler(args) == 0
    assert "6 steps" in capsys.readouterr().out
    training = json.loads((out / "model" / "training.json").read_text())
    assert training["summary"]["step"] == 6 and training["lora"]["rank"] == 2
    for bad, match in (
        (["--rank", "0"], "--rank must be 1"),
        (["--lr", "5"], "--lr must be"),
        (["--lora-layers", "x"], "--lora-layers takes"),
        (["--targets", "mlp"], "unknown LoRA target"),
    ):
        with pytest.raises((common.CliError, LoraError), match=match):
            a = parser.parse_args([*argv[:6], "--out", str(tmp_path / "x"), *bad])
            a.handler(a)


# -- the style proof: clips at each validation, compared with the dataset -----------------------


def tone_codec(self, codes) -> np.ndarray:
    """A stand-in for the random test codec, which makes every code sound alike: each frame
    of codebook 1 plays a sine whose pitch class is the code modulo 12, for 0.1 s."""
    c = np.array(codes)[:, 0, :]
    n = 80
    t = np.arange(c.shape[1] * n) / 800
    f = 110 * 2 ** ((np.repeat(c, n, axis=1) % 12) / 12)
    return (0.4 * np.sin(2 * np.pi * f * t))[..., None].astype(np.float32)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # loudness and JS of 800 Hz clips
def test_clips_at_each_validation_move_towards_the_datasets_sound(
    toy, base, cache, tmp_path, monkeypatch
):
    monkeypatch.setattr(MusicGen, "decode", tone_codec)
    out = tmp_path / "styled"
    reports = Reports()
    reports.samples = []
    reports.on_sample_report = reports.samples.append
    record = mt.train_musicgen(
        toy,
        out,
        base=base,
        lora=LoraConfig(rank=4, alpha=8, keys=mt.musicgen_targets("all")),
        config=config(max_steps=12, eval_every=6, checkpoint_every=6),
        segment_s=SEGMENT_S,
        cache_dir=tmp_path / "c",
        samples=8,
        sample_seconds=0.3,
        callback=reports,
        tensorboard=False,
    )
    import soundfile as sf

    # A report at each validation and before the first step (the base), with its clips.
    assert [r["iteration"] for r in reports.samples] == [0, 6, 12]
    for r in reports.samples:
        assert set(r["distances"]) == {"chroma", "tempo", "onset_rate"}
        assert 0 <= r["overall"] <= 1 and len(r["samples"]) == 8
        assert all(Path(f).is_file() for f in r["samples"])
    # The clips of the base are the base model's on the same seeds and captions.
    first = reports.samples[0]
    assert first["captions"][:2] == ["high bright tone", "low calm drone"]
    mg = MusicGen.load(base)
    want = mg.generate(["low calm drone"], duration_s=0.3, seed=1, guidance_scale=3.0)[0]
    got, sr = sf.read(first["samples"][1], dtype="float32")
    assert sr == 800 and np.abs(got - want[:, 0]).max() < 1e-4
    # Over 8 seeds, the fine-tuned model's clips are nearer the dataset's sound than the
    # base's (through the stand-in codec: the pitch classes of the codes it writes).
    style = record["style"]
    assert style["base"]["iteration"] == 0
    assert style["tuned"]["iteration"] == record["summary"]["best_step"] == 12
    base_d, tuned_d = style["base"]["distances"], style["tuned"]["distances"]
    assert tuned_d["chroma"] < base_d["chroma"] - 0.05, (base_d, tuned_d)
    assert style["tuned"]["overall"] < style["base"]["overall"]
    report = (out / "report.md").read_text()
    assert "| **overall** |" in report and "seeds 0..7" in report
    assert "| 12 |" in report


# -- generating with a fine-tune ----------------------------------------------------------------


@pytest.fixture(scope="module")
def zero_adapter(base, tmp_path_factory) -> Path:
    """A LoRA fine-tune folder whose adapter is all zeros (B = 0): the base itself."""
    from engine.atomic import sha256_file

    model = lm(base)
    cfg = LoraConfig(rank=4, keys=mt.musicgen_targets("all"))
    lora_lib.apply(model, cfg)
    base_info = {
        "name": str(base),
        "path": str(base),
        "sha256": sha256_file(base / "model.safetensors"),
    }
    out = tmp_path_factory.mktemp("zero") / "model"
    mt.LoraWeights(cfg, {"method": "lora", "base": base_info}).export(out, model)
    return out


@pytest.fixture
def audio_at_800_hz(monkeypatch):
    """Let the pipeline write the tiny models' 800 Hz audio (it writes 8 kHz and up)."""
    from engine.audio import render

    monkeypatch.setattr(render, "SAMPLE_RATE_RANGE", (800, 192000))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the loudness of 800 Hz audio
def test_generating_with_a_fine_tune_pins_its_weights_and_replays(
    lora_run, zero_adapter, base, tmp_path, audio_at_800_hz
):
    from engine.pipelines import musicgen as pipe
    from engine.pipelines.replay import replay
    from engine.symbolic.model_versions import weights_sha256

    out, _, _ = lora_run
    tuned = out / "model"
    assert pipe.is_musicgen(str(tuned)) and pipe.is_musicgen(str(out))  # the run folder too
    assert pipe.is_musicgen(str(zero_adapter)) and not pipe.is_musicgen(str(tmp_path))
    assert pipe.model_takes_melody(str(tuned)) is False
    plain, plain_sha, none = pipe.load_model(str(base))
    zero, zero_sha, zero_info = pipe.load_model(str(zero_adapter))
    mine, mine_sha, mine_info = pipe.load_model(str(tuned))
    assert none is None and zero_info["method"] == mine_info["method"] == "lora"
    assert mine_info["path"] == str(tuned.resolve()) and mine_info["base"]["sha256"]
    # The identity pins adapter and base: it changes with the adapter, and it is the score
    # model's for adapters (engine.symbolic.model_versions).
    assert len({plain_sha, zero_sha, mine_sha}) == 3
    assert mine_sha == weights_sha256(tuned) == mt.finetune_sha256(out)
    # Over 8 seeds: a zero adapter makes exactly the base's audio, a trained one other audio.
    kw = dict(duration_s=0.2, guidance_scale=3.0, top_k=250)
    for seed in range(8):
        want = plain.generate(["low calm drone"], seed=seed, **kw)
        np.testing.assert_array_equal(zero.generate(["low calm drone"], seed=seed, **kw), want)
        other = mine.generate(["low calm drone"], seed=seed, **kw)
        assert other.shape == want.shape and not np.array_equal(other, want), seed
    # Through the pipeline: the record names the fine-tune, and replay makes the same files.
    record = pipe.generate_audio_piece(
        "low calm drone", tmp_path / "gen", model=str(tuned), seconds=0.2, seed=3
    )
    model = record["model"]
    assert model["name"] == str(tuned) and model["sha256"] == mine_sha
    assert model["finetune"]["path"] == str(tuned.resolve())
    assert model["finetune"]["base"]["sha256"] == mine_info["base"]["sha256"]
    new, same = replay(tmp_path / "gen" / "generation.json", tmp_path / "again")
    assert same == {"music.wav": True} and new["model"]["sha256"] == mine_sha
    # Weights changed since: replay says so in one line.
    weights = mx.load(str(tuned / "adapters.safetensors"))
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(tuned, moved)
    mx.save_safetensors(str(moved / "adapters.safetensors"), {k: v + 1 for k, v in weights.items()})
    rec = json.loads((tmp_path / "gen" / "generation.json").read_text())
    rec["request"]["model"] = rec["model"]["name"] = str(moved)
    rec["model"]["finetune"]["path"] = str(moved)
    with pytest.raises(pipe.MusicgenError, match="not here any more"):
        pipe.replay_record(rec, tmp_path / "third")


# -- named models, in rounds ---------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def named(toy, base, cache, **kw) -> dict:
    """A round of a named model: 4 steps, a checkpoint kept every 2."""
    args = dict(
        name="mine",
        base=str(base),
        lora=LoraConfig(rank=4, alpha=8, keys=mt.musicgen_targets("all")),
        config=config(max_steps=4, eval_every=2, checkpoint_every=2, keep_last=2),
        segment_s=SEGMENT_S,
        cache_dir=cache,
        tensorboard=False,
    )
    return mt.finetune_musicgen(toy, **{**args, **kw})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the loudness of 800 Hz audio
def test_a_named_model_in_rounds_generates_by_name_and_tag(
    toy, base, cache, home, tmp_path, audio_at_800_hz
):
    from engine import hub
    from engine.data.ingest import import_sources
    from engine.pipelines import musicgen as pipe
    from engine.pipelines.replay import replay
    from engine.symbolic import score_api
    from engine.symbolic.score_api import ScoreModelError

    plans = []
    first = named(toy, base, cache, plan=plans.append)
    assert first["status"] == "finished" and first["round"] == 1 and first["steps"] == 4
    card = json.loads((home / "my-models" / "mine" / "model.json").read_text())
    assert card["kind"] == "musicgen" and card["current"] == "runs/round-1/best"
    assert card["rounds"][0]["dataset"] == toy.ident() and card["base"]["sha256"]
    assert "MusicGen, LoRA adapter on" in (home / "my-models" / "mine" / "README.md").read_text()
    # The plan was measured before the first step.
    (plan,) = plans
    assert plan["max_steps"] == 4 and plan["step_s"] > 0 and plan["memory_bytes"] > 0
    assert plan["trainable_parameters"] == sum(
        v.size for v in mx.load(str(Path(first["run"]) / "best/adapters.safetensors")).values()
    )
    # By name and tag: generate finds them; each tag is other weights.
    assert pipe.is_musicgen("mine") and pipe.is_musicgen("mine@step-2")
    assert mt.resolve_finetuned("mine") == Path(first["run"]) / "best"
    shas = {t: pipe.load_model(t)[1] for t in ("mine", "mine@step-2", "mine@latest")}
    assert shas["mine@latest"] == mt.finetune_sha256(Path(first["run"]) / "checkpoint")
    assert shas["mine@step-2"] != shas["mine@latest"]
    with pytest.raises(hub.TrainedModelError, match="no checkpoint 'step-3'"):
        mt.resolve_finetuned("mine@step-3")
    # The score model's path refuses it in one line.
    with pytest.raises(ScoreModelError, match="mine"):
        score_api.resolve_model_path("mine")
    record = pipe.generate_audio_piece(
        "high bright tone", tmp_path / "one", model="mine", seconds=0.2, seed=5
    )
    assert record["model"]["sha256"] == shas["mine"]

    # Round 2 on a new version of the data, from the model itself: its adapter goes on.
    import soundfile as sf

    extra = tmp_path / "more"
    extra.mkdir()
    sf.write(extra / "low9.wav", tone(130.0, 1.3, 9), SR)
    (extra / "metadata.csv").write_text("file,caption\nlow9.wav,low calm drone\n")
    import_sources(toy, [str(extra)])
    second = named(toy, None, cache, from_model="mine", lora=None)
    assert second["round"] == 2 and second["from"] == "mine"
    card = json.loads((home / "my-models" / "mine" / "model.json").read_text())
    assert [r["round"] for r in card["rounds"]] == [1, 2]
    assert card["rounds"][1]["dataset"] == toy.ident() != card["rounds"][0]["dataset"]
    assert card["current"] == "runs/round-2/best"
    adapter = json.loads((Path(second["run"]) / "best" / "adapter_config.json").read_text())
    assert adapter["lora_parameters"]["rank"] == 4  # round 1's adapter, not the preset's 8
    assert second["record"]["init_from"]["path"] == str(Path(first["run"]).resolve() / "best")
    assert pipe.load_model("mine")[1] != shas["mine"]
    assert pipe.load_model("mine@round-1")[1] == shas["mine"]
    # The record of round 1's "mine" still replays: from the folder it was made with.
    new, same = replay(tmp_path / "one" / "generation.json", tmp_path / "one-again")
    assert same == {"music.wav": True}
    # A new model from it inherits its rounds.
    third = named(toy, None, cache, name="yours", from_model="mine@round-1", lora=None)
    card = json.loads((home / "my-models" / "yours" / "model.json").read_text())
    assert [r.get("inherited_from") for r in card["rounds"]] == ["mine", "mine", None]
    assert third["round"] == 1 and third["run"].endswith("yours/runs/round-1")  # its own runs


def test_named_rounds_resume_and_refuse_what_does_not_fit(toy, base, cache, home, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        named(toy, base, cache, callback=Reports(stop_at=2))
    card = mt.read_musicgen_card("mine")
    assert card["rounds"][0]["status"] == "running"
    with pytest.raises(TrainingError, match="already have a model named 'mine'"):
        named(toy, base, cache)
    done = mt.finetune_musicgen(name="mine", resume=True, cache_dir=cache, tensorboard=False)
    assert done["status"] == "finished" and done["steps"] == 4 and done["round"] == 1
    assert len(mt.read_musicgen_card("mine")["rounds"]) == 1
    with pytest.raises(TrainingError, match="finished"):
        mt.finetune_musicgen(name="mine", resume=True, cache_dir=cache)
    # A fully fine-tuned model takes no adapter; a score model's card is not continued here.
    full = named(toy, base, cache, name="whole", method="full", lora=None)
    assert full["method"] == "full"
    with pytest.raises(TrainingError, match="fully fine-tuned"):
        named(toy, None, cache, name="whole2", from_model="whole", method="lora")
    score = home / "my-models" / "notes"
    score.mkdir(parents=True)
    (score / "model.json").write_text(json.dumps({"format": 1, "name": "notes", "kind": "score"}))
    with pytest.raises(TrainingError, match="not a MusicGen model of yours"):
        named(toy, None, cache, name="x", from_model="notes")
    with pytest.raises(TrainingError, match="is the name of a model Disco-Musica ships"):
        named(toy, base, cache, name="musicgen-small")
    # Nothing trained (a bad rank): nothing is left behind.
    with pytest.raises(LoraError, match="rank 99"):
        named(toy, base, cache, name="bad", lora=LoraConfig(rank=99, keys=("fc1",)))
    assert not (home / "my-models" / "bad").exists()


def test_presets_are_the_clis_and_sensible():
    from engine.cli import train_musicgen as cli
    from engine.pipelines import musicgen as pipe
    from engine.train.trainer import BEST_DIR, CHECKPOINT_DIR

    assert cli.PRESETS == tuple(mt.PRESETS) and cli.DEFAULT_SAMPLE_S == mt.DEFAULT_SAMPLE_S
    # (and the light copies the generation pipeline tells fine-tunes apart by)
    assert (pipe.FINETUNE_FILE, pipe.FINETUNE_KIND) == (mt.FINETUNE_FILE, mt.CARD_KIND)
    assert pipe.FINETUNE_SUBFOLDERS == (mt.MODEL_DIR, BEST_DIR, CHECKPOINT_DIR)
    quick, thorough = mt.default_config("lora", "quick"), mt.default_config("full", "thorough")
    assert quick.max_steps < mt.default_config("lora", "balanced").max_steps < 2000
    assert quick.learning_rate > thorough.learning_rate and thorough.grad_accumulation == 2
    assert quick.checkpoint_every == quick.eval_every and quick.keep_last == 3
    assert quick.min_learning_rate == pytest.approx(quick.learning_rate / 10)
    assert mt.default_config("lora", "quick", max_steps=7).max_steps == 7
    assert mt.default_config("lora") == mt.default_config("lora", None)  # no preset: DEFAULTS
    assert all(0 < p["segment_s"] <= mt.MAX_SEGMENT_S for p in mt.PRESETS.values())
    with pytest.raises(TrainingError, match="unknown preset 'fast'; use quick, balanced"):
        mt.default_config("lora", "fast")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the loudness of 800 Hz audio
def test_train_musicgen_named_command_then_generate(
    toy, base, cache, home, tmp_path, capsys, audio_at_800_hz
):
    from engine.cli import main

    argv = ["train", "musicgen", "--data", str(toy.path), "--base", str(base), "--name", "cli"]
    argv += ["--preset", "balanced", "--max-steps", "2", "--batch-size", "4", "--rank", "2"]
    argv += ["--segment", str(SEGMENT_S), "--cache-dir", str(cache), "--no-tensorboard"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "plan: lora, " in printed and "MB of memory" in printed and "for 2 steps" in printed
    assert "model: cli (round 1, " in printed and 'generate --model cli "..."' in printed
    card = mt.read_musicgen_card("cli")
    r = card["rounds"][0]
    assert r["options"]["preset"] == "balanced" and r["lora"]["rank"] == 2
    assert r["train_config"]["learning_rate"] == mt.PRESETS["balanced"]["lr"]["lora"]
    assert r["command"].startswith("disco-musica train musicgen --data")
    # generate and replay by name, through the command line.
    out = tmp_path / "gen"
    gen = ["generate", "low calm drone", "--model", "cli", "--duration", "0.2", "--seed", "2"]
    assert main([*gen, "--out", str(out)]) == 0
    record = json.loads((out / "generation.json").read_text())
    assert record["model"]["name"] == "cli" and "finetune" in record["model"]
    assert main(["replay", str(out), "--out", str(tmp_path / "again")]) == 0
    assert "music.wav: identical" in capsys.readouterr().out
    # A new round with --from (its name), and what does not go together.
    more = [*argv[:4], "--from", "cli", "--max-steps", "2", "--segment", str(SEGMENT_S)]
    assert main([*more, "--cache-dir", str(cache), "--no-tensorboard"]) == 0
    assert "model: cli (round 2, " in capsys.readouterr().out
    for bad, message in (
        ([*argv, "--out", str(tmp_path / "x")], "--name (a model of yours) or --out"),
        (["train", "musicgen", "--name", "cli", "--resume"], "the last round of cli finished"),
        (["train", "musicgen", "--name", "cli"], "give the audio to train on: --data"),
        ([*argv[:4], "--from", "nobody"], "name the new model: --name NAME"),
    ):
        assert main(bad) != 0
        err = capsys.readouterr().err
        assert message in err and err.count("\n") <= 2, err  # one line (and a hint)


def test_activation_checkpointing_gives_the_same_gradients(base, prepared):
    """``--grad-checkpoint`` on the decoder: gradients bit-identical to the plain decoder's,
    the cross-attention's keys and values (computed outside the blocks) included."""
    import mlx.nn as nn

    from engine.models.checkpointing import checkpoint_blocks

    task = task_for(base)
    batch = next(iter(mt.SegmentBatches(prepared.train, prepared.texts, 4, seed=1)))
    arrays = task.arrays(batch)

    def grads(checkpoint: bool) -> dict:
        model = lm(base)
        mx.random.seed(0)
        lora_lib.apply(model, LoraConfig(rank=4, keys=mt.musicgen_targets("all")))
        undo = checkpoint_blocks(model.layers) if checkpoint else None
        model.train()
        mx.random.seed(1)
        (loss, _), g = nn.value_and_grad(model, task.loss)(model, *arrays)
        mx.eval(loss, g)
        if undo:
            undo()
        return {k: np.array(v) for k, v in tree_flatten(g)}

    plain, checked = grads(False), grads(True)
    assert plain.keys() == checked.keys()
    assert any(".encoder_attn.k_proj." in k for k in plain)
    for k in plain:
        np.testing.assert_array_equal(plain[k], checked[k], err_msg=k)
    assert all(np.abs(v).max() > 0 for k, v in plain.items() if k.endswith("lora_b"))

"""Basic Pitch in MLX against basic-pitch's own ONNX model run by onnxruntime.

The reference is basic-pitch 0.4.0 (installed with ``--no-deps``) with onnxruntime: its
``Model`` picks TensorFlow, CoreML or TFLite first when they are installed, so the tests
check that it really runs ``nmp.onnx`` through onnxruntime. Audio is made by the
``basic_pitch_audio`` fixture (tests/conftest.py): tones, chords, glides at several sample
rates, and a short MIDI rendered with the GM SoundFont.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import soundfile as sf
from mlx.utils import tree_flatten

from engine.models import basic_pitch as bpm
from engine.models.basic_pitch import BasicPitch, Model, ModelArgs

# The signals, as (audio, sample rate) from the basic_pitch_audio builders (``a``); the
# tolerances on this CPU are basic_pitch_audio's too (tests/conftest.py explains them).
SIGNALS = {
    "sine-22050": lambda a: (a.tone([440.0], 22050, 1.0, amp=0.5), 22050),
    "chord-22050": lambda a: (a.tone([261.63, 329.63, 392.0], 22050, 2.5), 22050),
    "glide-44100": lambda a: (a.tone([220.0], 44100, 2.0, amp=0.4, glide=1.0), 44100),
    "melody-16000": lambda a: (a.melody(16000), 16000),
    "chord-8000": lambda a: (a.tone([130.81, 164.81, 196.0], 8000, 1.5), 8000),
    "chord-stereo-48000": lambda a: (
        np.stack([a.tone([220.0], 48000, 1.5), a.tone([277.18], 48000, 1.5)], axis=1),
        48000,
    ),
    "sine-192000": lambda a: (a.tone([880.0], 192000, 0.8, amp=0.3), 192000),
    "rendered-44100": lambda a: (a.rendered(), 44100),
}


@pytest.fixture(scope="module")
def ours():
    return BasicPitch.load()


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory, basic_pitch_audio):
    """Each signal written as a float WAV (both sides read the same samples)."""
    folder = tmp_path_factory.mktemp("audio")
    files = {}
    for name, make in SIGNALS.items():
        audio, sr = make(basic_pitch_audio)
        path = folder / f"{name}.wav"
        sf.write(path, audio, sr, subtype="FLOAT")
        files[name] = path
    return files


@pytest.mark.parametrize("name", list(SIGNALS))
def test_outputs_match_onnxruntime(
    name, basic_pitch_reference, ours, audio_files, basic_pitch_audio
):
    inference, model, _ = basic_pitch_reference
    path = audio_files[name]
    expected = inference.run_inference(path, model)
    audio, sr = sf.read(path, dtype="float32")
    got = ours.predict(audio, sr)
    assert set(got) == {"note", "onset", "contour"}
    for key in got:
        assert got[key].shape == expected[key].shape, key
        assert got[key].dtype == np.float32
        np.testing.assert_allclose(
            got[key], expected[key], atol=basic_pitch_audio.TOLERANCE, rtol=0, err_msg=key
        )


def test_silence_and_windows_of_silence_match(
    basic_pitch_reference, ours, tmp_path, basic_pitch_audio
):
    inference, model, _ = basic_pitch_reference
    audio = np.zeros(22050 * 3, np.float32)
    # sound in the middle window only
    audio[22050:33075] = basic_pitch_audio.tone([330.0], 22050, 0.5)
    path = tmp_path / "gaps.wav"
    sf.write(path, audio, 22050, subtype="FLOAT")
    expected = inference.run_inference(path, model)
    got = ours.predict(audio, 22050)
    for key in got:
        np.testing.assert_allclose(
            got[key], expected[key], atol=basic_pitch_audio.TOLERANCE, rtol=0
        )


def test_the_cqt_front_end_is_bit_exact(basic_pitch_reference, ours, basic_pitch_audio):
    """CQT magnitudes equal onnxruntime's to the bit (same multiply-add chains) on AVX-512."""
    import onnx
    import onnxruntime as ort

    _, _, path = basic_pitch_reference
    graph = onnx.load(str(path))
    sqrt = next(n.output[0] for n in graph.graph.node if n.op_type == "Sqrt")
    graph.graph.output.append(
        onnx.helper.make_tensor_value_info(sqrt, onnx.TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = basic_pitch_audio.tone([55.0, 440.0, 3520.0], 22050, bpm.AUDIO_N_SAMPLES / 22050)[None]
    (magnitude,) = session.run([sqrt], {session.get_inputs()[0].name: x[..., None]})
    got = np.array(ours.model.cqt(mx.array(x)))  # [1, T, 309]
    want = magnitude.transpose(0, 2, 1)
    np.testing.assert_allclose(
        got, want, rtol=0, atol=basic_pitch_audio.CQT_RELATIVE_TOLERANCE * want.max()
    )


def test_shipped_weights_are_the_converted_onnx(basic_pitch_reference, tmp_path):
    pytest.importorskip("onnx")
    from convert.basic_pitch import convert_basic_pitch

    _, _, path = basic_pitch_reference
    out = convert_basic_pitch(path, tmp_path / "bp")
    converted = mx.load(str(out / "model.safetensors"))
    shipped = mx.load(str(bpm.DEFAULT_MODEL_DIR / "model.safetensors"))
    assert set(converted) == set(shipped)
    for k in shipped:
        assert np.array_equal(np.array(converted[k]), np.array(shipped[k])), k
    assert (out / "config.json").read_text() == (bpm.DEFAULT_MODEL_DIR / "config.json").read_text()
    notice = (bpm.DEFAULT_MODEL_DIR / "NOTICE").read_text()
    assert "Copyright 2022 Spotify AB" in notice and "Apache License" in notice


def test_computed_cqt_filters_equal_the_onnx_ones(ours):
    params = dict(tree_flatten(ours.model.parameters()))
    for name, value in bpm.cqt_weights(ModelArgs()).items():
        np.testing.assert_allclose(np.array(params[name]), value, rtol=0, atol=1e-7, err_msg=name)


def test_sanitize_takes_onnx_layouts(ours):
    params = dict(tree_flatten(ours.model.parameters()))
    onnx_layout = {k: v.transpose(0, 3, 1, 2) if v.ndim == 4 else v for k, v in params.items()}
    onnx_layout["cqt.kernel_real"] = params["cqt.kernel_real"].reshape(36, 1, 1, 256)
    onnx_layout["cqt.kernel_imag"] = params["cqt.kernel_imag"].reshape(36, 1, 1, 256)
    onnx_layout["cqt.lowpass"] = params["cqt.lowpass"].reshape(1, 1, 1, 256)
    onnx_layout["cqt.length_scale"] = params["cqt.length_scale"].reshape(309, 1, 1)
    back = Model(ModelArgs()).sanitize(onnx_layout)
    for k, v in params.items():
        assert np.array_equal(np.array(back[k]), np.array(v)), k


def test_strict_loading_names_a_missing_tensor(tmp_path):
    import shutil

    folder = tmp_path / "bp"
    shutil.copytree(bpm.DEFAULT_MODEL_DIR, folder)
    weights = mx.load(str(folder / "model.safetensors"))
    del weights["note_out.weight"]
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    with pytest.raises(ValueError, match="note_out.weight"):
        BasicPitch.load(folder)


def test_converter_refuses_other_files(tmp_path):
    pytest.importorskip("onnx")
    from convert.basic_pitch import convert_basic_pitch
    from convert.errors import ConversionError

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ConversionError, match="not a readable ONNX model|not the Basic Pitch"):
        convert_basic_pitch(bad, tmp_path / "out")
    with pytest.raises(ConversionError, match="does not exist"):
        convert_basic_pitch(tmp_path / "missing.onnx", tmp_path / "out")


def test_windowing_and_unwrapping_are_basic_pitchs():
    n = 100_000
    windows = list(bpm.window_audio(np.arange(n, dtype=np.float32)))
    assert len(windows) == bpm.n_windows(n) == 3
    assert all(w.shape == (bpm.AUDIO_N_SAMPLES,) for w in windows)
    assert windows[0][bpm.OVERLAP_LEN // 2] == 0 and windows[0][bpm.OVERLAP_LEN // 2 + 1] == 1
    assert windows[1][0] == bpm.HOP_SIZE - bpm.OVERLAP_LEN // 2
    out = np.arange(3 * 172 * 2, dtype=np.float32).reshape(3, 172, 2)
    unwrapped = bpm.unwrap_output(out, n, bpm.N_OVERLAPPING_FRAMES)
    assert unwrapped.shape == (bpm.n_output_frames(n), 2) == (390, 2)
    assert unwrapped[0, 0] == out[0, 15, 0] and unwrapped[142, 0] == out[1, 15, 0]


def test_short_audio_and_batches(ours, basic_pitch_audio):
    assert ours.predict(np.zeros(1, np.float32), 22050)["note"].shape == (0, 88)
    audio = basic_pitch_audio.melody(22050, 5.0)
    one = ours.predict(audio, 22050, windows_per_batch=1)
    three = ours.predict(audio, 22050, windows_per_batch=3)
    for k in one:
        np.testing.assert_allclose(one[k], three[k], atol=basic_pitch_audio.BATCH_TOLERANCE, rtol=0)
    calls = []
    ours.predict(audio, 22050, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_prepare_audio_mixes_down_and_resamples_like_librosa(basic_pitch_audio):
    tone = basic_pitch_audio.tone
    librosa = pytest.importorskip("librosa")
    stereo = np.stack(
        [tone([220.0], 44100, 0.5), tone([330.0], 44100, 0.5)],
        axis=1,
    )
    ours = bpm.prepare_audio(stereo, 44100)
    expected = librosa.resample(
        librosa.to_mono(stereo.T), orig_sr=44100, target_sr=22050, res_type="soxr_hq"
    )
    assert ours.dtype == np.float32 and np.array_equal(ours, expected)
    pcm = (stereo * 32767).astype(np.int16)
    assert np.allclose(bpm.prepare_audio(pcm, 44100), ours, atol=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        bpm.prepare_audio(np.array([0.0, np.nan], np.float32), 22050)
    with pytest.raises(ValueError, match=r"\[channels, samples\]"):
        bpm.prepare_audio(np.zeros((2, 1000), np.float32), 22050)

"""The render process (engine.audio.render_server): the same samples as a render here, its
errors said in one line, a save through it byte-identical."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.playback import render_playback, render_window
from engine.audio.render import render_audio
from engine.audio.render_server import RenderClient, RenderError


@pytest.fixture(scope="module")
def client():
    c = RenderClient()
    yield c
    c.close()


@pytest.fixture(scope="module")
def piece():
    from engine.pipelines.live import compose_by_bar

    return compose_by_bar("a chorale for choir in G major, 4 bars", seed=2)


def test_the_render_process_gives_the_same_samples(client, piece):
    midi = piece.midi_bytes()
    here, info = render_audio(midi)
    there, info_there = client.render_audio(midi)
    assert np.array_equal(here, there) and info == info_there
    full, levels = render_playback(midi)
    answer, audio = client.call("playback", midi)
    assert np.array_equal(full, audio)
    window = render_window(midi, 2.0, 1.5, gain=levels)
    assert np.array_equal(
        window, client.call("window", midi, start_s=2.0, seconds=1.5, gain=levels)[1]
    )


def test_a_save_through_the_render_process_is_byte_identical(client, piece, tmp_path):
    a = piece.save(tmp_path / "here", formats=["wav", "mid"])
    b = piece.save(tmp_path / "there", formats=["wav", "mid"], renderer=client.render_audio)
    assert a["outputs"] == b["outputs"]
    for name in ("music.wav", "music.mid"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()


def test_errors_come_back_in_one_line_and_the_process_goes_on(client, piece):
    with pytest.raises(RenderError) as e:
        client.call("audio", b"not a midi file")
    assert "\n" not in str(e.value) and str(e.value)
    assert client.render_audio(piece.midi_bytes())[0].shape[1] == 2  # still answering
    with pytest.raises(RenderError, match="unknown render call"):
        client.call("nothing")


def test_a_closed_process_is_started_again(piece):
    c = RenderClient()
    first = c.render_audio(piece.midi_bytes())[0]
    c.close()
    assert np.array_equal(c.render_audio(piece.midi_bytes())[0], first)
    c.close()

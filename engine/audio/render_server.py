"""A render process for faces that must not freeze while audio renders.

midirenderer holds Python's GIL while it synthesizes, so a render in a thread of an
interactive program stops its other threads for as long. A face starts this module as a
child process (``python -m engine.audio.render_server``) and sends it requests over its
standard input; `RenderClient` is that side. No pickles: each message is one JSON line (the
call and its arguments) followed by raw bytes (the MIDI file in, float32 samples out).

Calls: ``audio`` (`engine.audio.render.render_audio`: what a saved piece's audio files
hold), ``playback`` (`engine.audio.playback.render_playback`), ``window``
(`render_window`), ``seconds`` (`rendered_seconds`) and ``warm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import asdict

import numpy as np


def _levels(d):
    from engine.audio.playback import Levels

    return None if d is None else Levels(**d)


def _effects(d):
    from engine.audio.render import Effects

    return None if d is None else Effects(**d)


def handle(call: dict, midi: bytes) -> tuple[dict, bytes]:
    """One request → (header, payload)."""
    from engine.audio import playback

    kw = dict(call.get("kwargs", {}))
    if "effects" in kw:
        kw["effects"] = _effects(kw["effects"])
    if "gain" in kw:
        kw["gain"] = _levels(kw["gain"])
    fn = call["fn"]
    if fn == "warm":
        playback.warm()
        return {}, b""
    if fn == "seconds":
        return {"seconds": playback.rendered_seconds(midi, **kw)}, b""
    if fn == "audio":
        from engine.audio.render import render_audio

        audio, info = render_audio(midi, **kw)
        return _array(audio, info=info)
    if fn == "playback":
        audio, levels = playback.render_playback(midi, **kw)
        return _array(audio, levels=asdict(levels))
    if fn == "window":
        return _array(playback.render_window(midi, call["start_s"], call["seconds"], **kw))
    raise ValueError(f"unknown render call {fn!r}")


def _plain(x):
    """JSON for numpy scalars (the render's info holds some)."""
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON")


def _array(audio: np.ndarray, **extra) -> tuple[dict, bytes]:
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return {"shape": list(audio.shape), **extra}, audio.tobytes()


def serve(inp=None, out=None) -> None:
    """Answer requests until standard input closes."""
    import engine  # noqa: F401  (OpenBLAS before anything imports numpy's users)

    inp = inp or sys.stdin.buffer
    out = out or sys.stdout.buffer
    while True:
        line = inp.readline()
        if not line:
            return
        call = json.loads(line)
        midi = inp.read(int(call.get("bytes", 0)))
        try:
            header, payload = handle(call, midi)
        except Exception as e:  # said to the caller, which raises it there
            header, payload = {"error": f"{type(e).__name__}: {e}"}, b""
        header["bytes"] = len(payload)
        out.write(json.dumps(header, default=_plain).encode() + b"\n")
        out.write(payload)
        out.flush()


class RenderError(RuntimeError):
    """The render process failed (its message) or went away."""


class RenderClient:
    """The face's side: starts the process on first use; one call at a time."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "engine.audio.render_server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._proc

    def call(self, fn: str, midi: bytes = b"", **kwargs) -> tuple[dict, np.ndarray | None]:
        fields = {k: kwargs.pop(k) for k in ("start_s", "seconds") if k in kwargs}
        for k in ("effects", "gain"):
            if kwargs.get(k) is not None:
                kwargs[k] = asdict(kwargs[k])
        if kwargs.get("soundfont") is not None:
            kwargs["soundfont"] = str(kwargs["soundfont"])
        header = {"fn": fn, "kwargs": kwargs, "bytes": len(midi), **fields}
        with self._lock:
            proc = self._start()
            try:
                proc.stdin.write(json.dumps(header).encode() + b"\n")
                proc.stdin.write(midi)
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RenderError("the render process stopped")
                answer = json.loads(line)
                payload = proc.stdout.read(int(answer["bytes"]))
            except (BrokenPipeError, OSError) as e:
                raise RenderError(f"the render process stopped ({e})") from None
        if "error" in answer:
            raise RenderError(answer["error"])
        audio = None
        if "shape" in answer:
            audio = np.frombuffer(payload, np.float32).reshape(answer["shape"]).copy()
        return answer, audio

    def render_audio(self, midi: bytes, **kwargs) -> tuple[np.ndarray, dict]:
        """`engine.audio.render.render_audio` in the render process (the same samples)."""
        answer, audio = self.call("audio", midi, **kwargs)
        return audio, answer["info"]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    serve()

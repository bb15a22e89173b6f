"""``disco-musica transcribe AUDIO``: audio to MIDI with Basic Pitch.

    disco-musica transcribe guitar.wav                     # -> guitar.mid + guitar.json
    disco-musica transcribe song.flac --out song.mid --quantize --pitch-bends
    disco-musica transcribe take.wav --onset-threshold 0.6 --min-note-ms 60 --json

Writes the MIDI file and, beside it, a JSON sidecar recording how to make the same file
again (the command, every setting, the input's and the model's SHA-256, versions), both
atomically, never over existing files without ``--force``. Then prints a piano roll of the
notes (``piano_roll``): one row per pitch, highest on top, one column per slice of time;
█ a note sounds through the whole slice, ▓ ▒ ░ through most / half / a little of it.
Kept apart from `engine.cli` (which owns the entry point, errors and progress displays).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import shutil
from pathlib import Path

from engine import names
from engine.cli import common
from engine.cli import progress as ui
from engine.record import record_bytes

PIANO_ROLL_MAX_ROWS = 24  # more pitches than this: only the rows that have notes
PIANO_ROLL_WIDTH = 96  # columns at most (the terminal may allow fewer)
SHADES = " ░▒▓█"  # how much of a column a note fills: none, <1/3, <2/3, <1, all
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
DISPLAY_ONLY = {"no_preview"}  # options left out of the recipe besides common.NOT_RECORDED


# engine.pipelines.transcribe's defaults and limits, from engine.names so that --help imports no MLX
DEFAULT_ONSET_THRESHOLD = names.DEFAULT_ONSET_THRESHOLD
DEFAULT_FRAME_THRESHOLD = names.DEFAULT_FRAME_THRESHOLD
DEFAULT_MIN_NOTE_MS = names.DEFAULT_MIN_NOTE_MS
MAX_AUDIO_SECONDS = names.MAX_AUDIO_SECONDS
_n = names.num
FREQ_RANGE = f"{names.num(names.MIN_FREQ_HZ)}..{names.num(names.MAX_FREQ_HZ)} Hz"


def add_commands(sub, command) -> None:
    """Register ``transcribe`` on the ``sub`` parsers."""
    p = command(
        sub,
        "transcribe",
        cmd_transcribe,
        "write the notes of a recording as MIDI (Basic Pitch, any instrument, polyphonic)",
        ("transcribe",),
    )
    p.add_argument(
        "audio",
        metavar="AUDIO",
        help=f"WAV, FLAC, OGG, MP3 or AIFF; any rate, any channels; up to "
        f"{MAX_AUDIO_SECONDS // 60} minutes",
    )
    p.add_argument(
        "--out", metavar="FILE.mid", help="MIDI file to write; its sidecar is FILE.json "
        "(default: AUDIO's name, .mid, in this folder)"
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite FILE.mid and FILE.json")
    g = p.add_argument_group("notes")
    g.add_argument(
        "--onset-threshold",
        type=float,
        default=DEFAULT_ONSET_THRESHOLD,
        metavar="0..1",
        help=f"0 < T <= 1 (default {DEFAULT_ONSET_THRESHOLD}): how sure a note must be to start; "
        "lower finds more notes",
    )
    g.add_argument(
        "--frame-threshold",
        type=float,
        default=DEFAULT_FRAME_THRESHOLD,
        metavar="0..1",
        help=f"0 < T <= 1 (default {DEFAULT_FRAME_THRESHOLD}): how sure a note must be to go on "
        "sounding; lower makes longer notes",
    )
    g.add_argument(
        "--min-note-ms",
        type=float,
        default=DEFAULT_MIN_NOTE_MS,
        metavar="MS",
        help=f"0..{names.num(names.MAX_MIN_NOTE_MS)} (default {DEFAULT_MIN_NOTE_MS}): drop notes "
        "shorter than this",
    )
    g.add_argument(
        "--min-freq",
        type=float,
        metavar="HZ",
        help=f"ignore notes below this pitch, {FREQ_RANGE} (default: none)",
    )
    g.add_argument(
        "--max-freq",
        type=float,
        metavar="HZ",
        help=f"ignore notes above this pitch, {FREQ_RANGE} (default: none)",
    )
    g.add_argument("--pitch-bends", action="store_true", help="add pitch bends (slides, vibrato)")
    g.add_argument(
        "--multiple-pitch-bends",
        action="store_true",
        help="keep bends on overlapping notes too: one MIDI track per pitch",
    )
    g.add_argument(
        "--no-melodia",
        action="store_true",
        help="only notes with a clear start (leave out basic-pitch's melodia trick)",
    )
    g.add_argument(
        "--quantize",
        action="store_true",
        help="find the beat and snap notes to a sixteenth grid; writes tempo and metre",
    )
    o = p.add_argument_group("display")
    o.add_argument("--json", action="store_true", help="print the result and notes as JSON")
    o.add_argument("--no-preview", action="store_true", help="do not print the piano roll")


def cmd_transcribe(args: argparse.Namespace) -> int:

    if args.multiple_pitch_bends and not args.pitch_bends:
        raise common.CliError("--multiple-pitch-bends needs --pitch-bends")
    audio = Path(args.audio)
    if not audio.is_file():
        what = "is a folder" if audio.is_dir() else "does not exist"
        raise common.CliError(f"{audio} {what}; give an audio file (WAV, FLAC, OGG, MP3)")
    out = common.check_out(args.out, args.force)
    if out is None:
        out = common.new_path(Path.cwd(), audio.stem or "transcription")

    from engine.errors import AudioFileError
    from engine.pipelines.transcribe import (
        basic_pitch_model,
        check_audio,
        check_settings,
        transcribe,
    )

    try:  # settings and audio are checked before the model loads
        check_settings(
            args.onset_threshold, args.frame_threshold, args.min_note_ms, args.min_freq,
            args.max_freq,
        )  # fmt: skip
        checked = check_audio(audio, min_note_ms=args.min_note_ms)
        with ui.status_spinner("Loading Basic Pitch"):
            model = basic_pitch_model()
        with ui.BarProgress(f"Transcribing {audio.name}") as progress:
            result = transcribe(
                checked,
                onset_threshold=args.onset_threshold,
                frame_threshold=args.frame_threshold,
                min_note_ms=args.min_note_ms,
                min_freq=args.min_freq,
                max_freq=args.max_freq,
                pitch_bends=args.pitch_bends,
                melodia_trick=not args.no_melodia,
                multiple_pitch_bends=args.multiple_pitch_bends,
                quantize=args.quantize,
                progress=progress,
                model=model,
            )
    except AudioFileError as e:  # the file or the settings (TranscribeError is one)
        raise common.CliError(str(e)) from None

    midi = result.to_midi_bytes()
    record = _recipe(args, result, model, midi, out, audio)
    sidecar = out.with_suffix(common.SIDECAR_SUFFIX)
    common.write_outputs([(out, midi), (sidecar, record_bytes(record))])
    if args.json:
        shown = {
            **record,
            "midi": {**record["midi"], "path": str(out)},
            "sidecar": str(sidecar),
            "notes": [
                {
                    "start_s": round(n.start_s, 6),
                    "end_s": round(n.end_s, 6),
                    "pitch": n.pitch,
                    "velocity": n.velocity,
                    "amplitude": round(n.amplitude, 6),
                    "bends": n.bends,
                }
                for n in sorted(result.notes, key=lambda n: (n.start_s, n.pitch))
            ],
        }
        print(json.dumps(shown, indent=1))
        return 0
    print(f"wrote {common.shown_path(out)} ({describe(result)})")
    print(f"recipe: {common.shown_path(sidecar)} (its command makes the same file again)")
    if not args.no_preview and result.notes:
        width = min(PIANO_ROLL_WIDTH, shutil.get_terminal_size((80, 24)).columns - 6)
        print(piano_roll(result.notes, result.duration_s, width=max(width, 16)))
    return 0


def describe(result) -> str:
    """'142 notes, C2-G5, 30.0 s; 96 BPM, 4/4'."""
    notes = result.notes
    facts = [common.plural(len(notes), "note")]
    if notes:
        lo, hi = min(n.pitch for n in notes), max(n.pitch for n in notes)
        facts.append(f"{note_name(lo)}-{note_name(hi)}" if lo != hi else note_name(lo))
    facts.append(f"{result.duration_s:.1f} s")
    text = ", ".join(facts)
    q = result.quantization
    if q is not None:
        text += f"; quantized: {q.tempo_bpm:g} BPM, {q.numerator}/4, sixteenth grid"
    return text


def note_name(pitch: int) -> str:
    """MIDI pitch -> 'C4' (middle C is 60)."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def piano_roll(notes, duration_s: float, width: int = 80) -> str:
    """A text piano roll: a row per pitch (highest first), ``width`` columns of time.

    Each cell shows how much of its slice of time a note at that pitch fills: ' ' none,
    ░ under a third, ▒ under two thirds, ▓ most, █ all. Rows run from the lowest to the
    highest note; past ``PIANO_ROLL_MAX_ROWS`` pitches only the rows with notes are shown.
    The last line marks seconds.
    """
    import numpy as np

    if not notes:
        return "(no notes)"
    end = max(duration_s, max(n.end_s for n in notes), 1e-3)
    step = end / width
    lo, hi = min(n.pitch for n in notes), max(n.pitch for n in notes)
    pitches = list(range(hi, lo - 1, -1))
    if len(pitches) > PIANO_ROLL_MAX_ROWS:
        pitches = sorted({n.pitch for n in notes}, reverse=True)
    row_of = {p: i for i, p in enumerate(pitches)}
    cover = np.zeros((len(pitches), width))
    edges = np.arange(width + 1) * step
    for n in notes:
        a, b = max(n.start_s, 0.0), min(n.end_s, end)
        overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0, None) / step
        cover[row_of[n.pitch]] = np.maximum(cover[row_of[n.pitch]], overlap)
    level = np.where(cover <= 0, 0, np.where(cover >= 0.999, 4, 1 + (cover * 3).astype(int)))
    level = np.minimum(level, 4)
    lines = []
    for p, row in zip(pitches, level, strict=True):
        label = note_name(p).ljust(4)
        lines.append(f"{label}│{''.join(SHADES[v] for v in row)}")
    lines.append(f"    └{'─' * width}")
    lines.append("     " + _time_axis(end, width))
    return "\n".join(lines)


def _time_axis(end_s: float, width: int) -> str:
    """Second marks under the roll, about every 10 columns, on round numbers."""
    per_col = end_s / width
    for tick in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200):
        if tick / per_col >= 10:
            break
    axis = [" "] * (width + 8)
    t = 0.0
    while t <= end_s + 1e-9:
        col = int(round(t / per_col))
        label = f"{t:g}s"
        if col + len(label) <= len(axis) and all(c == " " for c in axis[col : col + len(label)]):
            axis[col : col + len(label)] = label
        t += tick
    return "".join(axis).rstrip()


def _recipe(args, result, model, midi: bytes, out: Path, audio: Path) -> dict:
    """What the sidecar records: enough to make the same MIDI bytes again."""
    from engine import __version__
    from engine.atomic import sha256_file

    words = [w for w in _recorded_args(args)]
    q = result.quantization
    model_path = Path(model.path) if model.path is not None else None
    return {
        "command": " ".join(common.quote_arg(w) for w in [common.PROG, *words]),
        "args": words,
        "operation": "transcribe",
        "parameters": result.settings,
        "input": {
            "path": str(audio.resolve()),
            "sha256": sha256_file(audio),
            "duration_s": round(result.duration_s, 6),
        },
        "note_count": len(result.notes),
        "quantization": None
        if q is None
        else {
            "tempo_bpm": q.tempo_bpm,
            "time_signature": f"{q.numerator}/4",
            "grid": f"1/{q.divisions} beat",
            "beats_found": len(q.beats_s),
        },
        "warnings": result.warnings,
        "model": {
            "name": "basic-pitch (ICASSP 2022, Spotify, Apache-2.0)",
            "sha256": sha256_file(model_path / "model.safetensors") if model_path else None,
        },
        "midi": {"file": out.name, "sha256": hashlib.sha256(midi).hexdigest()},
        "disco_musica_version": __version__,
        "mlx_version": common.package_version("mlx"),
        "platform": f"{platform.system()} {platform.machine()}",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _recorded_args(args: argparse.Namespace) -> list[str]:
    """The command's arguments with every value spelled out (defaults included)."""

    return common.recorded_args(args, skip=DISPLAY_ONLY)

"""``data prep audio DATASET``: resample, trim, denoise, normalise, cut into chunks,
separate stems and store features of a dataset's audio, as one recorded step
(`engine.data.audio_prep`)."""

from __future__ import annotations

import argparse
import re

from engine.cli.data.manage import (
    command_of,
    number,
    open_dataset,
    print_json,
    say_version,
    whole_number,
)


def add_prep_actions(prep_action) -> None:
    p = prep_action(
        "audio",
        cmd_prep_audio,
        "audio for training: resample, channels, bit depth, loudness, trim, denoise, "
        "chunks, stems, features",
    )
    p.add_argument(
        "--sample-rate", metavar="HZ", help="resample to this rate (8000..192000; soxr HQ)"
    )
    p.add_argument(
        "--channels",
        choices=("mono", "stereo", "keep"),
        default="keep",
        help="channel layout of the output (default: keep)",
    )
    p.add_argument(
        "--bit-depth",
        metavar="16|24|32f",
        help="WAV sample format: 16, 24 or 32f (32-bit float); default: the source's",
    )
    p.add_argument(
        "--loudness",
        metavar="LUFS",
        help="bring each output to this integrated loudness (-70..-5, e.g. -14 or -23)",
    )
    p.add_argument(
        "--peak",
        metavar="DBTP",
        default="-1",
        help="with --loudness: the true-peak ceiling it never goes over (-20..0; default -1)",
    )
    p.add_argument(
        "--trim-db",
        metavar="DB",
        help="trim the ends quieter than this many dB below the peak (10..100, e.g. 60)",
    )
    p.add_argument(
        "--denoise",
        nargs="?",
        const="1",
        metavar="STRENGTH",
        help="reduce noise (noisereduce); STRENGTH 0..1 is how much of it goes (default 1)",
    )
    p.add_argument(
        "--stationary-noise",
        action="store_true",
        help="with --denoise: the noise is steady (hiss, hum); one profile for the whole file",
    )
    p.add_argument(
        "--segment",
        metavar="MIN-MAX",
        nargs="?",
        const="5-30",
        help="cut into chunks of MIN to MAX seconds (1..120; default 5-30)",
    )
    p.add_argument(
        "--cut-at",
        choices=("energy", "beats"),
        default="energy",
        help="with --segment: cut at the quietest point or the quietest beat (default energy)",
    )
    p.add_argument(
        "--stems",
        choices=("hpss", "demucs"),
        help="separate: hpss (harmonic + percussive, offline) or demucs (if installed)",
    )
    p.add_argument(
        "--no-features",
        action="store_true",
        help="store no features (mel, chroma, MFCC, tempo, key, loudness) beside the items",
    )
    p.add_argument(
        "--keep-originals",
        action="store_true",
        help="with --segment or --stems: keep the original items too (default: replaced)",
    )
    p.add_argument(
        "--workers",
        metavar="N",
        help="processes working at once (1..64; default: one per core, at most 2)",
    )


def options_of(args: argparse.Namespace):
    """The `AudioPrep` the arguments ask for (checked)."""
    from engine.data.audio_prep import AudioPrep, check_demucs

    options = AudioPrep(
        sample_rate=None
        if args.sample_rate is None
        else whole_number("--sample-rate", args.sample_rate),
        channels=args.channels,
        bit_depth=args.bit_depth,
        loudness_lufs=None if args.loudness is None else number("--loudness", args.loudness),
        peak_db=number("--peak", args.peak),
        trim_db=None if args.trim_db is None else number("--trim-db", args.trim_db),
        denoise=None if args.denoise is None else number("--denoise", args.denoise),
        stationary_noise=args.stationary_noise,
        segment_s=None if args.segment is None else parse_segment(args.segment),
        cut_at=args.cut_at,
        stems=args.stems,
        features=not args.no_features,
        keep_originals=args.keep_originals,
    ).check()
    if options.stems == "demucs":
        check_demucs()
    return options


def parse_segment(text: str) -> tuple[float, float]:
    """``"5-30"`` → (5.0, 30.0); a `DatasetError` naming --segment otherwise."""
    from engine.data.store import DatasetError

    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*", text)
    if m is None:
        raise DatasetError(
            f"--segment takes MIN-MAX seconds between 1 and 120, e.g. 5-30 (not {text!r})"
        )
    return float(m.group(1)), float(m.group(2))


def _workers(text: str | None) -> int | None:
    from engine.data.store import DatasetError

    if text is None:
        return None
    n = whole_number("--workers", text)
    if not 1 <= n <= 64:
        raise DatasetError(f"--workers must be 1 to 64, not {n}")
    return n


def cmd_prep_audio(args: argparse.Namespace) -> int:
    from engine.cli.progress import FileProgress
    from engine.data.audio_prep import prep_audio

    options = options_of(args)  # bad options are refused before the dataset is touched
    workers = _workers(args.workers)
    ds = open_dataset(args.dataset)
    with FileProgress("Preparing audio") as bar:
        report = prep_audio(
            ds, options, args.items, progress=bar, command=command_of(args), workers=workers
        )
    if args.json:
        print_json(report.to_json())
        return 0
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}")
    for path, text in report.warnings:
        print(f"warning: {path}: {text}")
    made = len(report.made)
    hours = sum(i.duration_s or 0.0 for i in report.made) / 3600
    line = f"made {made} audio item{'s' * (made != 1)}" + (f" ({_length(hours)})" if made else "")
    if report.removed:
        line += f" from {len(report.removed)}, which left the new version"
    if report.skipped:
        line += f"; {len(report.skipped)} skipped"
    print(line)
    say_version(ds, report.version)
    return 0


def _length(hours: float) -> str:
    seconds = round(hours * 3600)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

"""``data prep image`` and ``data prep video``: pictures resized and measured; frames, scene
cuts, motion and soundtracks from videos (the work is `engine.data.visual`)."""

from __future__ import annotations

import argparse

from engine import names
from engine.cli import common
from engine.cli.data.manage import command_of, open_dataset, print_json, say_version

# Copies of `engine.data.visual`'s names, so that building the parser (every command's
# start, --help included) does not import numpy; tests/data/test_visual.py checks they agree.


def add_prep_actions(prep_action) -> None:
    p = prep_action(
        "image",
        cmd_prep_image,
        "resize and normalise pictures (8-bit RGB, upright) and measure colour and texture",
    )
    p.add_argument(
        "--size",
        metavar="WxH",
        help="resize to fit this box in pixels, e.g. 512x512 (default: keep each size)",
    )
    p.add_argument(
        "--fit",
        choices=names.IMAGE_FITS,
        default="inside",
        help="inside: the whole picture fits the box; cover: it fills the box, the middle kept",
    )
    p.add_argument(
        "--format",
        choices=[*names.IMAGE_OUTPUT_FORMATS, "jpeg"],
        help="write the pictures as this format (default: JPEG, PNG and WebP stay, others PNG)",
    )
    p.add_argument(
        "--no-features",
        action="store_true",
        help="do not store the measures (colour histograms, brightness, texture…)",
    )
    p.add_argument(
        "--keep-originals",
        action="store_true",
        help="keep each original and add the prepared picture beside it (a~512x512.jpg)",
    )

    p = prep_action(
        "video",
        cmd_prep_video,
        "sample frames, find scene cuts, measure motion and extract the soundtrack of videos",
    )
    p.add_argument(
        "--fps",
        type=float,
        metavar="N",
        help=f"frames sampled per second, more than 0, up to {names.MAX_VIDEO_FPS:g} (default 1)",
    )
    p.add_argument(
        "--scenes",
        action="store_true",
        help="sample the middle frame of every scene instead of N per second",
    )
    p.add_argument(
        "--frame-size",
        default="512x512",
        metavar="WxH",
        help="fit larger frames in this box (default 512x512; 'original' keeps them as shot)",
    )
    p.add_argument(
        "--no-soundtrack", action="store_true", help="do not extract the soundtrack as audio"
    )
    p.add_argument(
        "--no-features",
        action="store_true",
        help="do not store the measures (motion over time, the frames' colours…)",
    )
    p.add_argument(
        "--drop-video",
        action="store_true",
        help="take the video out of the new version (its frames and soundtrack stay)",
    )


def cmd_prep_image(args: argparse.Namespace) -> int:
    from engine.cli.progress import FileProgress
    from engine.data.visual import ImagePrep, parse_size, prep_images

    options = ImagePrep(
        size=None if args.size is None else parse_size(args.size, "--size"),
        fit=args.fit,
        format=args.format,
        features=not args.no_features,
        keep_originals=args.keep_originals,
    ).check()
    ds = open_dataset(args.dataset)
    with FileProgress("Preparing images") as bar:
        report = prep_images(ds, options, args.items, progress=bar, command=command_of(args))
    return _summary(args, ds, report, "image")


def cmd_prep_video(args: argparse.Namespace) -> int:
    from engine.cli.progress import FileProgress
    from engine.data.store import DatasetError
    from engine.data.visual import VideoPrep, parse_size, prep_video

    if args.scenes and args.fps is not None:
        raise DatasetError("give --fps or --scenes, not both (--scenes takes a frame per scene)")
    text = args.frame_size.strip().lower()
    options = VideoPrep(
        fps=1.0 if args.fps is None else args.fps,
        scenes=args.scenes,
        frame_size=None if text == "original" else parse_size(text, "--frame-size"),
        soundtrack=not args.no_soundtrack,
        features=not args.no_features,
        drop_video=args.drop_video,
    ).check()
    ds = open_dataset(args.dataset)
    with FileProgress("Preparing videos") as bar:
        report = prep_video(ds, options, args.items, progress=bar, command=command_of(args))
    return _summary(args, ds, report, "video")


def _summary(args, ds, report, kind: str) -> int:
    if args.json:
        print_json(report.to_json())
        return 0
    made = report.made
    if kind == "image":
        print(f"prepared {common.plural(len(made), 'picture')}")
    else:
        videos = len(
            {i.parent for i in made if i.kind != "video"}
            | {i.id for i in made if i.kind == "video"}
        )
        frames = sum(i.kind == "image" for i in made)
        tracks = sum(i.kind == "audio" for i in made)
        parts = [common.plural(frames, "frame"), common.plural(tracks, "soundtrack")]
        kept = [i for i in made if i.kind == "video"]
        if kept:
            cuts = sum(len(i.info.get("scene_cuts_s", ())) for i in kept)
            parts.append(common.plural(cuts, "scene cut"))
        print(f"prepared {common.plural(videos, 'video')}: {', '.join(parts)}")
    if report.removed:
        print(f"took out {common.plural(len(report.removed), 'item')} (older versions keep them)")
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}")
    say_version(ds, report.version)
    return 0

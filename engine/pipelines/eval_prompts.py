"""`disco-musica eval prompts`: what a new user hears, measured over a fixed prompt set.

`evaluate_prompts` runs `engine.pipelines.compose.compose` on every prompt of `PROMPTS` (at least
40:
every ensemble of the prompt vocabulary, solo instruments, voices, all 24 keys, every style,
meters, forms and progressions) with several seeds, and measures each piece:

- failed: prompts that raised an error instead of writing music;
- over the limit: pieces where a part sounds more notes at once than its instrument's limit
  (`quality.max_simultaneous` against `engine.symbolic.texture`);
- one-note parts in chords: share of the notes of voices, winds, brass and solo strings
  that overlap another note of their part;
- duplicates: share of notes repeating another of their part (same pitch and onset);
- register order: pieces whose lines (one-note parts) have median pitches top to bottom;
- crossing / wide spacing: share of moments where adjacent lines cross / adjacent upper
  lines are more than an octave apart;
- parallels: parallel fifths and octaves between lines per 100 beats;
- final cadence: pieces whose last sound has the tonic in the bass;
- key: pieces in which music21 hears the requested key (Krumhansl-Schmuckler, all notes);
- entropy, in scale: pitch-class entropy (bits) and share of notes in the key's scale;
- silent parts: pieces with a part silent in more than a quarter of its bars;
- bass on the root: with a progression, bars whose first beat has the root in the bass.

The corpus figures come from ``corpus`` (a built corpus folder) when given, else the
reference measured on the music21 corpus (`CORPUS_REFERENCE`).
"""

from __future__ import annotations

import time

import numpy as np

from engine import names
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.symbolic.tokenizer import TONICS

# Measured on the held-out music21 corpus pieces (engine.train.evaluate, all styles together).
CORPUS_REFERENCE = {"pitch_class_entropy": 2.83, "pitch_in_scale_rate": 0.97}
KEY_METHOD = "key.krumhansl"  # music21's Krumhansl-Schmuckler, on all notes
DEFAULT_SEEDS = 3

_KEYS = [f"{t} {m}" for m in ("major", "minor") for t in TONICS]
_STYLES = names.STYLES


def _ensembles() -> list[str]:
    from engine.pipelines.prompt import ENSEMBLES

    seen, out = set(), []
    for word, parts in ENSEMBLES.items():
        if parts not in seen:
            seen.add(parts)
            out.append(word)
    return out


def prompt_set() -> list[str]:
    """The prompts, in a fixed order: every distinct ensemble of the vocabulary in a key of
    its own (cycling all 24), then solos, voices, forms and progressions."""
    prompts = []
    meters = ("", "in 3/4, ", "", "in 6/8, ")
    lengths = ("8 bars", "12 bars", "16 bars", "30 seconds")
    for i, word in enumerate(_ensembles()):
        key = _KEYS[(i * 7) % 24]
        prompts.append(f"{word} in {key}, {meters[i % 4]}{lengths[i % 4]}")
    extra = [
        "a gentle lullaby for harp in A major",
        "a folk tune for flute in E minor, 16 bars",
        "a celtic reel for fiddle in D major, fast",
        "a solo piano piece in Bb major, 12 bars",
        "a classical guitar piece in B minor, 8 bars",
        "a chorale in G major, 8 bars",
        "a renaissance motet for five voices in F major, 12 bars",
        "a madrigal for five voices in C# minor, 8 bars",
        "a medieval piece for three voices in Eb major, 8 bars",
        "four recorders in F# major, 12 bars",
        "choir in C major, I-vi-IV-V, AABA, 16 bars",
        "a hymn for choir in Ab major, 8 bars",
        "a melancholy waltz for string quartet in D minor, 30 seconds",
        "a tense classical string quartet in C minor, 132 bpm, 30 seconds",
        "a march for brass quintet in Bb major, 2/4, 16 bars",
        "a song for choir in A minor, Am F C G, verse chorus, 16 bars",
        "a calm piece for organ in E major, 8 bars",
        "a duet for two flutes in G minor, 8 bars",
        "a cello solo in F minor, slow, 8 bars",
        "an organ chorale in D major, 5/4, 8 bars",
    ]
    return prompts + extra


def _bar_ticks(score, meter: str) -> int:
    num, den = (int(x) for x in meter.split("/"))
    return int(round(score.ticks_per_quarter * 4 * num / den))


def measure_piece(comp) -> dict:
    """Every figure of one `Composition` (see the module's table)."""
    from engine.symbolic import quality as q
    from engine.symbolic.steer import parse_chord
    from engine.symbolic.texture import is_one_note, limits

    score, p = comp.score, comp.plan
    tracks = list(score.tracks)
    programs = [part.program for part in p.parts]
    tonic = TONICS.index(p.key) if p.key in TONICS else None
    bt = _bar_ticks(score, p.meter)
    row: dict = {"key": f"{p.key} {p.mode}", "parts": len(tracks), "bars": p.bars}
    notes = sum(len(t.notes) for t in tracks)
    row["notes"] = notes
    over = []
    for t, prog in zip(tracks, programs, strict=False):
        most, _ = limits(prog)
        over.append(q.max_simultaneous(t) > most)
    row["over_limit"] = bool(any(over))
    row["most_at_once"] = max((q.max_simultaneous(t) for t in tracks), default=0)
    lines = [i for i, prog in enumerate(programs) if is_one_note(prog) and len(tracks[i].notes)]
    # top to bottom as planned (each part's range centre; equal ones in the parts' order)
    lines.sort(key=lambda i: -(p.parts[i].low + p.parts[i].high) / 2)
    line_notes = sum(len(tracks[i].notes) for i in lines)
    row["line_chord_share"] = (
        sum(q.chord_notes(tracks[i]) for i in lines) / line_notes if line_notes else 0.0
    )
    row["duplicate_share"] = sum(q.duplicate_notes(t) for t in tracks) / notes if notes else 0.0
    if len(lines) > 1:
        row["in_order"] = q.medians_in_order(score, lines)
        cs = q.crossing_and_spacing(score, lines)
        row["crossing"], row["wide_spacing"] = cs["crossing"], cs["wide_spacing"]
        row["parallels"] = q.parallel_perfects_per_100_beats(score, lines)[0]
    if tonic is not None and notes:
        row["final_tonic_in_bass"] = q.final_tonic_in_bass(score, tonic)
        row["key_ok"] = q.analyze_key(score, KEY_METHOD) == (tonic, p.mode)
        row["entropy"] = q.pitch_class_entropy(score)
        row["in_scale"] = q.pitch_in_scale_rate(score, tonic, p.mode)
    row["silent_part"] = any(q.silent_bar_share(t, bt, p.bars) > 0.25 for t in tracks)
    if p.progression and lines:
        chords = [parse_chord(c, p.key, p.mode) for c in p.progression]
        roots = [chords[b % len(chords)].root for b in range(p.bars)]
        bass = min(lines, key=lambda i: float(np.median([n.pitch for n in tracks[i].notes])))
        row["bass_root"] = q.bass_root_rate(tracks[bass], bt, roots)
    return row


def evaluate_prompts(
    model=None,
    *,
    prompts: list[str] | None = None,
    seeds: int = DEFAULT_SEEDS,
    first_seed: int = 0,
    progress: ProgressFn | None = None,
    **options,
) -> dict:
    """Compose every prompt with ``seeds`` seeds; the report (dict) with every figure."""
    from engine.pipelines.compose import compose
    from engine.symbolic import score_api as api

    sm = model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
    prompts = prompt_set() if prompts is None else prompts
    t0 = time.time()
    rows = []
    total = len(prompts) * seeds
    for prompt in prompts:
        for s in (derive_seed(first_seed, "variation", j) for j in range(seeds)):
            row = {"prompt": prompt, "seed": s}
            try:
                comp = compose(prompt, seed=s, model=sm, **options)
            except Exception as e:  # noqa: BLE001 - a failure is a figure of the report
                row["error"] = f"{type(e).__name__}: {e}"
            else:
                row.update(measure_piece(comp))
            rows.append(row)
            if progress:
                progress(Progress("pieces", len(rows), total))
    return {
        "model": str(getattr(sm, "path", model)),
        "prompts": len(prompts),
        "seeds": seeds,
        "options": options,
        "summary": summarize(rows),
        "pieces": rows,
        "wall_time_s": round(time.time() - t0, 1),
    }


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]

    def share(key: str) -> float | None:
        vals = [bool(r[key]) for r in ok if key in r and r[key] is not None]
        return float(np.mean(vals)) if vals else None

    def mean(key: str) -> float | None:
        vals = [float(r[key]) for r in ok if key in r and r[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "pieces": len(rows),
        "failed": len(rows) - len(ok),
        "over_instrument_limit": share("over_limit"),
        "line_notes_in_chords": mean("line_chord_share"),
        "duplicate_notes": mean("duplicate_share"),
        "register_order": share("in_order"),
        "crossing": mean("crossing"),
        "wide_spacing": mean("wide_spacing"),
        "parallels_per_100_beats": mean("parallels"),
        "final_tonic_in_bass": share("final_tonic_in_bass"),
        "key_heard": share("key_ok"),
        "pitch_class_entropy": mean("entropy"),
        "pitch_in_scale_rate": mean("in_scale"),
        "corpus": CORPUS_REFERENCE,
        "silent_part": share("silent_part"),
        "bass_on_root": mean("bass_root"),
    }


LABELS = {
    "failed": "failed prompts",
    "over_instrument_limit": "pieces with a part over its instrument's limit",
    "line_notes_in_chords": "notes of one-note parts in chords",
    "duplicate_notes": "duplicate notes",
    "register_order": "lines in register order (pieces)",
    "crossing": "adjacent lines crossing (moments)",
    "wide_spacing": "adjacent upper lines > an octave apart (moments)",
    "parallels_per_100_beats": "parallel fifths + octaves per 100 beats",
    "final_tonic_in_bass": "ending on the tonic in the bass",
    "key_heard": "requested key heard (Krumhansl-Schmuckler)",
    "pitch_class_entropy": "pitch-class entropy, bits (corpus 2.83)",
    "pitch_in_scale_rate": "notes in the key's scale (corpus 0.97)",
    "silent_part": "pieces with a part silent > 1/4 of its bars",
    "bass_on_root": "with a progression: bass on the root at the bar's first beat",
}


def report_markdown(report: dict) -> str:
    s = report["summary"]
    lines = [
        f"# Prompt evaluation: {report['model']}",
        "",
        f"{report['prompts']} prompts x {report['seeds']} seeds = {s['pieces']} pieces "
        f"({report['wall_time_s']:.0f} s).",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for key, label in LABELS.items():
        v = s[key]
        if v is None:
            text = "-"
        elif key == "failed":
            text = str(v)
        elif key in ("parallels_per_100_beats", "pitch_class_entropy"):
            text = f"{v:.2f}"
        else:
            text = f"{100 * v:.1f} %"
        lines.append(f"| {label} | {text} |")
    failed = [r for r in report["pieces"] if "error" in r]
    if failed:
        lines += ["", "Failures:", ""]
        lines += [f"- {r['prompt']!r} seed {r['seed']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


# ---- harmonization of held-out Bach sopranos ----------------------------------------------
HELDOUT_LIST = "docs/models/score-base-heldout.txt"


def heldout_chorales() -> list[str]:
    """The music21 corpus ids of the held-out Bach chorales (`HELDOUT_LIST`)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / HELDOUT_LIST
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("chorale\t"):
            out.append(line.split("\t", 1)[1].strip())
    return out


def _part_writing(score, voices: list[int]) -> dict:
    from engine.symbolic import quality as q

    rate, counts = q.parallel_perfects_per_100_beats(score, voices)
    cs = q.crossing_and_spacing(score, voices)
    repeats = moves = 0
    for v in voices[1:]:  # the lower voices: how often a note repeats the one before
        pitches = [n.pitch for n in sorted(score.tracks[v].notes, key=lambda n: n.time)]
        repeats += sum(a == b for a, b in zip(pitches, pitches[1:], strict=False))
        moves += max(0, len(pitches) - 1)
    return {
        **counts,
        "crossing_moments": cs["crossing"] * cs["moments"],
        **cs,
        "rate": rate,
        "repeats": repeats,
        "moves": moves,
    }


def evaluate_harmonization(
    model=None,
    *,
    chorales: int | None = None,
    seed: int = 0,
    voice_leading: float | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Harmonize the sopranos of the held-out four-part Bach chorales (alto, tenor, bass
    generated by `ScoreModel.add_tracks`, style chorale) and measure the lower voices'
    part-writing against Bach's own: parallel fifths and octaves per 100 beats, crossing and
    wide spacing of adjacent voices (shares of moments), and whether the soprano came back
    untouched. ``chorales``: how many (default all of the list)."""
    from music21 import corpus

    from engine.symbolic import score_api as api
    from engine.symbolic.midi import score_from_music21

    sm = model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
    ids = heldout_chorales()[:chorales]
    totals = {
        who: {
            "fifths": 0,
            "octaves": 0,
            "beats": 0.0,
            "crossing": 0.0,
            "wide": 0.0,
            "n": 0.0,
            "repeats": 0,
            "moves": 0,
        }
        for who in ("generated", "bach")
    }
    untouched, done, rows = True, 0, []
    for i, cid in enumerate(ids):
        original = score_from_music21(corpus.parse(cid), program=52)
        tracks = [t for t in original.tracks if len(t.notes)]
        if len(tracks) != 4:
            continue
        tracks.sort(key=lambda t: -float(np.median([n.pitch for n in t.notes])))
        original.tracks = tracks
        soprano = original.copy()
        soprano.tracks = [original.tracks[0].copy()]
        try:
            g = sm.add_tracks(
                soprano,
                parts=["alto", "tenor", "bass"],
                style="chorale",
                seed=derive_seed(seed, "chorale", i),
                voice_leading=voice_leading,
            )
        except api.ScoreModelError as e:  # too long for the window: measured as skipped
            rows.append({"chorale": cid, "skipped": str(e)})
            continue
        out = g.score
        same = [(n.time, n.duration, n.pitch) for n in out.tracks[0].notes] == [
            (n.time, n.duration, n.pitch) for n in soprano.tracks[0].notes
        ]
        untouched &= same
        row = {"chorale": cid, "soprano_untouched": same}
        for who, score in (("generated", out), ("bach", original)):
            d = _part_writing(score, [0, 1, 2, 3])
            t = totals[who]
            t["fifths"] += d["fifths"]
            t["octaves"] += d["octaves"]
            t["beats"] += d["beats"]
            t["crossing"] += d["crossing"] * d["moments"]
            t["wide"] += d["wide_spacing"] * d["moments"]
            t["n"] += d["moments"]
            t["repeats"] += d["repeats"]
            t["moves"] += d["moves"]
            row[who] = {k: d[k] for k in ("rate", "crossing", "wide_spacing")}
        rows.append(row)
        done += 1
        if progress:
            progress(Progress("harmonization", i + 1, len(ids)))
    summary = {}
    for who, t in totals.items():
        summary[who] = {
            "parallels_per_100_beats": 100 * (t["fifths"] + t["octaves"]) / t["beats"]
            if t["beats"]
            else None,
            "fifths": t["fifths"],
            "octaves": t["octaves"],
            "beats": t["beats"],
            "crossing": t["crossing"] / t["n"] if t["n"] else None,
            "wide_spacing": t["wide"] / t["n"] if t["n"] else None,
            "repeated_notes": t["repeats"] / t["moves"] if t["moves"] else None,
        }
    return {"chorales": done, "soprano_untouched": untouched, **summary, "pieces": rows}

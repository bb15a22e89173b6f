"""`eval compare`: measure by measure, better / worse / the same within the seeds' noise."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.pipelines.eval_compare import (
    MEASURES,
    CompareError,
    compare_reports,
    comparison_markdown,
    load_report,
)
from engine.pipelines.eval_prompts import CORPUS_REFERENCE, summarize

PROMPTS = [f"prompt {i}" for i in range(12)]


def _report(piece, model="m", seeds=(1, 2)):
    """A report like evaluate_prompts's: piece(i, seed) gives each piece's measures."""
    rows = [{"prompt": p, "seed": s, **piece(i, s)} for i, p in enumerate(PROMPTS) for s in seeds]
    return {"model": model, "summary": summarize(rows), "pieces": rows}


def _plain(i, s):
    return {
        "over_limit": False,
        "line_chord_share": 0.0,
        "duplicate_share": 0.0,
        "in_order": True,
        "crossing": 0.01 * ((i + s) % 3),
        "wide_spacing": 0.0,
        "parallels": 0.5 * ((i * s) % 2),
        "final_tonic_in_bass": True,
        "key_ok": (i + s) % 5 != 0,
        "entropy": 2.6 + 0.05 * ((i + s) % 3),
        "in_scale": 0.98,
        "silent_part": False,
    }


def _verdicts(cmp):
    return {r["measure"]: r["verdict"] for r in cmp["measures"]}


def test_a_report_against_itself_is_the_same_on_every_measure():
    r = _report(_plain)
    cmp = compare_reports(r, r)
    v = _verdicts(cmp)
    assert v.pop("bass_on_root") is None  # no prompt had a progression
    assert set(v.values()) == {"same"} and len(v) == len(MEASURES) - 1
    for row in cmp["measures"]:
        if row["verdict"]:
            assert row["change"] == 0 and row["before"] == row["after"]
            assert row["interval"][0] <= 0 <= row["interval"][1]
    text = comparison_markdown(cmp)
    assert "No worse on any measure." in text and "Better on" not in text
    assert "| with a progression: bass on the root at the bar's first beat |" in text


def test_the_figures_are_those_of_the_reports_summaries():
    a = _report(_plain)
    b = _report(lambda i, s: {**_plain(i, s), "crossing": 0.02})
    for row in compare_reports(a, b)["measures"]:
        key = row["measure"]
        if row["verdict"] and key != "failed":
            assert row["before"] == pytest.approx(a["summary"][key])
            assert row["after"] == pytest.approx(b["summary"][key])


def test_a_clear_drop_is_worse_and_a_clear_gain_better():
    a = _report(_plain)
    # the key missed in 2 pieces of every prompt: 100 % worse, far beyond the seeds' noise
    b = _report(lambda i, s: {**_plain(i, s), "key_ok": False, "parallels": 0.0})
    cmp = compare_reports(a, b)
    v = _verdicts(cmp)
    assert v["key_heard"] == "worse" and v["parallels_per_100_beats"] == "better"
    key = next(r for r in cmp["measures"] if r["measure"] == "key_heard")
    assert key["interval"][0] > 0 and key["change"] == pytest.approx(a["summary"]["key_heard"])
    text = comparison_markdown(cmp)
    assert "Worse on: key_heard." in text and "Better on: parallels_per_100_beats." in text
    # and the other way round
    v = _verdicts(compare_reports(b, a))
    assert v["key_heard"] == "better" and v["parallels_per_100_beats"] == "worse"


def test_one_prompt_differing_is_within_the_noise():
    a = _report(_plain)
    b = _report(lambda i, s: {**_plain(i, s), "final_tonic_in_bass": i != 3})  # 2 of 24 pieces
    row = next(
        r for r in compare_reports(a, b)["measures"] if r["measure"] == "final_tonic_in_bass"
    )
    assert row["change"] == pytest.approx(2 / 24)
    assert row["verdict"] == "same" and row["interval"][0] <= 0 < row["interval"][1]


def test_entropy_and_scale_are_judged_by_their_distance_from_the_corpus():
    target = CORPUS_REFERENCE["pitch_class_entropy"]
    low = _report(lambda i, s: {**_plain(i, s), "entropy": target - 0.3 + 0.01 * (i % 3)})
    near = _report(lambda i, s: {**_plain(i, s), "entropy": target + 0.05 + 0.01 * (i % 3)})
    high = _report(lambda i, s: {**_plain(i, s), "entropy": target + 0.5 + 0.01 * (i % 3)})
    assert _verdicts(compare_reports(low, near))["pitch_class_entropy"] == "better"
    assert _verdicts(compare_reports(low, high))["pitch_class_entropy"] == "worse"  # overshoot
    scale = _report(lambda i, s: {**_plain(i, s), "in_scale": 0.995 - 0.001 * (i % 2)})
    assert _verdicts(compare_reports(low, scale))["pitch_in_scale_rate"] == "worse"


def test_failures_count_as_pieces_and_their_measures_are_left_out():
    a = _report(_plain)
    b = _report(lambda i, s: {"error": "ComposeError: no"} if i < 8 else _plain(i, s))
    cmp = compare_reports(a, b)
    failed = next(r for r in cmp["measures"] if r["measure"] == "failed")
    assert failed["before"] == 0 and failed["after"] == pytest.approx(16 / 24)
    assert failed["verdict"] == "worse"
    key = next(r for r in cmp["measures"] if r["measure"] == "key_heard")
    assert key["after"] == pytest.approx(b["summary"]["key_heard"])


def test_reports_of_other_seeds_or_prompts_are_refused():
    with pytest.raises(CompareError, match="other prompts or seeds"):
        compare_reports(_report(_plain), _report(_plain, seeds=(1, 3)))
    for broken in ({}, {"pieces": []}, {"pieces": [{"prompt": "x"}], "summary": {}}, []):
        with pytest.raises(CompareError, match="eval prompts"):
            compare_reports(broken, _report(_plain))


def test_the_command_reads_both_reports_and_prints_the_table(tmp_path):
    a, b = tmp_path / "before.json", tmp_path / "after.json"
    a.write_text(json.dumps(_report(_plain, model="score-base")))
    b.write_text(json.dumps(_report(lambda i, s: {**_plain(i, s), "key_ok": False}, model="new")))
    assert load_report(tmp_path / "before")["model"] == "score-base"  # --out PATH wrote PATH.json
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "eval", "compare", str(tmp_path / "before"), str(b)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# new against score-base")
    assert "| requested key heard (Krumhansl-Schmuckler) | higher is better |" in proc.stdout
    assert proc.stdout.rstrip().endswith("Worse on: key_heard.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.json", "before.json"]

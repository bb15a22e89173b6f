"""`disco-musica eval compare`: is one model's prompt evaluation better or worse than another's,
beyond what the seeds alone would change?

Two reports of `engine.pipelines.eval_prompts.evaluate_prompts` made with the same prompts and
seeds (two models, or one model with other settings) are compared measure by measure. A
figure such as "ending on the tonic in the bass" moves by a few pieces between two sets of
seeds of the same model, so each difference gets a confidence interval: a paired bootstrap
over the prompts (``scipy.stats.bootstrap``, percentile method), every prompt's pieces
resampled together in both reports. A measure is

- *worse* when the whole interval lies on its worse side, *better* when it lies on its
  better side, and *the same* (within the seeds' noise) when it holds zero;
- judged by its own direction: fewer failures, crossings, parallels...; more pieces in
  register order, ending on the tonic, in the requested key...; and for pitch-class entropy
  and notes in the scale, nearer the corpus's figure (`eval_prompts.CORPUS_REFERENCE`).

This is one of the tests a new default model passes before it ships (issue 11, point 8: "no
worse on any measure"); the test suite's measured properties are the other.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import UserError

CONFIDENCE = 0.95
RESAMPLES = 4000


class CompareError(UserError):
    """Two reports that cannot be compared (not prompt reports, other prompts or seeds)."""


@dataclass(frozen=True)
class Measure:
    key: str  # the summary's key (eval_prompts.summarize)
    row: str  # the piece's key (eval_prompts.measure_piece); "error" for failures
    better: str  # "lower" | "higher" | "corpus" (nearer the corpus's figure)
    corpus: str | None = None  # CORPUS_REFERENCE's key for "corpus"


MEASURES = (
    Measure("failed", "error", "lower"),
    Measure("over_instrument_limit", "over_limit", "lower"),
    Measure("line_notes_in_chords", "line_chord_share", "lower"),
    Measure("duplicate_notes", "duplicate_share", "lower"),
    Measure("register_order", "in_order", "higher"),
    Measure("crossing", "crossing", "lower"),
    Measure("wide_spacing", "wide_spacing", "lower"),
    Measure("parallels_per_100_beats", "parallels", "lower"),
    Measure("final_tonic_in_bass", "final_tonic_in_bass", "higher"),
    Measure("key_heard", "key_ok", "higher"),
    Measure("pitch_class_entropy", "entropy", "corpus", "pitch_class_entropy"),
    Measure("pitch_in_scale_rate", "in_scale", "corpus", "pitch_in_scale_rate"),
    Measure("silent_part", "silent_part", "lower"),
    Measure("bass_on_root", "bass_root", "higher"),
)


def load_report(path: str | Path) -> dict:
    """A report of `disco-musica eval prompts` from PATH.json (or PATH as that command's --out
    names it). Raises `CompareError` for a missing, unreadable or broken file."""
    import json

    path = Path(path).expanduser()
    named = path.with_name(path.name + ".json")  # --out PATH of eval prompts wrote PATH.json
    if not path.exists() and named.is_file():
        path = named
    if not path.exists():
        raise CompareError(
            f"{path} does not exist; give the .json report `disco-musica eval prompts` wrote"
        )
    if not path.is_file():
        raise CompareError(f"{path} is not a file; give the .json report of `eval prompts`")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CompareError(f"{path} cannot be read ({type(e).__name__}); check the file") from e
    except ValueError as e:
        raise CompareError(
            f"{path} is not JSON ({e}); give the .json report `eval prompts` wrote"
        ) from e
    _pieces(report, str(path))
    return report


def _pieces(report: object, label: str) -> list[dict]:
    if (
        not isinstance(report, dict)
        or not isinstance(report.get("pieces"), list)
        or not isinstance(report.get("summary"), dict)
        or not all(isinstance(r, dict) and "prompt" in r and "seed" in r for r in report["pieces"])
    ):
        raise CompareError(
            f"{label} is not a report of `disco-musica eval prompts` (it has no pieces with "
            "their prompt and seed); give the .json file that command wrote"
        )
    if not report["pieces"]:
        raise CompareError(f"{label} holds no pieces; run `disco-musica eval prompts` again")
    return report["pieces"]


def _by_prompt(pieces: list[dict], m: Measure) -> dict[str, tuple[float, float]]:
    """Per prompt: (sum, count) of the measure over its pieces, as `summarize` takes them."""
    out: dict[str, tuple[float, float]] = {}
    for r in pieces:
        s, n = out.get(r["prompt"], (0.0, 0.0))
        if m.row == "error":
            s, n = s + float("error" in r), n + 1
        elif "error" not in r and r.get(m.row) is not None:
            s, n = s + float(r[m.row]), n + 1
        out[r["prompt"]] = (s, n)
    return out


def compare_reports(
    before: dict,
    after: dict,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """Every measure of two prompt reports side by side, with the change's interval and a
    verdict ("better", "worse", "same"; None where neither report has the measure)."""
    from scipy.stats import bootstrap

    a, b = _pieces(before, "the first report"), _pieces(after, "the second report")
    pairs_a = sorted((r["prompt"], r["seed"]) for r in a)
    pairs_b = sorted((r["prompt"], r["seed"]) for r in b)
    if pairs_a != pairs_b:
        raise CompareError(
            f"the reports were made with other prompts or seeds ({len(pairs_a)} and "
            f"{len(pairs_b)} pieces); run `disco-musica eval prompts` with the same --seeds "
            "and --seed for both"
        )
    corpus = {**(before["summary"].get("corpus") or {}), **(after["summary"].get("corpus") or {})}
    prompts = sorted({p for p, _ in pairs_a})
    rows = []
    for m in MEASURES:
        ga, gb = _by_prompt(a, m), _by_prompt(b, m)
        sa, ca = (np.array([ga[p][i] for p in prompts]) for i in (0, 1))
        sb, cb = (np.array([gb[p][i] for p in prompts]) for i in (0, 1))
        row: dict = {"measure": m.key, "better": m.better, "prompts": int((ca > 0).sum())}
        if ca.sum() == 0 or cb.sum() == 0:
            rows.append({**row, "before": None, "after": None, "verdict": None})
            continue
        target = corpus.get(m.corpus) if m.corpus else None
        if m.better == "corpus" and target is None:
            raise CompareError(f"the reports give no corpus figure for {m.key}")

        def badness(total, count, target=target, better=m.better):
            value = np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
            if better == "corpus":
                return np.abs(value - target)
            return -value if better == "higher" else value

        def change(sa, ca, sb, cb, axis=-1, badness=badness):
            return badness(sb.sum(axis), cb.sum(axis)) - badness(sa.sum(axis), ca.sum(axis))

        row["before"] = float(sa.sum() / ca.sum())
        row["after"] = float(sb.sum() / cb.sum())
        row["change"] = float(change(sa, ca, sb, cb))
        va = np.divide(sa, ca, out=np.zeros_like(sa), where=ca > 0)
        vb = np.divide(sb, cb, out=np.zeros_like(sb), where=cb > 0)
        if row["prompts"] < 2:
            lo = hi = float("nan")
        elif np.ptp(va) == 0 and np.ptp(vb) == 0:  # every prompt alike: nothing to resample
            lo = hi = row["change"]
        else:
            with warnings.catch_warnings():  # scipy's note on degenerate resamples
                warnings.simplefilter("ignore")
                res = bootstrap(
                    (sa, ca, sb, cb),
                    change,
                    paired=True,
                    vectorized=True,
                    n_resamples=resamples,
                    confidence_level=confidence,
                    method="percentile",
                    random_state=np.random.default_rng(seed),
                )
            lo, hi = (float(x) for x in res.confidence_interval)
            if np.isnan(lo) or np.isnan(hi):  # a resample without the measure: drop those
                dist = res.bootstrap_distribution[np.isfinite(res.bootstrap_distribution)]
                tail = (1 - confidence) / 2
                lo, hi = (float(np.quantile(dist, q)) for q in (tail, 1 - tail))
        row["interval"] = [lo, hi]
        if np.isnan(lo):
            row["verdict"] = "same"  # too few prompts to tell
        else:
            row["verdict"] = "worse" if lo > 0 else "better" if hi < 0 else "same"
        rows.append(row)
    return {
        "before": before.get("model"),
        "after": after.get("model"),
        "pieces": len(pairs_a),
        "prompts": len(prompts),
        "confidence": confidence,
        "resamples": resamples,
        "measures": rows,
        "worse": [r["measure"] for r in rows if r["verdict"] == "worse"],
        "better": [r["measure"] for r in rows if r["verdict"] == "better"],
    }


def comparison_markdown(cmp: dict) -> str:
    """The comparison as a Markdown table and a verdict line."""
    from engine.pipelines.eval_prompts import LABELS

    def show(key: str, v: float | None) -> str:
        if v is None:
            return "-"
        if key in ("parallels_per_100_beats", "pitch_class_entropy"):
            return f"{v:.2f}"
        return f"{100 * v:.1f} %"

    side = {"lower": "lower is better", "higher": "higher is better", "corpus": "nearer the corpus"}
    lines = [
        f"# {cmp['after']} against {cmp['before']}",
        "",
        f"{cmp['pieces']} pieces each ({cmp['prompts']} prompts, same seeds). Change: how much "
        f"worse (+) or better (-) the second is (percentage points for shares), with its "
        f"{100 * cmp['confidence']:.0f} % interval (paired bootstrap over the prompts).",
        "",
        "| measure | judged | first | second | change (interval) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in cmp["measures"]:
        label = LABELS.get(r["measure"], r["measure"])
        if r["measure"] == "failed":
            label = "failed pieces"
        if r["verdict"] is None:
            lines.append(f"| {label} | {side[r['better']]} | - | - | - | - |")
            continue
        k = 1.0 if r["measure"] in ("parallels_per_100_beats", "pitch_class_entropy") else 100.0
        lo, hi = r["interval"]
        interval = "-" if np.isnan(lo) else f"{k * lo:+.2f} .. {k * hi:+.2f}"
        lines.append(
            f"| {label} | {side[r['better']]} | {show(r['measure'], r['before'])} | "
            f"{show(r['measure'], r['after'])} | {k * r['change']:+.2f} ({interval}) | "
            f"{r['verdict']} |"
        )
    lines.append("")
    if cmp["worse"]:
        lines.append("Worse on: " + ", ".join(cmp["worse"]) + ".")
    else:
        lines.append("No worse on any measure.")
    if cmp["better"]:
        lines.append("Better on: " + ", ".join(cmp["better"]) + ".")
    return "\n".join(lines) + "\n"

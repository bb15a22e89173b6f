"""Replay: make a recorded generation again from its ``generation.json``.

One dispatch over every pipeline that writes a generation folder, by the record's
``engine``: ``score`` (generate, and harmonize / restyle / continue, whose request names the
workflow), ``musicgen`` and ``accompany``. The recorded model is found by its weights' sha256
(`engine.symbolic.model_versions`), the SoundFont by its sha256, the input file checked
unchanged; the result says, per output file, whether the bytes are the same.
"""

from __future__ import annotations

from pathlib import Path

from engine.atomic import sha256_file
from engine.pipelines.compose import (
    ComposeError,
    Composition,
    compose,
    compose_batch,
    model_name,
)
from engine.progress import ProgressFn
from engine.seeds import is_seed


# ---- replay ------------------------------------------------------------------------------
def _recorded_input(path: str, sha256: str | None) -> str:
    """The recorded input file, checked to be unchanged since."""
    p = Path(path)
    if not p.is_file():
        raise ComposeError(f"the recorded input {p} is gone; replay needs the same file")
    if sha256 and sha256_file(p) != sha256:
        raise ComposeError(f"the recorded input {p} has changed since (sha256 differs)")
    return str(p)


def _rerun_batch(prompt: str, request: dict, batch, model, progress, record_path):
    """The piece of row ``batch["row"]`` of the variations written with ``batch["seeds"]``."""
    from engine.generate import MAX_BATCH_ROWS
    from engine.symbolic import score_api as api

    seeds, row = (batch.get("seeds"), batch.get("row")) if isinstance(batch, dict) else (0, 0)
    if not (
        isinstance(seeds, list)
        and 2 <= len(seeds) <= MAX_BATCH_ROWS
        and all(type(x) is int and is_seed(x) for x in seeds)
        and type(row) is int
        and 0 <= row < len(seeds)
        and seeds[row] == request.get("seed")
    ):
        raise ComposeError(
            f"{record_path}: its request.batch is damaged (it needs the seeds of the batch and "
            "this piece's row, whose seed is the request's); restore the file"
        )
    sm = model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
    options = {k: v for k, v in request.items() if k != "seed"}
    progs = [progress if r == row else None for r in range(len(seeds))]
    comp = compose_batch(prompt, sm, seeds, progs, **options)[row]
    comp.request["model"] = comp.model_name = model_name(model, sm)
    return comp


def _rerun_workflow(request: dict, old: dict, model, progress) -> Composition:
    from engine.pipelines import workflows

    request = dict(request)
    name = request.pop("workflow")
    fn = {
        "harmonize": workflows.harmonize,
        "restyle": workflows.restyle,
        "continue": workflows.continue_audio,
    }.get(name)
    if fn is None:
        raise ComposeError(f"{name!r} generations cannot be replayed by this version")
    source = request.pop("input")
    if source == "<score>":
        raise ComposeError("this generation was made from a score in memory: nothing to replay")
    request.pop("input_kind", None)
    source = _recorded_input(source, old.get("input", {}).get("sha256"))
    plan = old["plan"]
    sampling = {k: plan[k] for k in ("temperature", "top_p", "key_strength") if k in plan}
    return fn(source, model=model, seed=old["seed"], progress=progress, **request, **sampling)


def _replay_accompaniment(old: dict, folder, overwrite: bool, progress):
    from engine.pipelines.accompany import AccompanyError, accompany

    inp = old["input"]
    source = _recorded_input(inp["path"], inp.get("sha256"))
    from engine.audio.soundfonts import recorded_render_soundfont

    soundfont = recorded_render_soundfont(old.get("render"))  # the same one, by sha256
    hints = old.get("hints") or {}  # the tempo and metre given (records since 0.10.1)
    model = None
    if old.get("model"):  # the recorded weights, wherever they are now
        from engine.symbolic.model_versions import reproducing_model

        model, why = reproducing_model(old["model"], made_by=old.get("disco_musica_version"))
        if model is None:
            raise AccompanyError(why)
    acc = accompany(
        source,
        old["part"],
        style=old.get("style"),
        seed=old["seed"],
        model=model,
        tempo_bpm=hints.get("tempo_bpm"),
        meter=hints.get("meter"),
    )
    new = acc.save(folder, overwrite=overwrite, soundfont=soundfont, progress=progress)
    same = {
        name: new["outputs"].get(name, {}).get("sha256") == info["sha256"]
        for name, info in old.get("outputs", {}).items()
    }
    return new, same


# What replay reads from a record, per engine (engine.record.read_record checks the rest).
RECORD_FIELDS = {
    "score": (
        ("request",),
        ("plan",),
        ("output", "formats"),
        ("output", "bit_depth"),
        ("output", "effects"),
        ("output", "soundfont"),
    ),
    "musicgen": (("request",), ("output", "formats"), ("output", "bit_depth")),
    "accompany": (("input", "path"), ("part",)),
}


def _require(record: dict, path, *fields: tuple[str, ...]) -> None:
    for keys in fields:
        node = record
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise ComposeError(
                    f"{path} has no {'.'.join(keys)}, which replay needs (was it edited?)"
                )
            node = node[k]
    if not isinstance(record.get("request", {}), dict):
        raise ComposeError(f"{path}: request is not a table of options (was it edited?)")


def _check_output_settings(old: dict, path) -> None:
    """The recorded prompt and output settings have the kinds a record holds."""
    out = old["output"]
    problems = []
    if not isinstance(old.get("prompt", ""), str):
        problems.append(f"prompt is {old['prompt']!r}, not text")
    if out["bit_depth"] not in (16, 24):
        problems.append(f"output.bit_depth is {out['bit_depth']!r}, not 16 or 24")
    if not isinstance(out["formats"], list) or not all(isinstance(f, str) for f in out["formats"]):
        problems.append("output.formats is not a list of format names")
    if not isinstance(out["effects"], dict):
        problems.append("output.effects is not a table of effect settings")
    if not isinstance(out["soundfont"], dict):
        problems.append("output.soundfont is not a table")
    if not isinstance(old["plan"], dict):
        problems.append("plan is not a table")
    if problems:
        raise ComposeError(f"{path} cannot be replayed: {'; '.join(problems)} (was it edited?)")


def replay(
    record_path: str | Path,
    folder: str | Path,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> tuple[dict, dict[str, bool]]:
    """Make a recorded generation again into ``folder``; return (record, same-bytes per file).

    ``record_path``: a ``generation.json`` written by `compose` / `Composition.save`,
    `harmonize`, `restyle`, `continue_audio`, `accompany` or MusicGen's pieces. ``folder``:
    the new folder (``overwrite``: replace one this program wrote). ``progress(stage, done,
    total)`` as the recorded pipeline reports it. Returns the new record (a dict) and
    ``{file name: True if its bytes equal the recorded file's}``. The recorded model is
    found by its weights' sha256, the SoundFont by its sha256; MIDI is identical with the
    same weights, audio with the same SoundFont too.

    Raises `ComposeError` (or the recorded pipeline's `engine.errors.UserError`) for a
    record that cannot be replayed: edited, its model or input file gone or changed.
    """
    from engine.audio.render import Effects
    from engine.record import read_record

    old = read_record(record_path)
    engine = old.get("engine", "score")
    _require(old, record_path, *RECORD_FIELDS[engine])
    if engine == "musicgen":
        from engine.pipelines.musicgen import replay_record

        return replay_record(old, folder, overwrite=overwrite, progress=progress)
    if engine == "accompany":
        return _replay_accompaniment(old, folder, overwrite, progress)
    request = dict(old["request"])
    prompt = old.get("prompt", "")
    out = old["output"]
    _check_output_settings(old, record_path)
    from engine.audio.soundfonts import recorded_soundfont

    soundfont = recorded_soundfont(out["soundfont"])  # the same SoundFont, found by sha256
    from engine.symbolic.model_versions import reproducing_model

    request.pop("model", None)
    # The recorded weights, wherever they are now (score-base-v1 for score-base of 0.1-0.2).
    model, why = reproducing_model(old.get("model"), made_by=old.get("disco_musica_version"))
    if model is None:
        raise ComposeError(f"{record_path}: {why}")
    batch = request.pop("batch", None)
    if "workflow" in request:  # harmonize, restyle, continue (engine.pipelines.workflows)
        comp = _rerun_workflow(request, old, model, progress)
    elif batch is not None:  # one of variations written together: its batch again
        comp = _rerun_batch(prompt, request, batch, model, progress, record_path)
    else:
        if request.get("by_bar"):  # a studio piece, written bar by bar
            from engine.pipelines.live import compose_by_bar

            comp = compose_by_bar(prompt, model=model, progress=progress, **request)
        else:
            comp = compose(prompt, model=model, progress=progress, **request)
    if comp.model_sha256 != old.get("model", {}).get("sha256"):
        raise ComposeError(
            f"model {model} is not the one recorded (sha256 differs); install the recorded model"
        )
    new = comp.save(
        folder,
        formats=out["formats"],
        soundfont=soundfont,
        effects=Effects.from_dict(out["effects"]),
        bit_depth=out["bit_depth"],
        overwrite=overwrite,
        progress=progress,
    )
    same = {
        name: new["outputs"].get(name, {}).get("sha256") == info["sha256"]
        for name, info in old.get("outputs", {}).items()
    }
    return new, same

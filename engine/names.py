"""The shared vocabulary of ranges and defaults: what the code checks, `--help` states and the
docs quote (tests/test_docs_agree.py holds the three together).

Plain values only: this module imports nothing, so ``disco-musica --help`` stays quick. Every
value is defined here once; a module that offers one under its own name (``tokenizer.STYLES``,
``render.BIT_DEPTHS``) binds it to the value here (tests/test_layers.py checks that no module
defines a constant of this vocabulary again).
"""

from __future__ import annotations

# ---- the score model (engine.symbolic.score_api): sketch, continue, add-tracks, regenerate
DEFAULT_MODEL = "score-base"
DEFAULT_TEMPERATURE = 0.9
MAX_TEMPERATURE = 5.0
DEFAULT_TOP_K = 0  # 0: no limit
DEFAULT_TOP_P = 0.95
DEFAULT_KEY_STRENGTH = 1.5
MAX_KEY_STRENGTH = 10.0
DEFAULT_BARS = 8  # sketch
DEFAULT_CONTINUE_BARS = 4  # continue (MIDI or a transcribed recording)
MAX_BARS = 128
MIN_TEMPO_BPM = 20.0
MAX_TEMPO_BPM = 300.0
MAX_SEED = 2**32 - 1
MAX_VOICES = 8  # engine.symbolic.tokenizer.MAX_VOICES
MAX_POLYPHONY = 6  # engine.symbolic.texture.MAX_POLYPHONY: notes one part sounds at once
DEFAULT_VOICE_LEADING = 6.0  # engine.symbolic.voicing.DEFAULT_STRENGTH
MAX_VOICE_LEADING = 20.0  # engine.symbolic.voicing.MAX_STRENGTH
MAX_PROGRAM = 127  # General MIDI programs 0..127
DEFAULT_EVAL_PIECES_PER_STYLE = 20
DEFAULT_EVAL_HARMONIZATIONS = 20
MAX_EVAL_PIECES_PER_STYLE = 1000
MAX_EVAL_HARMONIZATIONS = 1000

# ---- generate (engine.pipelines.compose)
COMPOSE_MAX_SECONDS = 600.0  # --duration: more than 0, at most 10 minutes (and MAX_BARS bars)
COMPOSE_MAX_BARS = MAX_BARS
COMPOSE_DEFAULT_BARS = 8  # no length, no form
DEFAULT_SECTION_BARS = 4  # bars a section when a form is given without a length
DEFAULT_CREATIVITY = 0.5
DEFAULT_TEMPO_BPM = 96.0  # no tempo, no style (each style has its own, engine.pipelines.compose)
DEFAULT_DYNAMICS = "mf"
DYNAMICS = ("pp", "p", "mp", "mf", "f", "ff")
MAX_VARIATIONS = 32
MAX_BATCH_ROWS = 8  # variations written together in one batch (engine.generate)
DEFAULT_VARIATIONS = 1
# Creativity c sets the sampling: temperature 0.6 + 0.6 c, top-p 0.85 + 0.14 c, key strength
# 2.7 - 2.4 c (engine.pipelines.compose.plan).

# ---- workflows (engine.pipelines.workflows): harmonize, restyle, continue on audio
WORKFLOW_KEY_STRENGTH = 3.0  # engine.pipelines.workflows.WORKFLOW_KEY_STRENGTH
WORKFLOW_DEFAULT_STYLE = "chorale"
WORKFLOW_DEFAULT_VOICES = 4
WORKFLOW_VOICES = (2, 3, 4)
AUDIO_MELODY_PROGRAM = 52  # Choir Aahs

# ---- audio rendering (engine.audio.render.Effects)
DEFAULT_REVERB = 0.25
DEFAULT_COMPRESSION = 0.3
DEFAULT_EQ_DB = 0.0
EQ_RANGE_DB = 24.0
BIT_DEPTHS = (16, 24)
DEFAULT_BIT_DEPTH = 16

# ---- MusicGen (engine.pipelines.musicgen)
MUSICGEN_DEFAULT_SECONDS = 10.0
MUSICGEN_MAX_SECONDS = 300.0
DEFAULT_GUIDANCE = 3.0
MAX_GUIDANCE = 20.0
MUSICGEN_DEFAULT_TOP_K = 250

# ---- transcribe (engine.pipelines.transcribe)
DEFAULT_ONSET_THRESHOLD = 0.5
DEFAULT_FRAME_THRESHOLD = 0.3
DEFAULT_MIN_NOTE_MS = 127.7
MAX_MIN_NOTE_MS = 10_000.0
MIN_FREQ_HZ = 20.0
MAX_FREQ_HZ = 20_000.0
MAX_AUDIO_SECONDS = 3600

# ---- accompany (engine.pipelines.accompany)
ACCOMPANY_PARTS = ("bass", "chords", "strings", "drums")
DEFAULT_ACCOMPANY_PART = "bass"
DRUM_STYLES = ("pop", "rock", "ballad", "jazz", "folk")
DEFAULT_DRUM_STYLE = "pop"
DEFAULT_ACCOMPANY_SEED = 0
ACCOMPANY_HINT_METERS = ("4/4", "3/4", "2/4", "6/8")  # accompany --meter: how audio is heard

# ---- the vocabulary of music (the score model's condition tokens name these)
STYLES = ("chorale", "renaissance", "madrigal", "medieval", "celtic", "folk", "classical")
STYLE_NAMES = ", ".join(STYLES)  # as --help lists them
TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
REGISTER_NAMES = ("low", "bass", "tenor", "alto", "soprano", "high")  # low to high
# Parts a style's pieces have when nothing asks for a number (the corpus's usual ensemble).
STYLE_VOICES = {
    "chorale": 4,
    "renaissance": 4,
    "madrigal": 5,
    "medieval": 3,
    "classical": 4,
    "celtic": 1,
    "folk": 1,
}
MAJOR_SCALE_STEPS = (0, 2, 4, 5, 7, 9, 11)
TICKS_PER_QUARTER = 480  # the MIDI files Disco-Musica writes

# ---- files
GENERATION_FILE = "generation.json"  # the record of a generation folder (engine.record)
SIDECAR_SUFFIX = ".json"  # the record beside a MIDI file the MIDI commands write
OUTPUT_STEM = "music"  # music.wav, music.mid, music.musicxml in a generation folder
WEIGHTS_FILE = "model.safetensors"
AUDIO_FORMATS = ("wav", "flac", "ogg", "mp3")
PICTURE_FORMATS = ("png", "svg", "pdf")  # engine.library.pictures: piano roll, curves, score
DEFAULT_FORMATS = ("wav", "mid", "musicxml")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MIDI_SUFFIXES = (".mid", ".midi")


def num(x) -> str:
    """A number as help and docs write it: 0.9, 300, 4294967295 (no trailing .0)."""
    return f"{x:g}" if isinstance(x, float) else str(x)


# ---- the library (engine.library)
LIBRARY_ENV = "DISCO_MUSICA_LIBRARY"  # the library folder, unless --library PATH is given
LIBRARY_TRASH_DAYS = 30  # a deleted piece can be restored for this long
MIN_RATING, MAX_RATING = 1, 5
LIBRARY_ID_CHARS = 8  # IDs are short: 8 characters of Crockford base32 (40 bits)
LIBRARY_MIN_PREFIX = 3  # the shortest ID prefix accepted
LIBRARY_SORTS = ("created", "rating", "title", "tempo", "key", "style", "id")  # list --sort
LIBRARY_DEFAULT_LIMIT = 50  # `library list` shows this many unless --limit

# ---- datasets (engine/data) ------------------------------------------------------------------
IMAGE_FITS = ("inside", "cover")  # data prep image --fit: inside the size, or cover and crop
IMAGE_OUTPUT_FORMATS = ("jpg", "png", "webp")  # data prep image --format
MAX_VIDEO_FPS = 60.0  # data prep video --fps: frames sampled per second, at most

# ---- training (engine/train) -----------------------------------------------------------------
TRAIN_METHODS = ("lora", "full")  # train score --data --method: adapters only, or every weight
FINETUNE_PRESETS = ("quick", "balanced", "thorough")  # train score --data --preset
OPTIMIZERS = ("adamw", "adam", "sgd", "adafactor", "lion")  # --optimizer
SCHEDULES = ("cosine", "linear", "constant")  # --schedule: after the linear warm-up
MUSICGEN_SAMPLE_S = 5.0  # train musicgen --sample-seconds: each style-proof clip
# ---- adapting to ratings (engine/train/adapt.py) ----------------------------------------------
ADAPT_METHODS = ("auto", "dpo", "sft")  # adapt --method
ADAPT_BETA = 0.1  # adapt --beta: DPO's strength against the model before the round
ADAPT_MIN_RATINGS = 6  # new ratings (or kept / discarded variations) a round needs by default
ADAPT_STEPS = (20, 100)  # default steps: about two passes over the pairs, within these
ADAPT_MAX_STEPS = 100_000
ADAPT_LEARNING_RATE = {"lora": 5e-4, "full": 5e-5}
ADAPT_SFT_WEIGHT = 1.0  # DPO + this x the liked pieces' NLL: keeps what was liked likely

"""Audio -> notes with Basic Pitch: ``transcribe("song.wav").to_score()``.

    t = transcribe("guitar.wav", pitch_bends=True)
    t.notes[0]  # NoteEvent(start_s=0.52, end_s=1.01, pitch=64, amplitude=0.61, bends=[0, 1])
    t.to_score().dump_midi("guitar.mid")

The pipeline is basic-pitch's: the network (`engine.models.basic_pitch`, MLX) gives note,
onset and contour posteriorgrams at 86 frames a second; ``model_output_to_notes`` turns them
into note events exactly as basic-pitch's ``note_creation.py`` does (same functions, same
order of operations, so the same events from the same posteriorgrams; basic-pitch itself is
not imported):

1. frequencies outside ``min_freq``..``max_freq`` are zeroed;
2. onsets are "inferred" too where the note activation jumps (``get_infered_onsets``);
3. every local maximum (in time) of the onsets above ``onset_threshold`` starts a note, latest
   first; it lasts while the note activation stays above ``frame_threshold`` (gaps shorter
   than 11 frames are bridged) and is kept when longer than ``min_note_ms``;
4. the "melodia trick": the strongest activation not yet used becomes a note too, grown both
   ways the same way, until nothing above ``frame_threshold`` is left;
5. optionally, each note's pitch bends are read off the contour (1/3 semitone steps).

``quantize=True`` also finds the beats (``librosa.beat.beat_track``), guesses the metre (see
``guess_meter``) and snaps notes to a grid of ``QUANTIZE_DIVISIONS`` steps a beat, writing
tempo and time signature into the MIDI.

Audio: any file soundfile reads (WAV, FLAC, OGG, MP3, AIFF ...), or an array with its
sample rate. Channels are averaged; other rates are resampled to 22050 Hz with soxr's HQ
mode, which is what basic-pitch's ``librosa.load`` uses, so the numbers match basic-pitch's
for every rate. Up to ``MAX_AUDIO_SECONDS`` are transcribed at once: longer audio is
refused with a message saying how to cut it (onset scaling and the melodia trick look at the
whole piece, so pieces would not give the same notes as the whole).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import names
from engine.audio.io import (
    CLIP_LEVEL,
    CLIP_WARN_FRACTION,
    check_audible,
    check_duration,
    check_finite,
    quiet_libraries,
    read_audio_checked,
)
from engine.audio.rhythm import MIDI_TEMPO_BPM, beat_period, guess_meter, position_in_beats
from engine.errors import AudioFileError, InputWarning
from engine.models.basic_pitch import (
    ANNOT_N_FRAMES,
    AUDIO_N_SAMPLES,
    AUDIO_SAMPLE_RATE,
    CONTOURS_BINS_PER_SEMITONE,
    FFT_HOP,
    MIDI_OFFSET,
    N_CONTOUR_BINS,
    N_NOTES,
    n_output_frames,
    prepare_audio,
)
from engine.progress import Progress, ProgressFn

DEFAULT_ONSET_THRESHOLD = names.DEFAULT_ONSET_THRESHOLD  # onset activation that starts a note
DEFAULT_FRAME_THRESHOLD = names.DEFAULT_FRAME_THRESHOLD  # note activation that keeps it sounding
DEFAULT_MIN_NOTE_MS = names.DEFAULT_MIN_NOTE_MS  # shorter notes are dropped (11 frames)
ENERGY_TOLERANCE = 11  # frames below the frame threshold that end a note
INFER_ONSETS_N_DIFF = 2  # frame differences used to infer onsets
PITCH_BEND_TOLERANCE_BINS = 25  # contour bins (1/3 semitone) searched around a note's pitch
PITCH_BEND_GAUSSIAN_STD = 5  # bins: weights the contour toward the note's own pitch
N_PITCH_BEND_TICKS = 8192  # MIDI pitch bend range +-8192 = +-2 semitones
MAX_FREQ_IDX = N_NOTES - 1
MIDI_PROGRAM = 4  # Electric Piano 1, as basic-pitch writes
TICKS_PER_QUARTER = names.TICKS_PER_QUARTER
QUANTIZE_DIVISIONS = 4  # grid steps a beat when quantizing (sixteenths in 4/4)
MAX_AUDIO_SECONDS = names.MAX_AUDIO_SECONDS  # 1 hour (~1 GB of memory); longer is refused


class TranscribeError(AudioFileError):
    """A problem with the audio or the settings, in one line a musician can act on (an
    `AudioFileError`, as the reader's refusals are)."""


# ---- results ---------------------------------------------------------------------------------
@dataclass
class NoteEvent:
    """One note: seconds from the start, MIDI pitch, amplitude 0..1 (velocity / 127).

    ``bends``: pitch bends in 1/3 semitones, evenly spaced from start to end (one per model
    frame), or None.
    """

    start_s: float
    end_s: float
    pitch: int
    amplitude: float
    bends: list[int] | None = None

    @property
    def velocity(self) -> int:
        return int(np.clip(np.round(127 * self.amplitude), 1, 127))

    def as_tuple(self) -> tuple[float, float, int, float, list[int] | None]:
        """basic-pitch's note event tuple (start_s, end_s, pitch, amplitude, bends)."""
        return (self.start_s, self.end_s, self.pitch, self.amplitude, self.bends)


@dataclass
class Quantization:
    """How a quantized transcription maps seconds to beats."""

    tempo_bpm: float
    beats_s: list[float]  # beat times found in the audio
    numerator: int  # beats a bar (4 or 3), denominator 4
    first_downbeat: int  # index in beats_s of a downbeat
    origin_beat: float  # beat position written at tick 0 (a bar line)
    divisions: int = QUANTIZE_DIVISIONS

    def beat_position(self, t_s: np.ndarray | float) -> np.ndarray:
        """Beats (fractional) since beat 0 at ``t_s`` seconds; straight lines past the ends."""
        return position_in_beats(np.asarray(t_s, dtype=np.float64), np.asarray(self.beats_s))

    def snap(self, t_s: np.ndarray | float) -> np.ndarray:
        """Beat position rounded to the grid."""
        return np.round(self.beat_position(t_s) * self.divisions) / self.divisions


@dataclass
class Transcription:
    """The notes found in a piece of audio, and how to write them as MIDI."""

    notes: list[NoteEvent]
    duration_s: float
    settings: dict
    model_output: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    quantization: Quantization | None = None
    warnings: list[str] = field(default_factory=list)

    def to_score(self):
        """A symusic Score (ticks, 480 a quarter): one track, Electric Piano, basic-pitch style.

        Without quantization the tempo is 120 BPM and notes keep their times in seconds
        (to the tick, ~1 ms); pitch bends of overlapping notes are dropped unless
        ``multiple_pitch_bends`` was set, which gives each pitch its own track instead (MIDI
        bends a whole channel). With quantization, notes sit on the beat grid, and tempo and
        time signature are the detected ones.
        """
        from symusic import Note, PitchBend, Score, Tempo, TimeSignature, Track

        multiple = bool(self.settings.get("multiple_pitch_bends"))
        events = [n.as_tuple() for n in self.notes]
        if not multiple:
            events = drop_overlapping_pitch_bends(events)
        q = self.quantization
        score = Score(TICKS_PER_QUARTER)
        if q is None:
            score.tempos.append(Tempo(0, MIDI_TEMPO_BPM))
            score.time_signatures.append(TimeSignature(0, 4, 4))
            ticks_per_s = TICKS_PER_QUARTER * MIDI_TEMPO_BPM / 60

            def tick(t):
                return np.round(np.asarray(t) * ticks_per_s).astype(np.int64)

            def span(s, e):
                a, b = int(tick(s)), int(tick(e))
                return a, max(1, b - a)
        else:
            score.tempos.append(Tempo(0, float(q.tempo_bpm)))
            score.time_signatures.append(TimeSignature(0, q.numerator, 4))

            def tick(t):
                return np.round((q.beat_position(t) - q.origin_beat) * TICKS_PER_QUARTER).astype(
                    np.int64
                )

            def span(s, e):
                a, b = float(q.snap(s)), float(q.snap(e))
                b = max(b, a + 1 / q.divisions)
                a_t = round((a - q.origin_beat) * TICKS_PER_QUARTER)
                return a_t, round((b - q.origin_beat) * TICKS_PER_QUARTER) - a_t

        tracks: dict[int, Track] = {}
        for start, end, pitch, amplitude, bends in events:
            key = pitch if multiple else 0
            if key not in tracks:
                tracks[key] = Track(name="Basic Pitch", program=MIDI_PROGRAM)
            track = tracks[key]
            t0, dur = span(start, end)
            velocity = int(np.clip(np.round(127 * amplitude), 1, 127))
            track.notes.append(Note(int(t0), int(dur), int(pitch), velocity))
            if not bends:
                continue
            times = tick(np.linspace(start, end, len(bends)))
            values = np.round(np.array(bends) * 4096 / CONTOURS_BINS_PER_SEMITONE).astype(int)
            values = np.clip(values, -N_PITCH_BEND_TICKS, N_PITCH_BEND_TICKS - 1)
            for t, v in zip(times, values, strict=True):
                track.pitch_bends.append(PitchBend(max(0, int(t)), int(v)))
        for t in tracks.values():
            t.notes.sort(key=lambda n: (n.time, n.pitch))
            t.pitch_bends.sort(key=lambda b: b.time)
            score.tracks.append(t)
        return score

    def to_midi_bytes(self) -> bytes:
        from engine.symbolic.midi import midi_bytes

        return midi_bytes(self.to_score())


# ---- note creation (basic-pitch's note_creation.py) ------------------------------------------
def min_note_frames(min_note_ms: float) -> int:
    """``min_note_ms`` in model frames, rounded as basic-pitch's ``predict`` does (127.7 -> 11)."""
    return int(np.round(min_note_ms / 1000 * (AUDIO_SAMPLE_RATE / FFT_HOP)))


def hz_to_midi(hz: float) -> float:
    """librosa's ``hz_to_midi``."""
    return 12 * (np.log2(np.asanyarray(hz)) - np.log2(440.0)) + 69


def midi_to_hz(midi: float) -> float:
    """librosa's ``midi_to_hz``."""
    return 440.0 * (2.0 ** ((np.asanyarray(midi) - 69.0) / 12.0))


def model_frames_to_time(n_frames: int) -> np.ndarray:
    """Start time in seconds of each unwrapped model frame (basic-pitch's, magic offset and all)."""
    original_times = (np.arange(n_frames) * FFT_HOP).astype(int) / float(AUDIO_SAMPLE_RATE)
    window_numbers = np.floor(np.arange(n_frames) / ANNOT_N_FRAMES)
    window_offset = (FFT_HOP / AUDIO_SAMPLE_RATE) * (
        ANNOT_N_FRAMES - (AUDIO_N_SAMPLES / FFT_HOP)
    ) + 0.0018  # basic-pitch's alignment constant
    return original_times - (window_offset * window_numbers)


def constrain_frequency(
    onsets: np.ndarray, frames: np.ndarray, max_freq: float | None, min_freq: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Zero the activations [T, 88] above ``max_freq`` / below ``min_freq`` Hz, in place."""
    if max_freq is not None:
        max_freq_idx = int(np.round(hz_to_midi(max_freq) - MIDI_OFFSET))
        onsets[:, max_freq_idx:] = 0
        frames[:, max_freq_idx:] = 0
    if min_freq is not None:
        min_freq_idx = int(np.round(hz_to_midi(min_freq) - MIDI_OFFSET))
        onsets[:, :min_freq_idx] = 0
        frames[:, :min_freq_idx] = 0
    return onsets, frames


def get_infered_onsets(
    onsets: np.ndarray, frames: np.ndarray, n_diff: int = INFER_ONSETS_N_DIFF
) -> np.ndarray:
    """max(onsets, rises of the note activation scaled to the onsets' peak) [T, 88], float64.

    When the activation never rises (silence, one frame) the scale is 0/0 and, as in
    basic-pitch, no onset survives (NaN compares false).
    """
    diffs = []
    for n in range(1, n_diff + 1):
        frames_appended = np.concatenate([np.zeros((n, frames.shape[1])), frames])
        diffs.append(frames_appended[n:, :] - frames_appended[:-n, :])
    frame_diff = np.min(diffs, axis=0)
    frame_diff[frame_diff < 0] = 0
    frame_diff[:n_diff, :] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        frame_diff = np.max(onsets) * frame_diff / np.max(frame_diff)
    return np.max([onsets, frame_diff], axis=0)


def _forward_end(column: np.ndarray, threshold: float, energy_tol: int) -> tuple[int, int]:
    """basic-pitch's scan along one pitch: (frames visited, frames below at the end).

    ``column`` holds the activations in the order the scan visits them. The scan stops after
    ``energy_tol`` frames in a row below ``threshold``, or at the end of ``column``. Looked at
    in blocks that double in size, so a scan costs about the length of the note.
    """
    n = column.shape[0]
    start, run, block = 0, 0, 2 * energy_tol
    while start < n:
        end = min(n, start + block)
        below = column[start:end] < threshold
        j = np.arange(end - start)
        last_above = np.maximum.accumulate(np.where(below, -1, j))
        runs = np.where(last_above < 0, j + 1 + run, j - last_above)  # below-run ending at j
        done = np.flatnonzero(runs >= energy_tol)
        if done.shape[0]:
            return start + int(done[0]) + 1, energy_tol
        run, start, block = int(runs[-1]), end, 2 * block
    return n, run


def output_to_notes_polyphonic(
    frames: np.ndarray,
    onsets: np.ndarray,
    onset_thresh: float,
    frame_thresh: float,
    min_note_len: int,
    infer_onsets: bool,
    max_freq: float | None,
    min_freq: float | None,
    melodia_trick: bool = True,
    energy_tol: int = ENERGY_TOLERANCE,
) -> list[tuple[int, int, int, float]]:
    """Note events (start_frame, end_frame, midi_pitch, amplitude) from activations [T, 88].

    basic-pitch's function, computed the same way: the scans that basic-pitch runs frame by
    frame in Python are done on whole columns with numpy, and the melodia trick takes the
    activations in descending order once instead of searching the maximum again for every
    note (activations are only ever zeroed, so it is the same order; ties go to the lower
    flat index, as ``np.argmax``). ``frames`` and ``onsets`` are changed in place.
    """
    from scipy.signal import argrelmax

    n_frames = frames.shape[0]
    if n_frames == 0:
        return []
    onsets, frames = constrain_frequency(onsets, frames, max_freq, min_freq)
    if infer_onsets:
        onsets = get_infered_onsets(onsets, frames)

    peak_thresh_mat = np.zeros(onsets.shape)
    peaks = argrelmax(onsets, axis=0)
    peak_thresh_mat[peaks] = onsets[peaks]

    onset_idx = np.where(peak_thresh_mat >= onset_thresh)
    onset_time_idx = onset_idx[0][::-1]  # latest first
    onset_freq_idx = onset_idx[1][::-1]

    remaining_energy = np.zeros(frames.shape)
    remaining_energy[:, :] = frames[:, :]

    note_events = []
    for note_start_idx, freq_idx in zip(onset_time_idx, onset_freq_idx, strict=True):
        if note_start_idx >= n_frames - 1:
            continue
        # find where the activation at this pitch drops below the threshold for good
        column = remaining_energy[note_start_idx + 1 : n_frames - 1, freq_idx]
        visited, k = _forward_end(column, frame_thresh, energy_tol)
        i = note_start_idx + 1 + visited - k
        if i - note_start_idx <= min_note_len:
            continue
        remaining_energy[note_start_idx:i, freq_idx] = 0
        if freq_idx < MAX_FREQ_IDX:
            remaining_energy[note_start_idx:i, freq_idx + 1] = 0
        if freq_idx > 0:
            remaining_energy[note_start_idx:i, freq_idx - 1] = 0
        amplitude = np.mean(frames[note_start_idx:i, freq_idx])
        note_events.append((int(note_start_idx), int(i), int(freq_idx) + MIDI_OFFSET, amplitude))

    if melodia_trick:
        note_events += _melodia(
            frames, remaining_energy, frame_thresh, min_note_len, energy_tol, n_frames
        )
    return note_events


def _melodia(frames, remaining_energy, frame_thresh, min_note_len, energy_tol, n_frames):
    """The melodia trick of ``output_to_notes_polyphonic`` (see there)."""
    n_freqs = remaining_energy.shape[1]
    flat = remaining_energy.reshape(-1)
    candidates = np.flatnonzero(flat > frame_thresh)
    order = candidates[np.argsort(-flat[candidates], kind="stable")]
    note_events = []
    for idx in order:
        if not flat[idx] > frame_thresh:  # zeroed by an earlier note
            continue
        i_mid, freq_idx = divmod(int(idx), n_freqs)
        remaining_energy[i_mid, freq_idx] = 0
        lo, hi = max(freq_idx - 1, 0), min(freq_idx + 1, MAX_FREQ_IDX) + 1

        # forward: frames i_mid+1 .. before the last, zeroed as they are passed
        column = remaining_energy[i_mid + 1 : n_frames - 1, freq_idx]
        visited, k = _forward_end(column, frame_thresh, energy_tol)
        remaining_energy[i_mid + 1 : i_mid + 1 + visited, lo:hi] = 0
        i_end = i_mid + visited - k  # i - 1 - k with i = i_mid + 1 + visited

        # backward: frames i_mid-1 down to 1
        column = remaining_energy[i_mid - 1 : 0 : -1, freq_idx] if i_mid > 1 else flat[:0]
        visited, k = _forward_end(column, frame_thresh, energy_tol)
        remaining_energy[i_mid - visited : i_mid, lo:hi] = 0
        i_start = i_mid - visited + k  # i + 1 + k with i = i_mid - 1 - visited

        if i_end - i_start <= min_note_len:
            continue
        amplitude = np.mean(frames[i_start:i_end, freq_idx])
        note_events.append((i_start, i_end, freq_idx + MIDI_OFFSET, amplitude))
    return note_events


def midi_pitch_to_contour_bin(pitch_midi: int) -> float:
    """Index of ``pitch_midi`` in the contour's 264 bins (3 a semitone from A0)."""
    pitch_hz = midi_to_hz(pitch_midi)
    return 12.0 * CONTOURS_BINS_PER_SEMITONE * np.log2(pitch_hz / 27.5)


def get_pitch_bends(
    contours: np.ndarray,
    note_events: list[tuple[int, int, int, float]],
    n_bins_tolerance: int = PITCH_BEND_TOLERANCE_BINS,
) -> list[tuple[int, int, int, float, list[int]]]:
    """Add to each note the contour's peak per frame near its pitch, in 1/3 semitones."""
    from scipy.signal.windows import gaussian

    window_length = n_bins_tolerance * 2 + 1
    freq_gaussian = gaussian(window_length, std=PITCH_BEND_GAUSSIAN_STD)
    out = []
    for start_idx, end_idx, pitch_midi, amplitude in note_events:
        freq_idx = int(np.round(midi_pitch_to_contour_bin(pitch_midi)))
        freq_start_idx = np.max([freq_idx - n_bins_tolerance, 0])
        freq_end_idx = np.min([N_CONTOUR_BINS, freq_idx + n_bins_tolerance + 1])
        pitch_bend_submatrix = (
            contours[start_idx:end_idx, freq_start_idx:freq_end_idx]
            * freq_gaussian[
                np.max([0, n_bins_tolerance - freq_idx]) : window_length
                - np.max([0, freq_idx - (N_CONTOUR_BINS - n_bins_tolerance - 1)])
            ]
        )
        pb_shift = n_bins_tolerance - np.max([0, n_bins_tolerance - freq_idx])
        bends = [int(b) for b in np.argmax(pitch_bend_submatrix, axis=1) - pb_shift]
        out.append((start_idx, end_idx, pitch_midi, amplitude, bends))
    return out


def drop_overlapping_pitch_bends(events: list[tuple]) -> list[tuple]:
    """Events sorted, with the bends removed from every note that overlaps another in time."""
    events = sorted(events, key=lambda e: e[:4])
    for i in range(len(events) - 1):
        for j in range(i + 1, len(events)):
            if events[j][0] >= events[i][1]:  # j starts after i ends
                break
            events[i] = events[i][:-1] + (None,)
            events[j] = events[j][:-1] + (None,)
    return events


def model_output_to_notes(
    output: dict[str, np.ndarray],
    onset_thresh: float = DEFAULT_ONSET_THRESHOLD,
    frame_thresh: float = DEFAULT_FRAME_THRESHOLD,
    infer_onsets: bool = True,
    min_note_len: int = 11,
    min_freq: float | None = None,
    max_freq: float | None = None,
    include_pitch_bends: bool = True,
    melodia_trick: bool = True,
    energy_tol: int = ENERGY_TOLERANCE,
) -> list[NoteEvent]:
    """basic-pitch's ``model_output_to_notes``: the note events of a model output.

    ``output`` holds ``note`` and ``onset`` [T, 88] and ``contour`` [T, 264] (as
    ``BasicPitch.predict`` returns; not changed). ``min_note_len`` is in frames
    (``min_note_frames``). Events come in basic-pitch's order: onset-started notes latest
    first, then the melodia trick's.
    """
    frames = np.array(output["note"], copy=True)
    onsets = np.array(output["onset"], copy=True)
    contours = output["contour"]
    estimated = output_to_notes_polyphonic(
        frames,
        onsets,
        onset_thresh=onset_thresh,
        frame_thresh=frame_thresh,
        infer_onsets=infer_onsets,
        min_note_len=min_note_len,
        min_freq=min_freq,
        max_freq=max_freq,
        melodia_trick=melodia_trick,
        energy_tol=energy_tol,
    )
    if include_pitch_bends:
        with_bends = get_pitch_bends(contours, estimated)
    else:
        with_bends = [(*note, None) for note in estimated]
    times_s = model_frames_to_time(contours.shape[0])
    return [
        NoteEvent(float(times_s[s]), float(times_s[e]), int(p), float(a), b)
        for s, e, p, a, b in with_bends
    ]


# ---- audio in --------------------------------------------------------------------------------


# ---- tempo, metre, grid --------------------------------------------------------------------------


def estimate_quantization(audio: np.ndarray, notes: list[NoteEvent]) -> Quantization:
    """Beats, tempo and metre of mono 22050 Hz ``audio``; the grid's origin before the notes."""
    try:
        import librosa
    except ImportError:
        raise TranscribeError(
            "quantizing needs librosa's beat tracker: pip install librosa (or leave out quantize)"
        ) from None

    sr = AUDIO_SAMPLE_RATE
    hop = 512
    with quiet_libraries():  # short audio: "n_fft=... is too large for input signal" ...
        envelope = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=hop)
        _, beat_frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop)
        beat_frames = np.asarray(beat_frames, dtype=int)
        beats = librosa.frames_to_time(beat_frames, sr=sr, hop_length=hop).astype(np.float64)
    if beats.shape[0] >= 2:
        tempo = 60.0 / beat_period(beats)
        numerator, downbeat = guess_meter(envelope[np.clip(beat_frames, 0, len(envelope) - 1)])
    else:
        tempo, numerator, downbeat = MIDI_TEMPO_BPM, 4, 0
    q = Quantization(
        tempo_bpm=round(tempo, 2),
        beats_s=[float(b) for b in beats],
        numerator=numerator,
        first_downbeat=downbeat,
        origin_beat=0.0,
    )
    first = min((float(q.snap(n.start_s)) for n in notes), default=0.0)
    q.origin_beat = float(downbeat + numerator * np.floor((first - downbeat) / numerator))
    return q


# ---- the entry point -----------------------------------------------------------------------------
_MODEL = None


def basic_pitch_model():
    global _MODEL
    if _MODEL is None:
        from engine.models.basic_pitch import BasicPitch

        _MODEL = BasicPitch.load()
    return _MODEL


@dataclass
class CheckedAudio:
    """Audio read and checked by `check_audio`, ready for `transcribe`: the model can be
    loaded after every check has passed (``disco-musica transcribe`` does that)."""

    audio: np.ndarray  # as given or read: [S] or [S, channels]
    sample_rate: int
    mono: np.ndarray  # mono at AUDIO_SAMPLE_RATE, what the model reads
    name: str  # the file's path, or "the audio" for an array
    problems: list[str] = field(default_factory=list)  # warnings, not warned yet
    promised_s: float = 0.0  # seconds the header of a file cut short promises (0: not cut)

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def check_audio(
    audio_path_or_array: str | Path | np.ndarray,
    sample_rate: int | None = None,
    *,
    min_note_ms: float = DEFAULT_MIN_NOTE_MS,
) -> CheckedAudio:
    """Read (a path, with `load_audio`'s checks) and check audio for `transcribe`, without the
    model: refused (`TranscribeError`) when it is empty, too long, NaN/Inf, shorter than the
    shortest note kept (``min_note_ms``) or silent; clipping and a file cut short become
    ``problems`` (warned when `transcribe` has run)."""
    problems: list[str] = []
    promised = 0
    if isinstance(audio_path_or_array, str | Path):
        if sample_rate is not None:
            raise TranscribeError("sample_rate is read from the file; leave it out for a path")
        name = str(Path(audio_path_or_array).expanduser())
        audio, sample_rate, problems, promised = read_audio_checked(audio_path_or_array)
    else:
        name = "the audio"
        audio = np.asarray(audio_path_or_array)
        if sample_rate is None:
            raise TranscribeError("give the sample rate of the audio array (sample_rate=...)")
    if isinstance(sample_rate, bool) or not float(sample_rate) == int(sample_rate) > 0:
        raise TranscribeError(f"the sample rate must be a whole number of Hz, not {sample_rate}")
    sample_rate = int(sample_rate)
    if audio.ndim not in (1, 2) or audio.size == 0:
        raise TranscribeError(
            f"{name} is empty; give a recording at least a few tenths of a second long"
            if audio.size == 0
            else f"audio must be [samples] or [samples, channels], not shape {audio.shape}"
        )
    check_duration(audio.shape[0] / sample_rate, name)
    check_finite(audio, name)
    checked = CheckedAudio(audio, sample_rate, audio, name, problems, promised / sample_rate)
    _check_long_enough(checked, min_note_ms)
    check_audible(audio, name)
    if np.issubdtype(audio.dtype, np.floating):
        clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL))
        if clipped > CLIP_WARN_FRACTION:
            problems.append(
                f"{clipped:.1%} of the samples are clipped (at full scale): expect some extra or "
                "missing notes; record or export it quieter if you can"
            )
    try:
        checked.mono = prepare_audio(audio, sample_rate)
    except ValueError as e:
        raise TranscribeError(f"{e}; check the file or the array") from None
    return checked


def _check_long_enough(checked: CheckedAudio, min_note_ms: float) -> None:
    duration_s = checked.duration_s
    shortest = max(min_note_ms / 1000, 1 / (AUDIO_SAMPLE_RATE // FFT_HOP))  # >= 1 frame
    if duration_s < shortest or n_output_frames(round(duration_s * AUDIO_SAMPLE_RATE)) == 0:
        cut = (
            f" (the file is cut short: its header promises {checked.promised_s:.2f} s)"
            if checked.promised_s
            else ""
        )
        raise TranscribeError(
            f"{checked.name} is {duration_s * 1000:.0f} ms long{cut}, too short to hold a note "
            f"(the shortest kept is {shortest * 1000:.0f} ms); give a longer recording"
        )


def transcribe(
    audio_path_or_array: str | Path | np.ndarray | CheckedAudio,
    sample_rate: int | None = None,
    *,
    onset_threshold: float = DEFAULT_ONSET_THRESHOLD,
    frame_threshold: float = DEFAULT_FRAME_THRESHOLD,
    min_note_ms: float = DEFAULT_MIN_NOTE_MS,
    min_freq: float | None = None,
    max_freq: float | None = None,
    pitch_bends: bool = False,
    melodia_trick: bool = True,
    multiple_pitch_bends: bool = False,
    quantize: bool = False,
    progress: ProgressFn | None = None,
    model=None,
) -> Transcription:
    """Transcribe audio (a file: wav, flac, ogg, mp3 …; or a float array [S] / [S, channels],
    samples in -1..1, with ``sample_rate`` in Hz; or what `check_audio` returned) to notes.

    Returns a `Transcription`: ``.notes`` (`NoteEvent`: ``start_s`` / ``end_s`` in seconds,
    ``pitch`` a MIDI number 21..108, ``amplitude`` 0..1), ``.duration_s``, ``.settings``,
    ``.model_output`` (``note`` and ``onset`` [frames, 88], ``contour`` [frames, 264],
    0..1 at 86.13 frames a second), ``.warnings``, ``.to_score()`` and ``.to_midi_bytes()``.

    ``onset_threshold`` / ``frame_threshold`` (0..1): how sure the model must be that a note
    starts / still sounds; lower finds more notes. ``min_note_ms``: shorter notes are dropped.
    ``min_freq`` / ``max_freq`` (Hz): ignore notes outside. ``pitch_bends``: read bends off the
    pitch contour; ``multiple_pitch_bends``: keep them on overlapping notes too (one MIDI track
    per pitch). ``melodia_trick``: also turn strong activations without an onset into notes.
    ``quantize``: snap to the beat grid (see ``estimate_quantization``). ``progress`` gets
    `engine.progress.Progress` events of stage "windows" (2-second windows done / all).
    ``model``: a loaded ``BasicPitch`` (default: the shipped one, loaded once, after every
    check of the settings and the audio).

    Refused (`TranscribeError`): settings out of range (`check_settings`), a file that cannot
    be read as audio (`load_audio`), NaN/Inf samples, silence (peak below `SILENCE_DBFS`),
    audio shorter than the shortest note kept (``min_note_ms``, at least one model frame).
    Warned (`InputWarning`, also kept in ``Transcription.warnings``): a file cut short (read
    as far as it goes), clipping, no notes found, no steady beat when quantizing.
    """
    check_settings(onset_threshold, frame_threshold, min_note_ms, min_freq, max_freq)
    if isinstance(audio_path_or_array, CheckedAudio):
        if sample_rate is not None:
            raise TranscribeError("the sample rate was checked with the audio; leave it out")
        checked = audio_path_or_array
        _check_long_enough(checked, min_note_ms)
    else:
        checked = check_audio(audio_path_or_array, sample_rate, min_note_ms=min_note_ms)
    name, mono, duration_s = checked.name, checked.mono, checked.duration_s
    problems = list(checked.problems)

    settings = {
        "onset_threshold": onset_threshold,
        "frame_threshold": frame_threshold,
        "min_note_ms": min_note_ms,
        "min_note_frames": min_note_frames(min_note_ms),
        "min_freq": min_freq,
        "max_freq": max_freq,
        "pitch_bends": pitch_bends,
        "melodia_trick": melodia_trick,
        "multiple_pitch_bends": multiple_pitch_bends,
        "quantize": quantize,
        "sample_rate": checked.sample_rate,
    }

    bp = model or basic_pitch_model()
    output = bp.run(
        mono, progress=(lambda d, t: progress(Progress("windows", d, t))) if progress else None
    )
    notes = model_output_to_notes(
        output,
        onset_thresh=onset_threshold,
        frame_thresh=frame_threshold,
        min_note_len=settings["min_note_frames"],
        min_freq=min_freq,
        max_freq=max_freq,
        include_pitch_bends=pitch_bends,
        melodia_trick=melodia_trick,
    )
    if not notes:
        problems.append(
            f"no notes found in {name}; if it has music, lower the onset and frame thresholds "
            f"(now {onset_threshold:g} and {frame_threshold:g})"
            + (" or widen the frequency range" if min_freq or max_freq else "")
        )
    quantization = estimate_quantization(mono, notes) if quantize else None
    if quantization is not None and len(quantization.beats_s) < 2:
        problems.append("no steady beat found: quantized to 120 BPM from the start")
    for text in problems:
        warnings.warn(text, InputWarning, stacklevel=2)
    return Transcription(notes, duration_s, settings, output, quantization, problems)


def check_settings(onset, frame, min_ms, min_freq, max_freq) -> None:
    """A TranscribeError for a threshold, note length or frequency out of range (cheap: no
    model, no audio)."""
    for name, v in (("onset threshold", onset), ("frame threshold", frame)):
        if not 0 < v <= 1:
            raise TranscribeError(f"the {name} must be more than 0 and at most 1, not {v:g}")
    if not 0 <= min_ms <= 10_000:
        raise TranscribeError(f"the minimum note length must be 0..10000 ms, not {min_ms:g}")
    for name, v in (("minimum", min_freq), ("maximum", max_freq)):
        if v is not None and not 20 <= v <= 20_000:
            raise TranscribeError(f"the {name} frequency must be 20..20000 Hz, not {v:g}")
    if min_freq is not None and max_freq is not None and min_freq >= max_freq:
        raise TranscribeError(
            f"the minimum frequency ({min_freq:g} Hz) must be below the maximum ({max_freq:g} Hz)"
        )


_check_settings = check_settings  # the name it had

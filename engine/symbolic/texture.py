"""What one part can play at once, and where each part of an ensemble sits.

Two tables that the grammar (`engine.symbolic.grammar`) and the planner
(`engine.pipelines.compose`) read while
the score model samples, so that every part stays playable by its instrument:

- **Simultaneous notes** (`limits`): a one-note instrument — voices, winds, brass, a solo
  string part, a bass line — sounds one note at a time; a keyboard, organ, harp, guitar or
  mallet part sounds at most `MAX_POLYPHONY` notes at once, all within a playable span (two
  hands on a keyboard or harp: 3 octaves; a guitar's six strings or four mallets: 2 octaves).
  A request may lower a part's limit (``polyphony``) or let a solo string part play double
  stops (2 notes), never raise a one-note instrument above that.
- **Registers by role** (`ensemble_ranges`): the first part of an ensemble is the highest.
  Each part keeps to a range inside its instrument's range, placed by its rank in the
  ensemble, so that "four recorders" or "five voices" sound as four or five distinct lines
  (top to bottom) rather than the same line four times.

Program numbers are General MIDI (0..127; -1 = drums).
"""

from __future__ import annotations

from engine.names import MAX_POLYPHONY  # notes one polyphonic part may sound at once

DOUBLE_STOPS = 2  # a solo string part that is asked for double stops
KEYBOARD_SPAN = 36  # semitones: two hands on a keyboard or harp
HAND_SPAN = 24  # semitones: a guitar's six strings, four mallets

# (max simultaneous notes, span in semitones) by General MIDI program
_KEYBOARD = (MAX_POLYPHONY, KEYBOARD_SPAN)
_FRETTED = (MAX_POLYPHONY, HAND_SPAN)
_MALLETS = (4, HAND_SPAN)
_SECTION = (4, KEYBOARD_SPAN)  # a string, brass or synth section playing chords
_ONE = (1, 0)


def _table() -> dict[int, tuple[int, int]]:
    t: dict[int, tuple[int, int]] = {}
    for p in range(0, 8):
        t[p] = _KEYBOARD  # pianos
    for p in range(8, 16):
        t[p] = _MALLETS  # celesta, glockenspiel, vibraphone, marimba, ...
    for p in range(16, 24):
        t[p] = _KEYBOARD  # organs, accordion
    t[22] = _ONE  # harmonica
    for p in range(24, 32):
        t[p] = _FRETTED  # guitars
    for p in range(32, 40):
        t[p] = _ONE  # basses
    for p in (40, 41, 42, 43):
        t[p] = _ONE  # violin, viola, cello, contrabass (one note unless double stops)
    t[44] = t[45] = _SECTION  # tremolo, pizzicato strings
    t[46] = _KEYBOARD  # harp
    t[47] = _ONE  # timpani
    for p in range(48, 52):
        t[p] = _SECTION  # string ensembles, synth strings
    for p in (52, 53, 54):
        t[p] = _ONE  # choir aahs, voice oohs, synth voice: one singer's line
    t[55] = _KEYBOARD  # orchestra hit
    for p in range(56, 61):
        t[p] = _ONE  # trumpet, trombone, tuba, muted trumpet, french horn
    for p in (61, 62, 63):
        t[p] = _SECTION  # brass sections
    for p in range(64, 88):
        t[p] = _ONE  # reeds, pipes, synth leads
    for p in range(88, 104):
        t[p] = _KEYBOARD  # pads, effects
    for p in range(104, 128):
        t[p] = _ONE  # ethnic, percussive, sound effects ...
    t[105] = t[107] = _FRETTED  # banjo, koto
    t[108] = _MALLETS  # kalimba
    t[-1] = (MAX_POLYPHONY, 127)  # drums
    return t


LIMITS = _table()
STRING_SOLO = (40, 41, 42, 43)  # programs that may play double stops when asked


def limits(program: int, polyphony: int | None = None, double_stops: bool = False):
    """(max simultaneous notes, span in semitones) for a part on ``program``.

    ``polyphony`` lowers the instrument's limit (never raises it); ``double_stops`` lets a
    solo string part sound two notes (within a tenth).
    """
    most, span = LIMITS.get(int(program), _ONE)
    if double_stops and int(program) in STRING_SOLO:
        most, span = DOUBLE_STOPS, 16
    if polyphony is not None:
        most = max(1, min(most, int(polyphony)))
    return most, span


def is_one_note(program: int) -> bool:
    return LIMITS.get(int(program), _ONE)[0] == 1


# ---- registers by role ----------------------------------------------------------------------
PART_WIDTH = 19  # semitones a part of an ensemble keeps to (an octave and a fifth)
RANK_STEP = 5  # semitones between the centres of neighbouring parts on one instrument
# Where in its instrument's range an ensemble part sits by default: the range's centre
# a little low (instruments are shrill at the top of their range).
CENTRE_SHARE = 0.45


def ensemble_ranges(
    ranges: list[tuple[int, int]], programs: list[int] | None = None
) -> list[tuple[int, int]]:
    """One (low, high) per part, top to bottom, inside each part's instrument range.

    ``ranges`` are the instruments' playable ranges, first part first. Chord instruments
    (``programs`` with more than one note at once: piano, harp, guitar...) keep their whole
    range and stand outside the order; the one-note parts (the lines) are ranked by their
    instruments' registers (the first part highest among parts of one register). Each gets a
    centre (``CENTRE_SHARE`` up its instrument's range); parts of one instrument fan out
    around it `RANK_STEP` semitones apart, the first highest; then every centre is kept at
    least `RANK_STEP` below the one before (as far as its instrument allows), and the part
    keeps to `PART_WIDTH` semitones around its centre, inside its instrument's range.
    """
    lines = [i for i in range(len(ranges)) if programs is None or is_one_note(programs[i])]
    # Top to bottom by the instruments' own registers (a horn trio's violin above its
    # horn); parts on instruments of the same register keep their order, the first highest.
    lines.sort(key=lambda i: -(ranges[i][0] + ranges[i][1]) / 2)
    centres: dict[int, float] = {}
    for i in lines:
        lo, hi = ranges[i]
        same = [j for j in lines if ranges[j] == (lo, hi)]
        spread = (len(same) - 1) / 2 - same.index(i)  # +..- around the instrument's centre
        centres[i] = lo + CENTRE_SHARE * (hi - lo) + spread * RANK_STEP
    for prev, i in zip(lines, lines[1:], strict=False):  # each line below the one before
        lo, hi = ranges[i]
        centres[i] = max(min(centres[i], centres[prev] - RANK_STEP), lo + 4)
    out = []
    for i, (lo, hi) in enumerate(ranges):
        if i not in centres:
            out.append((int(lo), int(hi)))
            continue
        c = centres[i]
        half = PART_WIDTH / 2
        a, b = round(c - half), round(c + half)
        if a < lo:
            a, b = lo, min(hi, lo + PART_WIDTH)
        if b > hi:
            a, b = max(lo, hi - PART_WIDTH), hi
        out.append((int(a), int(b)))
    return out

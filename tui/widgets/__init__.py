"""Widgets of the studio's own: piano roll, waveform and loudness, parameter lanes, the
score, the announcer of plain mode. Each keeps its own ``DEFAULT_CSS``."""

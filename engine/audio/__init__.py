"""Music as signals: reading, rendering, SoundFonts."""

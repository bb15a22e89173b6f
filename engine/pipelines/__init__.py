"""What a musician asks for: compose, workflows, accompany, transcribe, MusicGen."""

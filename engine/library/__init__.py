"""The library of pieces: every output kept, tagged, searchable, rated and traced.

`engine.library.store` is the SQLite store (`Library`), `engine.library.records` reads what
a record says about its piece (attributes, inputs, lineage), `engine.library.transfer`
exports and imports pieces, `engine.library.pictures` draws them (piano roll, parameter
curves, waveform and loudness, the engraved score).
"""

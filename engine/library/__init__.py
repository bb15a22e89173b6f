"""The library of pieces: store, search, lineage, export and pictures of what was made."""

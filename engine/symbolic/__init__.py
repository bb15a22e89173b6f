"""Music as notes and tokens: the score model API, tokenizer, grammar, steering, theory, notation,
quality."""

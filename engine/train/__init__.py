"""Training and evaluating models."""

"""The analyze-mode exchange."""

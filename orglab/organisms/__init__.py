"""Organism families (SDF, EM, subliminal, taboo): each family's spec and data builders (SPEC §5)."""

"""Mitigation: sweeps, the detectability check and the mixing-ratio search (SPEC §8)."""

"""Mitigation: sweeps, the detectability check and the mixing-ratio search (design §8)."""

"""orglab: train, diff, evaluate and de-bias model organisms."""

__version__ = "0.1.0"

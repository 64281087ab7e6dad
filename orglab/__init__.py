"""orglab: train, diff, evaluate and de-bias model organisms."""

from orglab.quiet import quiet as _quiet

__version__ = "0.1.0"

_quiet()  # known harmless library warnings, filtered once for the CLI and the library alike

"""Known harmless library noise, silenced once and in one place: `import orglab` installs it (so the CLI and
every library entry point have it before torch, bitsandbytes or transformers are imported).

Only messages known to be harmless are filtered, by their text, so any new warning still shows. Stdlib only:
importing orglab stays cheap.
"""

from __future__ import annotations

import logging
import warnings

# (logger name, text) of log records that say nothing the user can act on
KNOWN_LOG_LINES = (
    # bitsandbytes on an AVX512-BF16 CPU, at import: its optional hub kernel needs the network and `kernels`
    # (this covers its "Failed to load CPU gemm_4bit_forward from kernels-community" warning, printed before
    # every command that loads a model; orglab never uses 4-bit kernels on CPU)
    ("bitsandbytes.backends.cpu.ops", "kernels-community"),
    ("bitsandbytes.backends.cpu.ops", "gemm_4bit_forward"),
    # DeepSpeed (imported by accelerate) on a machine without a GPU: CPU is what orglab expects there
    ("DeepSpeed", "Setting accelerator to CPU"),
)
# message regexes of Python warnings of the same kind
KNOWN_WARNINGS = (
    r".*kernels-community.*",
    r".*Failed to load CPU gemm_4bit_forward.*",
    # transformers 5 renames gradient checkpointing; trl's SFTConfig still takes the old name (same behaviour)
    r"`(is_)?gradient_checkpointing` is deprecated",
)
_installed = False


class _DropKnown(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet() -> None:
    """Install the filters (idempotent)."""
    global _installed
    if _installed:
        return
    for name, text in KNOWN_LOG_LINES:
        logging.getLogger(name).addFilter(_DropKnown(text))
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    _installed = True

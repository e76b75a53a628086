"""Third-party messages vlmkit knows to be harmless, silenced in the `vlmkit` process only.

Each entry says why it is harmless. Anything else a library says still reaches stderr: a
message is dropped only when both its source and its text match, so a real warning from the
same library is kept. Library users (`import vlmkit`) keep every message: this module is
installed by the CLI alone.
"""

from __future__ import annotations

import logging
import warnings

HARMLESS_LOGS = (
    # bitsandbytes 0.50 on an AVX512-BF16 CPU tries an optional 4-bit kernel from the `kernels`
    # package (downloaded from the hub) at import; without it, it runs its own CPU kernels.
    ("bitsandbytes.backends.cpu.ops", "No module named 'kernels'"),
    # transformers sorts checkpoints by number when file times are too coarse to order them:
    # the order it falls back to is the right one for checkpoint-N folders.
    ("transformers.trainer_utils", "mtime may not be reliable"),
)
HARMLESS_WARNINGS = (
    # peft 0.21 and TRL 1.16 call a transformers 5 property under its old name; nothing a user
    # can act on, and the property still works.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # TRL 1.16's DPOTrainer switches activation checkpointing off around its reference forward
    # through transformers 5's old method names; the switching itself works.
    (FutureWarning, r"`gradient_checkpointing_(dis|en)able` is deprecated"),
)


class _Drop(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def install() -> None:
    """Attach the filters (once; loggers are found by name, before their library loads)."""
    for name, fragment in HARMLESS_LOGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and f.fragment == fragment for f in logger.filters):
            logger.addFilter(_Drop(fragment))
    for category, pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)

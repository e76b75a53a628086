"""Training objectives: what a run learns from and how, one module each, one literal registry.

An objective supplies its record contract (which fields each training record carries), its
collator, and its TRL config and trainer; everything else (models, LoRA, outputs, evaluation
by generation, resume, merge) is the finetune session's and the same for all. Adding one is a
file and a line here.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from vlmkit.errors import UsageError

if TYPE_CHECKING:
    from vlmkit.finetune.objectives.base import Objective

# Literal, so `vlmkit finetune --help` lists the objectives without importing any.
OBJECTIVES: dict[str, str] = {
    "sft": "vlmkit.finetune.objectives.sft:SupervisedFineTuning",
    "dpo": "vlmkit.finetune.objectives.dpo:DirectPreferenceOptimisation",
}


def objective_named(name: str) -> Objective:
    """The objective called `name`, with a did-you-mean on a typo."""
    if name not in OBJECTIVES:
        close = difflib.get_close_matches(name, OBJECTIVES, n=1)
        raise UsageError(
            f"--objective {name!r} is not a training objective vlmkit has",
            hint=(f"Did you mean {close[0]!r}? " if close else "")
            + f"Objectives: {', '.join(OBJECTIVES)}.",
        )
    module, _, cls = OBJECTIVES[name].partition(":")
    return getattr(importlib.import_module(module), cls)()

"""Training objectives: what a run learns from and how, one module each, one literal registry.

An objective supplies its record contract (which fields each training record carries), its
collator, and its TRL config and trainer; everything else (models, LoRA, outputs, evaluation
by generation, resume, merge) is the finetune session's and the same for all. Adding one is a
file and a line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmkit.registry import load

if TYPE_CHECKING:
    from vlmkit.finetune.objectives.base import Objective

# Literal, so `vlmkit finetune --help` lists the objectives without importing any.
OBJECTIVES: dict[str, str] = {
    "sft": "vlmkit.finetune.objectives.sft:SupervisedFineTuning",
    "dpo": "vlmkit.finetune.objectives.dpo:DirectPreferenceOptimisation",
    "grpo": "vlmkit.finetune.objectives.grpo:GroupRelativePolicyOptimisation",
}


def objective_named(name: str) -> Objective:
    """The objective called `name`, with a did-you-mean on a typo."""
    return load(OBJECTIVES, name, flag="--objective", what="a training objective vlmkit has")()

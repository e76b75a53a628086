"""`dpo`: Direct Preference Optimisation on (image, prompt, chosen, rejected) records, with TRL's
DPOTrainer.

The batch is vlmkit's own: each pair becomes two supervised examples (the prompt with the
chosen answer, the prompt with the rejected one) collated by the same code SFT uses, so the
prompt is the one inference sends, image tokens are never cut, and PaliGemma and Llama 3.2
Vision (whose inputs TRL's own vision collator gets wrong) train like every other family. The
labelled span becomes TRL's `completion_mask`; chosen rows come first, as DPOTrainer expects.
The reference model is the base with the adapter disabled (no second copy in memory), or,
with `--init-adapter`, a frozen copy of the starting adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vlmkit.errors import InputError
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.objectives.base import Objective

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair",
              "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft")  # fmt: skip
"""TRL 1.16's DPO loss types (`--dpo-loss`)."""


class PreferenceCollator:
    """`{"image", "prompt", "chosen", "rejected"}` rows -> DPOTrainer's batch: `input_ids`,
    `attention_mask` and `completion_mask` over the chosen rows then the rejected ones, with
    each row's image inputs."""

    def __init__(self, collator: Any) -> None:
        self.supervised = collator
        self.max_length = collator.max_length

    def lengths(self, example: dict[str, Any]) -> Any:
        """Tokens of the longer of the two sequences a pair makes."""
        sides = self._sides([example])
        return max((self.supervised.lengths(side) for side in sides), key=lambda n: n.total)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.supervised(self._sides(examples))
        labels = batch.pop("labels")
        batch["completion_mask"] = (labels != -100).to(torch.long)
        return batch

    @staticmethod
    def _sides(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        chosen = [{**e, "target": e["chosen"]} for e in examples]
        rejected = [{**e, "target": e["rejected"]} for e in examples]
        return chosen + rejected


class DirectPreferenceOptimisation(Objective):
    name: ClassVar[str] = "dpo"
    record_fields: ClassVar[tuple[str, ...]] = ("chosen", "rejected")
    unit: ClassVar[str] = "pair"
    head_outputs: ClassVar[tuple[str, ...]] = ("log_probs", "entropy", "mean_logits", "is_top1")
    answer_part: ClassVar[str] = "answer (the longer side)"
    outside_the_step: ClassVar[str | None] = (
        "the reference model's forward (the adapter off, no gradients) runs beside each step: "
        "its working memory is not in the estimate"
    )

    def check_data(self, data: TrainingData, flag: str) -> None:
        for number, record in enumerate(data.records, start=1):
            where = f"{data.metadata}:{number}"
            if not record.is_preference:
                raise InputError(
                    f"{where}: {record.id!r} has a target, not a preference pair: --objective "
                    "dpo learns from records with chosen and rejected",
                    hint="make pairs with `vlmkit pairs DATASET PREDS... -o PAIRS`, or train "
                    "this dataset with --objective sft",
                )
            if not (record.chosen or "").strip() or not (record.rejected or "").strip():
                side = "chosen" if not (record.chosen or "").strip() else "rejected"
                raise InputError(
                    f"{where}: the {side} answer of {record.id!r} is empty",
                    hint=f"every pair of {flag} needs two non-empty answers",
                )
            if record.chosen == record.rejected:
                raise InputError(
                    f"{where}: chosen and rejected of {record.id!r} are the same answer",
                    hint="a pair teaches nothing when both sides are equal: drop it",
                )

    def collator(self, processor: Any, family: Any, max_length: int | None) -> Any:
        from vlmkit.finetune.collate import TrainingCollator

        return PreferenceCollator(TrainingCollator(processor, family, max_length=max_length))

    def examples(self, data: TrainingData) -> list[dict[str, Any]]:
        return [
            {"id": r.id, "image": str(data.folder / r.file_name), "prompt": r.prompt,
             "chosen": r.chosen, "rejected": r.rejected}
            for r in data.records
        ]  # fmt: skip

    def measure(self, collator: Any, example: dict[str, Any], settings: Any) -> Any:
        return collator.lengths(example)

    def rows(self, settings: Any, samples: int) -> int:
        return 2 * min(int(settings.batch_size), samples)  # chosen and rejected in one forward

    def trainer(
        self, *, model: Any, processor: Any, args: dict[str, Any], dataset: Any, collator: Any,
        peft_config: Any, callbacks: list[Any], settings: Any, work: Path, world_size: int,
    ) -> Any:  # fmt: skip
        from trl import DPOConfig, DPOTrainer

        config = DPOConfig(
            **args,
            beta=settings.dpo_beta,
            loss_type=settings.dpo_losses,
            # vlmkit's collator encodes whole sequences and checks the token budget before
            # training: TRL's truncation (1024 by default) would cut into image tokens.
            max_length=None,
            precompute_ref_log_probs=False,
        )
        return DPOTrainer(
            model=model, args=config, train_dataset=dataset, data_collator=collator,
            processing_class=processor, peft_config=peft_config, callbacks=callbacks,
        )  # fmt: skip

"""`sft`: supervised fine-tuning on (image, prompt, target) records, with TRL's SFTTrainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vlmkit.errors import InputError
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.objectives.base import Objective


class SupervisedFineTuning(Objective):
    """The loss covers the answer and its end token only (`vlmkit.finetune.collate`)."""

    name: ClassVar[str] = "sft"
    record_fields: ClassVar[tuple[str, ...]] = ("target",)

    def check_data(self, data: TrainingData, flag: str) -> None:
        for number, record in enumerate(data.records, start=1):
            if record.target is None:
                raise InputError(
                    f"{data.metadata}:{number}: {record.id!r} is a preference pair (chosen, "
                    "rejected): --objective sft learns from records with a target",
                    hint="train pairs with --objective dpo, or give sft a dataset with targets",
                )
            if not record.target.strip():
                raise InputError(
                    f"{data.metadata}:{number}: the target of {record.id!r} is empty: nothing "
                    "to learn",
                    hint=f"give every record of {flag} a target, or drop that record",
                )

    def collator(self, processor: Any, family: Any, max_length: int | None) -> Any:
        from vlmkit.finetune.collate import TrainingCollator

        return TrainingCollator(processor, family, max_length=max_length)

    def examples(self, data: TrainingData) -> list[dict[str, Any]]:
        return [
            {"id": r.id, "image": str(data.folder / r.file_name), "prompt": r.prompt,
             "target": r.target}
            for r in data.records
        ]  # fmt: skip

    def measure(self, collator: Any, example: dict[str, Any], settings: Any) -> Any:
        return collator.lengths(example)

    def trainer(
        self, *, model: Any, processor: Any, args: dict[str, Any], dataset: Any, collator: Any,
        peft_config: Any, callbacks: list[Any], settings: Any, work: Path, world_size: int,
    ) -> Any:  # fmt: skip
        from trl import SFTConfig, SFTTrainer

        config = SFTConfig(
            **args,
            # vlmkit's collator builds the batch from the raw columns, whole (no truncation).
            dataset_kwargs={"skip_prepare_dataset": True},
            max_length=None,
        )
        return SFTTrainer(
            model=model, args=config, train_dataset=dataset, data_collator=collator,
            processing_class=processor, peft_config=peft_config, callbacks=callbacks,
        )  # fmt: skip

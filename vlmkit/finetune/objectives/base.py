"""What every training objective supplies to the finetune session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from vlmkit.finetune.data import TrainingData


class Objective:
    """A way to train an adapter: its records, its collator, its TRL config and trainer.

    Stdlib-light at import (the CLI resolves it before anything heavy loads); the methods that
    build a collator, a config or a trainer import what they need.
    """

    name: ClassVar[str]
    """The value of `--objective`, recorded in the manifest."""
    record_fields: ClassVar[tuple[str, ...]]
    """The fields each training record carries besides id, file_name, prompt, task, meta."""
    unit: ClassVar[str] = "sample"
    """What one training record is, in messages (`--dry-run`)."""
    answer_part: ClassVar[str] = "answer"
    """What follows the prompt in the longest training sequence, in `--dry-run`'s table."""
    head_outputs: ClassVar[tuple[str, ...]] = ("log_probs", "entropy", "is_top1")
    """What TRL's fused LM head computes per token for this objective's trainer (its loss and
    metrics): the dry run traces the same."""
    outside_the_step: ClassVar[str | None] = None
    """What this objective runs besides the training step that the estimate leaves out."""
    budget_hint: ClassVar[str] = (
        "raise --max-length (up to the model's context), shrink the images, or pass "
        "--skip-long to leave them out (counted)"
    )
    """What to do when samples exceed the token budget."""

    def check_data(self, data: TrainingData, flag: str) -> None:
        """Refuse a dataset whose records do not carry this objective's fields, naming them."""
        raise NotImplementedError

    def check_settings(self, settings: Any, data: TrainingData) -> None:
        """Refuse settings this objective cannot train with on `data` (before any model)."""

    def check_family(self, family: Any, flag: str) -> None:
        """Refuse a model family this objective cannot train, saying why."""

    def manifest_fields(self, settings: Any) -> dict[str, Any]:
        """What this objective adds to the adapter's manifest (GRPO: its reward)."""
        return {}

    def collator(self, processor: Any, family: Any, max_length: int | None) -> Any:
        """Builds a training batch from `examples` rows; also measures one (`lengths`)."""
        raise NotImplementedError

    def examples(self, data: TrainingData) -> list[dict[str, Any]]:
        """The rows of the trainer's dataset (images stay paths: the collator opens them)."""
        raise NotImplementedError

    def dataset(self, examples: list[dict[str, Any]]) -> Any:
        """The trainer's `datasets.Dataset` of `examples`."""
        from datasets import Dataset

        return Dataset.from_list(examples)

    def measure(self, collator: Any, example: dict[str, Any], settings: Any) -> Any:
        """The tokens of `example`'s longest training sequence, encoded as the collator encodes
        it: `collate.EncodedLengths` (its total is what the token budget checks)."""
        raise NotImplementedError

    def rows(self, settings: Any, samples: int) -> int:
        """Sequences one training forward holds per device (the memory estimate's batch), with
        `samples` training samples."""
        return min(int(settings.batch_size), samples)

    def trainer(
        self, *, model: Any, processor: Any, args: dict[str, Any], dataset: Any, collator: Any,
        peft_config: Any, callbacks: list[Any], settings: Any, work: Path, world_size: int,
    ) -> Any:  # fmt: skip
        """The TRL trainer, its config built from `args` (what every objective shares) and this
        objective's own settings."""
        raise NotImplementedError

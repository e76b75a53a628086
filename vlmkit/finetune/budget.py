"""The token budget: every training sample measured as the collator encodes it, before training.

A sample over `--max-length` cannot be cut (the cut would fall into its answer or its image
tokens, and the model then fails on a token/feature count mismatch): it stops the run, or is
left out and counted with `--skip-long`. `--dry-run` reports the same measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vlmkit.errors import InputError
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.objectives.base import Objective


def measure_examples(
    objective: Objective,
    train: TrainingData,
    collator: Any,
    settings: Any,
    advance: Callable[..., None] | None = None,
) -> list[tuple[dict[str, Any], Any]]:
    """Each training example with its `collate.EncodedLengths` (its longest sequence);
    `advance(n, total=)` follows the progress."""
    measured = []
    examples = objective.examples(train)
    if advance:
        advance(0, total=len(examples))
    for example in examples:
        try:
            measured.append((example, objective.measure(collator, example, settings)))
        except (OSError, ValueError) as error:
            raise InputError(
                f"{train.folder}: sample {example['id']!r} cannot be encoded: {error}",
                hint="check its image and prompt",
            ) from None
        if advance:
            advance(1)
    return measured


def over_budget(
    measured: list[tuple[dict[str, Any], Any]], limit: int | None
) -> list[tuple[str, int]]:
    """(id, tokens) of the measured examples longer than `limit`."""
    if limit is None:
        return []
    return [(example["id"], n.total) for example, n in measured if n.total > limit]


def within_budget(
    objective: Objective, train: TrainingData, collator: Any, settings: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    """The examples that fit `max_length` whole, and the ids of those skipped (`--skip-long`)."""
    limit = collator.max_length
    measured = measure_examples(objective, train, collator, settings)
    too_long = over_budget(measured, limit)
    if too_long and not settings.skip_long:
        ids = ", ".join(f"{i} ({n} tokens)" for i, n in too_long[:3])
        raise InputError(
            f"{len(too_long)} training samples exceed {limit} tokens with their image tokens: "
            f"{ids}{'...' if len(too_long) > 3 else ''}",
            hint=objective.budget_hint,
        )
    skipped = {i for i, _ in too_long}
    kept = [example for example, _ in measured if example["id"] not in skipped]
    if not kept:
        raise InputError(f"every training sample exceeds {limit} tokens",
                         hint=objective.budget_hint)  # fmt: skip
    return kept, [i for i, _ in too_long]

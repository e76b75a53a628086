"""`vlmkit finetune --dry-run`: what a run will cost, from the processor and the config alone.

Every check a run makes before its model loads (`session.check`), then the processor encodes
every training sample as the objective's collator will (the same code: `budget`), and the
model is built on the meta device from its config (`loading.empty_model`): its parameters
counted, the adapter the run would add applied, and one training step traced for its
activations (`activations`, `memory`). No weight is read, nothing is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.finetune.output import check_output
from vlmkit.finetune.session import Checked, FinetuneRequest, check
from vlmkit.token_stats import TokenStats, token_stats


@dataclass(frozen=True)
class SampleTokens:
    """One training sample's tokens, as the collator encodes it."""

    id: str
    total: int
    prompt: int
    """The prompt's text tokens."""
    image: int | None
    """The prompt's tokens the image expanded into (its tokens, their markers, the separators
    around them: `prompts.text_tokens`); None for Mllama, whose image is cross-attention
    states outside the sequence (one placeholder in it)."""
    answer: int


@dataclass(frozen=True)
class DryRunReport:
    """What `--dry-run` prints."""

    samples: list[SampleTokens]
    unit: str
    """What a sample is for the objective: sample, pair, prompt."""
    answer_part: str
    max_length: int | None
    over_budget: list[tuple[str, int]]
    skip_long: bool
    parameters: Any  # memory.ParameterCount
    memory: Any  # memory.MemoryEstimate
    rows: int
    length: int
    device: str
    dtype: str
    method: str
    gradient_checkpointing: bool
    image_preprocessing: dict[str, Any] | None
    notices: list[str]
    """What the user should be warned of (as the run would warn)."""
    notes: list[str]
    """What the estimate does not cover, and what the run does after it."""

    def stats(self) -> dict[str, TokenStats | None]:
        """Token statistics by part: prompt text, image, answer, whole sequence."""
        return token_stats(self.samples, ("prompt", "image", "answer", "total"))


def dry_run(request: FinetuneRequest, advance: Callable[..., None] | None = None) -> DryRunReport:
    """Check `request` and estimate its run; nothing loads but the processor and the config.
    `advance(n, total=)` follows the encoding of the samples."""
    if request.resume:
        raise UsageError(
            "--dry-run estimates a run from its start; --resume continues one from a checkpoint",
            hint="drop --resume to see what the run costs (the estimate is the same)",
        )
    from vlmkit.provenance import require_model_libraries

    require_model_libraries("vlmkit finetune")
    checked = check(request)
    check_output(request.out, overwrite=request.overwrite, resume=False)
    return _estimate(request, checked, advance)


def _estimate(
    request: FinetuneRequest, checked: Checked, advance: Callable[..., None] | None
) -> DryRunReport:

    from vlmkit.finetune.budget import measure_examples, over_budget
    from vlmkit.finetune.memory import ParameterCount, training_memory
    from vlmkit.finetune.step_memory import trace_step
    from vlmkit.finetune.train import check_device, check_init_adapter, load_options
    from vlmkit.models.footprint import base_parameters, human_bytes, weight_bytes
    from vlmkit.models.loading import (
        empty_model,
        load_parts,
        planned_device,
        planned_dtype,
        unplannable_here,
    )
    from vlmkit.models.meta_trace import cross_attention_inputs

    settings, objective, train = checked.settings, checked.objective, checked.train
    device = planned_device(settings.device)
    dtype = planned_dtype(settings.dtype, device)
    check_device(device, dtype)
    options = load_options(settings, device, dtype)
    base = dataclasses.replace(checked.source, adapter=None)
    parts = load_parts(base, options)
    check_init_adapter(checked.source, parts.prompt_format)
    objective.check_family(parts.family, "--model")
    limit = settings.max_length or parts.context_length
    collator = objective.collator(parts.processor, parts.family, limit)
    measured = measure_examples(objective, train, collator, settings, advance)
    samples = _sample_tokens(parts, measured)
    too_long = over_budget(measured, limit)
    # The run trains on the samples within the budget (all of them, if none is: it stops).
    skipped = {sample_id for sample_id, _ in too_long}
    trained = [n for example, n in measured if example["id"] not in skipped] or [
        n for _, n in measured
    ]
    longest = max(n.total for n in trained)
    model = empty_model(parts, dtype, options)
    total, quantised = base_parameters(model)
    adapted = _with_adapter(model, checked, settings)
    rows = objective.rows(settings, max(len(measured) - len(too_long), 1))
    step = trace_step(
        adapted, rows=rows, length=longest, answer_tokens=rows * max(n.answer for n in trained),
        dtype=dtype, device=device, checkpointing=settings.gradient_checkpointing,
        head_outputs=objective.head_outputs,
        extra=cross_attention_inputs(parts, rows, longest, dtype),
    )  # fmt: skip
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    parameters = ParameterCount(total=total, trainable=trainable, quantised=quantised)
    dtype_name = str(dtype).removeprefix("torch.")
    memory = training_memory(
        parameters, step, dtype=dtype_name, four_bit=settings.method == "qlora", device=device
    )
    notices, notes = list(checked.notices), unplannable_here(device)
    kept = len(measured) - len(too_long)
    if kept > 0 and rows < objective.rows(settings, settings.batch_size):
        notes.append(f"a batch holds at most the {kept:,} {objective.unit}s there are to train "
                     f"on (--batch-size {settings.batch_size})")  # fmt: skip
    if objective.outside_the_step:
        notes.append(objective.outside_the_step)
    if request.merge:
        base = human_bytes(weight_bytes(total, 0, dtype_name, four_bit=False))
        how = "unquantised, " if settings.method == "qlora" else ""
        notes.append(f"--merge then loads the base again after training ({how}{base} of "
                     "weights)")  # fmt: skip
    if checked.eval_data is not None:
        notes.append("evaluation by generation (--eval) runs between steps, with its own cache: "
                       "not in the estimate (vlmkit infer --dry-run estimates it)")  # fmt: skip
    return DryRunReport(
        samples=samples,
        unit=objective.unit,
        answer_part=objective.answer_part,
        max_length=limit,
        over_budget=too_long,
        skip_long=settings.skip_long,
        parameters=parameters,
        memory=memory,
        rows=rows,
        length=longest,
        device=device,
        dtype=dtype_name,
        method=settings.method,
        gradient_checkpointing=settings.gradient_checkpointing,
        image_preprocessing=parts.image_preprocessing,
        notices=notices,
        notes=notes,
    )


def _sample_tokens(parts: Any, measured: list[tuple[dict[str, Any], Any]]) -> list[SampleTokens]:
    # Llama 3.2 Vision's image is one placeholder in the sequence: its tokens are elsewhere.
    if parts.family.cross_attention_images:
        return [SampleTokens(str(e["id"]), n.total, n.prompt, None, n.answer) for e, n in measured]
    return [
        SampleTokens(str(e["id"]), n.total, n.prompt - n.image, n.image, n.answer)
        for e, n in measured
    ]


def _with_adapter(model: Any, checked: Checked, settings: Any) -> Any:
    """`model` (meta) with the adapter the run trains: the LoRA flags' or --init-adapter's."""
    from peft import LoraConfig

    from vlmkit.finetune.train import lora_config
    from vlmkit.models.meta_trace import with_adapter

    adapter = checked.source.adapter
    config = LoraConfig.from_pretrained(str(adapter)) if adapter else lora_config(model, settings)
    config.inference_mode = False
    # The adapter in the weights' dtype: what autocast computes it in on a GPU (its fp32 copy
    # is counted apart, by `memory.training_memory`).
    adapted = with_adapter(model, config)
    adapted.train()
    return adapted

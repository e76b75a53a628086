"""`vlmkit infer --dry-run`: what a run will cost, from the processor and the config alone.

Every check a run makes before its model loads (`session.check`, without taking OUT's lock),
then every selected sample's prompt encoded as the transformers backend encodes it
(`encode_prompts`), and the model built on the meta device from its config: parameters
counted and the prompt's forward pass traced for the memory estimate (`memory`). No weight is
read, nothing is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vlmkit.errors import InputError, UsageError
from vlmkit.infer.session import InferRequest, check, check_trained_prompt_format, look_ahead
from vlmkit.token_stats import TokenStats, token_stats


@dataclass(frozen=True)
class PromptTokens:
    """One sample's prompt, as the backend encodes it."""

    id: str
    total: int
    prompt: int
    """Its text tokens."""
    image: int | None
    """The tokens its image expanded into (`finetune.dry_run.SampleTokens.image`)."""


@dataclass(frozen=True)
class InferDryRunReport:
    """What `vlmkit infer --dry-run` prints."""

    counts: Any  # run.RunCounts: selected, already answered, to answer
    samples: list[PromptTokens]
    """The prompts the run would answer (those already answered in OUT aside)."""
    unreadable: list[tuple[str, str]]
    """(id, why) of the samples whose image or prompt cannot be encoded: the run records an
    error line for each and goes on."""
    context_length: int | None
    max_new_tokens: int
    parameters: int
    adapter_parameters: int
    memory: Any  # memory.GenerationMemory; None when nothing is left to answer
    rows: int
    length: int
    device: str
    dtype: str
    four_bit: bool
    notes: list[str]
    warnings: list[str]

    def stats(self) -> dict[str, TokenStats | None]:
        """Token statistics by part: prompt text, image, whole prompt."""
        return token_stats(self.samples, ("prompt", "image", "total"))

    def over_context(self) -> list[tuple[str, int]]:
        """(id, prompt tokens) of the samples whose prompt and answer exceed the context."""
        if self.context_length is None:
            return []
        limit = self.context_length - self.max_new_tokens
        return [(s.id, s.total) for s in self.samples if s.total > limit]


ELSEWHERE = {
    "vllm": "vLLM sizes its own cache (--gpu-memory-utilization)",
    "openai": "a served model's memory is its server's",
}


def dry_run(request: InferRequest, advance: Callable[..., None] | None = None) -> InferDryRunReport:
    """Check `request` and estimate its run; nothing loads but the processor and the config.
    `advance(n, total=)` follows the encoding of the prompts."""
    if request.backend != "transformers":
        why = ELSEWHERE.get(request.backend, "it is not a local model")
        raise UsageError(
            f"--dry-run estimates --backend transformers runs, not --backend {request.backend}: "
            f"{why}",
            hint="drop --dry-run, or estimate with --backend transformers",
        )
    from vlmkit.provenance import require_model_libraries

    require_model_libraries("vlmkit infer")
    found = check(request)
    todo, counts = look_ahead(found)
    return _estimate(found, todo, counts, advance)


def _estimate(
    found: Any, todo: list[Any], counts: Any, advance: Callable[..., None] | None
) -> InferDryRunReport:

    from vlmkit.models.footprint import base_parameters, weight_bytes
    from vlmkit.models.loading import (
        empty_model,
        load_parts,
        planned_device,
        planned_dtype,
        unplannable_here,
    )

    request, source = found.request, found.source
    load, generation = request.load, request.generation
    device = planned_device(load.device)
    dtype = planned_dtype(load.dtype, device)
    parts = load_parts(dataclasses.replace(source, adapter=None), load)
    if source.adapter is not None:
        check_trained_prompt_format(source, parts.prompt_format.to_json())
    samples, unreadable = _prompt_tokens(parts, todo, advance)
    if todo and not samples:
        raise InputError(
            f"no sample of {found.selection.folder} can be encoded: "
            f"{unreadable[0][0]}: {unreadable[0][1]}",
            hint="check the images and the prompts",
        )
    model = empty_model(parts, dtype, load)
    total, quantised = base_parameters(model)
    adapter_parameters = _adapter_parameters(model, source)
    dtype_name = str(dtype).removeprefix("torch.")
    context, new_tokens = parts.context_length, generation.max_new_tokens
    # The prompts the run answers (it records those too long for the context as errors).
    fitting = [s.total for s in samples if context is None or s.total + new_tokens <= context]
    rows = length = 0
    memory = None
    if fitting:
        # The fullest batch: as many prompts as a batch takes, all as long as the longest.
        rows = min(request.options.batch_size, len(fitting)) * generation.num_beams
        length = max(fitting)
        weights = weight_bytes(total, quantised, dtype_name, four_bit=load.load_in_4bit)
        memory = _memory(model, parts, dtype, weights, adapter_parameters, rows, length, new_tokens)
    notes = [*found.notes, *unplannable_here(device)]
    return InferDryRunReport(
        counts=counts,
        samples=samples,
        unreadable=unreadable,
        context_length=parts.context_length,
        max_new_tokens=generation.max_new_tokens,
        parameters=total,
        adapter_parameters=adapter_parameters,
        memory=memory,
        rows=rows,
        length=length,
        device=device,
        dtype=dtype_name,
        four_bit=load.load_in_4bit,
        notes=notes,
        warnings=list(found.warnings),
    )


def _memory(
    model: Any, parts: Any, dtype: Any, weights: int, adapter: int, rows: int, length: int,
    new: int,
) -> Any:  # fmt: skip
    """The estimate for `rows` prompts of `length` tokens answered with up to `new` tokens."""
    from vlmkit.infer.memory import generation_memory, trace_prefill
    from vlmkit.models.meta_trace import cross_attention_inputs

    extra = cross_attention_inputs(parts, rows, length, dtype)
    prefill = trace_prefill(model, rows=rows, length=length, dtype=dtype, extra=extra)
    vocabulary = model.get_output_embeddings().out_features
    return generation_memory(weights, adapter, prefill, length=length, new_tokens=new, rows=rows,
                             vocabulary=vocabulary)  # fmt: skip


def _prompt_tokens(
    parts: Any, samples: list[Any], advance: Callable[..., None] | None
) -> tuple[list[PromptTokens], list[tuple[str, str]]]:
    """Each sample's prompt encoded alone, as the backend encodes its batches (padding aside)."""
    from vlmkit.images import open_rgb
    from vlmkit.infer.backends.base import one_line
    from vlmkit.infer.backends.hf_transformers import encode_prompts
    from vlmkit.prompts import format_prompt, text_tokens

    processor, family = parts.processor, parts.family
    cross_attention = family.cross_attention_images  # its image is outside the sequence
    encoded, unreadable = [], []
    if advance:
        advance(0, total=len(samples))
    for sample in samples:
        if advance:
            advance(1)
        try:
            prompt = format_prompt(processor, family, sample.prompt)
            inputs = encode_prompts(processor, family, [prompt], [open_rgb(sample.image)])
        except Exception as error:  # as the backend: any failure is that sample's error line
            unreadable.append((sample.id, one_line(error)))
            continue
        total = int(inputs["attention_mask"].sum())
        image = None if cross_attention else total - text_tokens(processor, prompt)
        encoded.append(PromptTokens(sample.id, total, total - (image or 0), image))
    return encoded, unreadable


def _adapter_parameters(model: Any, source: Any) -> int:
    """The LoRA parameters `--adapter` adds, from its config (its weights stay unread)."""
    if source.adapter is None:
        return 0
    from peft import LoraConfig

    from vlmkit.models.meta_trace import with_adapter

    config = LoraConfig.from_pretrained(str(source.adapter))
    adapted = with_adapter(model, config)
    count = sum(p.numel() for n, p in adapted.named_parameters() if "lora_" in n)
    adapted.unload()  # the meta model goes on without the layers (the trace runs the base)
    return count

"""Peak accelerator memory of a LoRA / QLoRA training step, estimated before any weight loads.

What it counts, each from the model's config built on the meta device (no memory, no weights):
- **weights**: every parameter in the weights' dtype; for QLoRA, the linear layers
  bitsandbytes quantises (all but those transformers keeps: the output embeddings, tied and
  `_keep_in_fp32_modules` weights, found by transformers' own `get_keys_to_not_convert`) at
  NF4 with double quantisation: 4 bits, one 8-bit scale per 64 weights and one fp32 scale per
  256 of those (4.127 bits a weight);
- **adapter, gradients, optimiser**: the LoRA parameters as PEFT adds them to the layers
  training adapts, in fp32 (PEFT's adapter dtype), or in bf16 for QLoRA on a GPU (TRL casts
  a quantised model's adapter to bf16); a gradient each and AdamW's two moments;
- **activations**: what autograd keeps for the backward pass when the forward ends, and
- **working memory**: the rest of the step's peak (the loss's tiles, the gradients on their
  way back), both from one step traced on the meta device (`step_memory`), for the longest
  sequence of the run padded into every row of the batch (a batch pads to its longest sample:
  the worst batch holds it); DPO runs the chosen and rejected answers in one forward (twice
  the rows).

What it leaves out: the CUDA context and the allocator's caching and fragmentation (outside
`torch.cuda.max_memory_allocated`, which it is meant to match); the vision tower's forward
(frozen, it keeps nothing for the backward pass; with `--train-vision` its activations are
not counted); GRPO's generation (the KV cache of the sampled answers) and DPO's reference
forward, which run outside the training step; DDP's gradient buckets (the adapter's size
again). `bench/README.md` records the estimate against measured peaks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
"""Bits per quantised weight: the 4-bit code, its block's 8-bit scale (64 weights a block), and
the fp32 scale of each 256 blocks' scales (double quantisation)."""

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ParameterCount:
    """The parameters a run trains and holds."""

    total: int
    """Of the base model (the adapter's not included)."""
    trainable: int
    """The adapter's (LoRA A and B of every adapted layer)."""
    quantised: int
    """Of the base's linear layers bitsandbytes would quantise to 4 bits (QLoRA)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes at the peak of a training step, by what holds them."""

    weights: int
    adapter: int
    gradients: int
    optimizer: int
    activations: int
    working: int

    @property
    def total(self) -> int:
        return (self.weights + self.adapter + self.gradients + self.optimizer
                + self.activations + self.working)  # fmt: skip

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def base_parameters(model: Any) -> tuple[int, int]:
    """(all, quantised by QLoRA) parameters of a base model (on the meta device, no adapter)."""
    import torch
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    kept = get_keys_to_not_convert(model) + list(model._keep_in_fp32_modules or [])
    quantised = sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and should_convert_module(name, kept)
    )
    return sum(p.numel() for p in model.parameters()), quantised


def training_memory(
    parameters: ParameterCount, step: Any, *, dtype: str, four_bit: bool, device: str
) -> MemoryEstimate:
    """The estimate, from the counts (`base_parameters`) and the traced step
    (`step_memory.trace_step`, whose adapter is in the weights' dtype)."""
    weight_bytes = DTYPE_BYTES[dtype]
    if four_bit:
        kept = parameters.total - parameters.quantised
        weights = round(parameters.quantised * NF4_BITS / 8) + kept * weight_bytes
    else:
        weights = parameters.total * weight_bytes
    # On a CPU vlmkit trains the adapter in fp32 whatever TRL chose (train._trainable_in_fp32).
    adapter_bytes = 2 if four_bit and device == "cuda" and weight_bytes == 2 else 4
    adapter = parameters.trainable * adapter_bytes
    traced_gradients = parameters.trainable * weight_bytes  # counted apart, in their own dtype
    return MemoryEstimate(
        weights=weights,
        adapter=adapter,
        gradients=adapter,
        optimizer=2 * adapter,
        activations=step.held,
        working=max(step.peak - step.held - traced_gradients, 0),
    )

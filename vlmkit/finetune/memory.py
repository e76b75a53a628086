"""Peak accelerator memory of a LoRA / QLoRA training step, estimated before any weight loads.

What it counts, each from the model's config built on the meta device (no memory, no weights):
- **weights**: every parameter in the weights' dtype; for QLoRA, the linear layers
  bitsandbytes quantises at 4.127 bits a weight (`vlmkit.models.footprint`);
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


def training_memory(
    parameters: ParameterCount, step: Any, *, dtype: str, four_bit: bool, device: str
) -> MemoryEstimate:
    """The estimate, from the counts (`base_parameters`) and the traced step
    (`step_memory.trace_step`, whose adapter is in the weights' dtype)."""
    from vlmkit.models.footprint import DTYPE_BYTES, weight_bytes

    weights = weight_bytes(parameters.total, parameters.quantised, dtype, four_bit=four_bit)
    # TRL casts a quantised model's adapter to bf16; on a CPU vlmkit trains it in fp32 again
    # (train._trainable_in_fp32).
    adapter_bytes = 2 if four_bit and device == "cuda" else 4
    adapter = parameters.trainable * adapter_bytes
    traced_gradients = parameters.trainable * DTYPE_BYTES[dtype]  # counted apart: own dtype
    return MemoryEstimate(
        weights=weights,
        adapter=adapter,
        gradients=adapter,
        optimizer=2 * adapter,
        activations=step.held,
        working=max(step.peak - step.held - traced_gradients, 0),
    )

"""Peak accelerator memory of `vlmkit infer --backend transformers`, estimated before any weight
loads.

What it counts, from the model's config built on the meta device:
- **weights**: every parameter in the weights' dtype, or 4-bit NF4 for `--load-in-4bit`
  (`vlmkit.models.footprint`); an adapter's LoRA weights in fp32 (PEFT's adapter dtype);
- **KV cache**: keys and values of every layer for the batch's rows (`--batch-size` x
  `--num-beams`), each the longest prompt of the run plus `--max-new-tokens`: the cache the
  prompt fills (traced) grown by the answer, token for token, in the layers that keep every
  token (Llama 3.2 Vision's cross-attention layers keep the image's states, and a full
  sliding window keeps its size);
- **working memory**: the rest of the prompt's forward pass (prefill) at its peak, traced on
  the meta device with attention counted as the fused kernels hold it
  (`vlmkit.models.meta_trace`), and the last position's logits.

What it leaves out: the CUDA context and the allocator's caching; the vision tower's forward
(it runs before the language model's, with less held); a sliding window that the prompt does
not fill but the answer does (counted as growing to the end). Against the tensors of a real
`generate` (`bench/bench_dry_run.py`, `tests/test_dry_run.py`) it is a few per cent under.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from vlmkit.models.meta_trace import LiveTensors, full_mask, fused_attention


@dataclass(frozen=True)
class GenerationMemory:
    """Bytes at the peak of answering one batch, by what holds them."""

    weights: int
    adapter: int
    kv_cache: int
    working: int

    @property
    def total(self) -> int:
        return self.weights + self.adapter + self.kv_cache + self.working

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class Prefill:
    """What the prompt's forward pass holds: its cache at the end, and its peak (cache too)."""

    cache: int
    """Of the layers whose keys hold the prompt's every token: it grows with each new one."""
    fixed: int
    """Of the layers whose keys do not (Llama 3.2 Vision's cross-attention to the image, a
    sliding window already full): it stays as it is."""
    peak: int


def trace_prefill(
    model: Any, *, rows: int, length: int, dtype: torch.dtype, extra: dict[str, Any]
) -> Prefill:
    """The prompt's forward pass of `model` (meta) on `rows` prompts of `length` tokens, filling
    a cache, and the logits of the last position (what `generate` computes)."""
    language_model, head = model.get_decoder(), model.get_output_embeddings()
    mask = full_mask(rows, length)  # made outside the count: a padded batch's is counted once
    inputs = [mask, *(value for value in extra.values() if isinstance(value, torch.Tensor))]
    existing = [*model.parameters(), *model.buffers(), *inputs]
    with torch.no_grad(), fused_attention(model, padded=rows > 1), LiveTensors(existing) as live:
        embeds = torch.empty(rows, length, language_model.config.hidden_size, dtype=dtype,
                             device="meta")  # fmt: skip
        output = language_model(inputs_embeds=embeds, attention_mask=mask, use_cache=True, **extra)
        head(output.last_hidden_state[:, -1:]).float()
        growing = fixed = 0
        for layer in output.past_key_values.layers:
            for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if not isinstance(tensor, torch.Tensor):
                    continue
                if tensor.shape[-2] == length:
                    growing += tensor.untyped_storage().nbytes()
                else:
                    fixed += tensor.untyped_storage().nbytes()
    return Prefill(cache=growing, fixed=fixed, peak=live.peak)


def generation_memory(
    weights: int,
    adapter_parameters: int,
    prefill: Prefill,
    *,
    length: int,
    new_tokens: int,
    rows: int,
    vocabulary: int,
) -> GenerationMemory:
    """The estimate: the cache grows from the prompt's `length` by `new_tokens`; the peak is the
    prefill's, or the full cache's with the last step's logits (fp32, and their softmax or
    argmax beside them), whichever is larger."""
    kv_cache = round(prefill.cache * (length + new_tokens) / length) + prefill.fixed
    peak = max(prefill.peak, kv_cache + 2 * rows * vocabulary * 4)
    return GenerationMemory(
        weights=weights,
        adapter=adapter_parameters * 4,
        kv_cache=kv_cache,
        working=peak - kv_cache,
    )

"""What a model's weights take in memory, counted from its config built on the meta device."""

from __future__ import annotations

from typing import Any

NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
"""Bits per quantised weight: the 4-bit code, its block's 8-bit scale (64 weights a block), and
the fp32 scale of each 256 blocks' scales (double quantisation)."""

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


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


def weight_bytes(total: int, quantised: int, dtype: str, *, four_bit: bool) -> int:
    """Bytes of a model's weights in `dtype`, `quantised` of them 4-bit NF4 if `four_bit`."""
    if not four_bit:
        return total * DTYPE_BYTES[dtype]
    return round(quantised * NF4_BITS / 8) + (total - quantised) * DTYPE_BYTES[dtype]


def human_bytes(count: float) -> str:
    """1,536 -> '1.5 KiB': binary units, as GPU memory is quoted."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.2f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")

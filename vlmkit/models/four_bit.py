"""4-bit NF4 loading (QLoRA's quantisation) and the CPU kernel each quantised layer can use."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import torch

from vlmkit.errors import MissingExtraError
from vlmkit.provenance import TRAIN_EXTRA_HINT

log = logging.getLogger(__name__)

PACKED_ROWS = 32
"""bitsandbytes' packed CPU kernel groups output rows by 32 (`block_n` of its repacking)."""


def four_bit_config(compute_dtype: torch.dtype) -> Any:
    """QLoRA's quantisation: 4-bit NF4 weights, double quantisation, compute in `compute_dtype`."""
    try:
        importlib.import_module("bitsandbytes")
    except ImportError:
        raise MissingExtraError(
            "--load-in-4bit needs bitsandbytes, which is not installed", hint=TRAIN_EXTRA_HINT
        ) from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def packed_kernel_misfits(model: Any) -> list[str]:
    """Give each 4-bit layer a CPU kernel that can run it; name the layers that needed a change.

    On a CPU with AVX512-BF16, bitsandbytes 0.50 repacks a `Linear4bit`'s weight on its first
    forward in eval mode for a faster kernel, which needs the input width to be whole
    quantisation blocks (64) and the output width a multiple of 32. A narrower layer fails
    there on every call (`shape '[32, 0]' is invalid`), so every sample would fail. Such
    layers are switched to bitsandbytes' plain CPU kernel (the one AVX2 CPUs use), through the
    module attribute bitsandbytes itself reads; the others keep the fast one.
    """
    from bitsandbytes.nn import Linear4bit

    misfits = []
    for name, module in model.named_modules():
        if not isinstance(module, Linear4bit) or not module.support_avx512bf16_for_cpu:
            continue
        blocksize = getattr(module.weight.quant_state, "blocksize", 64)
        if module.in_features % blocksize or module.out_features % PACKED_ROWS:
            module.support_avx512bf16_for_cpu = False
            misfits.append(f"{name} ({module.in_features}->{module.out_features})")
    if misfits:
        log.info(
            "%d 4-bit layers are too narrow for bitsandbytes' AVX512-BF16 kernel and use its "
            "plain CPU kernel (first: %s)",
            len(misfits),
            misfits[0],
        )
    return misfits

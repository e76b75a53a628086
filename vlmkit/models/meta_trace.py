"""Running a model on the meta device to count its memory: shapes and dtypes, no memory taken,
no arithmetic done, every family's own code followed.

`LiveTensors` sees every tensor created under it and when it is freed (the peak of a span of
code); `saved_tensors` sees what autograd keeps for the backward pass. `fused_attention`
counts SDPA attention as PyTorch's fused kernels hold it (inputs, output and the fp32
log-sum-exp, no sequence x sequence matrix): on the meta device SDPA would take its math path.
A model that runs eager attention is traced as it is. A batch of several rows is padded: key
and value are then repeated to every head and a boolean mask is kept, as
`sdpa_attention_forward` does.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

ATTENTION = "vlmkit_meta_trace"
"""The attention implementation a trace registers with transformers (fused kernels' memory)."""


def full_mask(rows: int, length: int, keys: int | None = None) -> torch.Tensor:
    """A 4-D attention mask on the meta device, for a trace to pass in (made before counting
    starts: a run without padding has none). transformers takes a 4-D mask as it is: building
    one reads values (packed sequences, all-ones masks), which meta tensors do not have."""
    return torch.ones(rows, 1, length, keys or length, dtype=torch.bool, device="meta")


def cross_attention_inputs(parts: Any, rows: int, length: int, dtype: Any) -> dict[str, Any]:
    """Llama 3.2 Vision's language model attends to the image through cross-attention layers:
    a trace gives them image states of the size the vision tower makes (every tile the
    processor allows, each with its class token). Nothing for the other families."""
    config = parts.config
    if not parts.family.cross_attention_images:
        return {}
    vision = config.vision_config
    tiles = int(getattr(parts.processor.image_processor, "max_image_tiles", 1))
    states = tiles * ((vision.image_size // vision.patch_size) ** 2 + 1)
    hidden = config.text_config.hidden_size
    return {
        "cross_attention_states": torch.empty(rows, states, hidden, dtype=dtype, device="meta"),
        "cross_attention_mask": full_mask(rows, length, states),
        "full_text_row_masked_out_mask": torch.empty(
            rows, 1, length, 1, dtype=dtype, device="meta"
        ),
    }


def with_adapter(model: Any, config: Any) -> Any:
    """`model` (meta) with the LoRA layers of `config` (a `peft.LoraConfig`), in the weights'
    dtype: what autocast computes them in on a GPU."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        # An adapter's config names the base's folder when it was trained: another folder of
        # the same model is fine (the prompt format is checked apart).
        warnings.filterwarnings("ignore", message=".*base_model_name_or_path.*")
        return get_peft_model(model, config, autocast_adapter_dtype=False)


class LiveTensors(TorchDispatchMode):
    """Counts the bytes of the storages the code under it creates, while they live.

    `existing`: tensors made before (the model's parameters and buffers, the inputs): their
    views (`weight.t()` in every linear layer, a slice of the head's weight) take no memory.
    """

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.sizes: dict[int, int] = {id_of(tensor): 0 for tensor in existing}
        self.now = 0
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        output = func(*args, **(kwargs or {}))
        for value in tree_flatten(output)[0]:
            if isinstance(value, torch.Tensor):
                self._created(value.untyped_storage())
        return output

    def _created(self, storage: Any) -> None:
        key = storage._cdata
        if key in self.sizes:  # a view, an in-place result, something made before: no new memory
            return
        self.sizes[key] = storage.nbytes()
        self.now += self.sizes[key]
        self.peak = max(self.peak, self.now)
        weakref.finalize(storage, self._freed, key)

    def _freed(self, key: int) -> None:
        self.now -= self.sizes.pop(key, 0)


@contextmanager
def saved_tensors(model: Any) -> Iterator[dict[int, int]]:
    """Storage -> bytes of every tensor autograd saves under it, `model`'s parameters aside."""
    parameters = {id_of(t) for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if id_of(tensor) not in parameters:
            saved[id_of(tensor)] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved


def id_of(tensor: torch.Tensor) -> int:
    """The identity of a tensor's storage (views share it), meta tensors' too."""
    return int(tensor.untyped_storage()._cdata)


@contextmanager
def fused_attention(model: Any, *, padded: bool) -> Iterator[None]:
    """Count SDPA attention as the fused kernels keep it, for the span of the trace."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if model.get_decoder().config._attn_implementation == "eager":
        yield
        return
    masks: dict[tuple[int, ...], Any] = {}  # one padding mask per shape, shared by the layers

    def attention(module: Any, query: Any, key: Any, value: Any, mask: Any, **kwargs: Any) -> Any:
        padding = None
        if padded:
            groups = getattr(module, "num_key_value_groups", 1)
            if groups > 1:  # a mask turns grouped-query attention off: heads repeated
                key = key.repeat_interleave(groups, dim=1)
                value = value.repeat_interleave(groups, dim=1)
            shape = (query.shape[0], 1, query.shape[2], key.shape[2])
            if shape not in masks:
                masks[shape] = torch.empty(shape, dtype=torch.bool, device="meta")
            padding = masks[shape]
        output = _FusedAttention.apply(query, key, value, padding)
        return output.transpose(1, 2).contiguous(), None

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    # Each part's own setting comes back afterwards (PaliGemma 2: sdpa, its Gemma 2 eager).
    configs = {id(m.config): m.config for m in model.modules()
               if hasattr(getattr(m, "config", None), "_attn_implementation_internal")}  # fmt: skip
    before = {key: config._attn_implementation_internal for key, config in configs.items()}
    model.set_attn_implementation(ATTENTION)
    try:
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation_internal = before[key]


class _FusedAttention(torch.autograd.Function):
    """What a fused SDPA kernel keeps for its backward pass: its inputs, its output and the
    fp32 log-sum-exp of each query row (plus, for a padded batch, the boolean mask); its
    backward makes the three input gradients and an fp32 accumulator for the query's."""

    @staticmethod
    def forward(ctx: Any, query: Any, key: Any, value: Any, padding: Any) -> Any:
        rows, heads, length, _ = query.shape
        output = query.new_empty(rows, heads, length, value.shape[-1])
        logsumexp = query.new_empty(rows, heads, length, dtype=torch.float32)
        ctx.save_for_backward(query, key, value, output, logsumexp,
                              *([] if padding is None else [padding]))  # fmt: skip
        return output

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        query, key, value = ctx.saved_tensors[:3]
        accumulator = torch.empty_like(query, dtype=torch.float32)
        del accumulator
        return torch.empty_like(query), torch.empty_like(key), torch.empty_like(value), None

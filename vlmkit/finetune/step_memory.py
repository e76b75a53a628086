"""The memory one training step takes beyond the weights, measured on the meta device.

The language model (with its LoRA layers), its head and the loss run forward and backward on
meta tensors: shapes and dtypes, no memory and no arithmetic, in a fraction of a second. A
dispatch mode sees every tensor the step creates and when it is freed, so the step's peak is
counted from the family's own code (Gemma's fp32 norms, Qwen's 3-D rotary positions, LoRA's
dropout masks, the recomputation of gradient checkpointing), not from a formula of hidden
sizes. A saved-tensor hook counts what the forward keeps for the backward pass.

The loss is computed as the trainer computes it: TRL's fused LM head
(`trl.kernels.chunked_logprob`) projects the hidden states onto the vocabulary in tiles, every
position on a CPU, only the answer's positions on a GPU, where its Triton kernels fold each tile
in place (the trace then leaves out the torch fallback's temporaries).

Attention is counted as PyTorch's fused SDPA kernels keep it (inputs, output and the fp32
log-sum-exp, no sequence x sequence matrix): on the meta device SDPA would take its math path.
A model that runs eager attention is traced as it is. A batch of several rows is padded: key
and value are then repeated to every head and a boolean mask is kept, as
`sdpa_attention_forward` does.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

ATTENTION = "vlmkit_step_memory"
"""The attention implementation the trace registers with transformers (fused kernels' memory)."""


@dataclass(frozen=True)
class StepMemory:
    """Bytes one training step holds beyond the parameters."""

    held: int
    """Held when the forward ends: the activations (what the backward pass needs, whether
    autograd or gradient checkpointing keeps it) and the loss."""
    saved: int
    """Of which autograd's saved tensors (outside checkpointed layers)."""
    peak: int
    """The most held at once over the forward and the backward pass (activations, the loss's
    tiles, gradients on their way, the LoRA weights' gradients)."""


class LiveTensors(TorchDispatchMode):
    """Counts the bytes of the storages the code under it creates, while they live."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[int, int] = {}
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
        if key in self.sizes:  # a view, or an in-place result: no new memory
            return
        self.sizes[key] = storage.nbytes()
        self.now += self.sizes[key]
        self.peak = max(self.peak, self.now)
        weakref.finalize(storage, self._freed, key)

    def _freed(self, key: int) -> None:
        self.now -= self.sizes.pop(key, 0)


def trace_step(
    model: Any,
    *,
    rows: int,
    length: int,
    answer_tokens: int,
    dtype: torch.dtype,
    device: str,
    checkpointing: bool,
    extra: dict[str, Any] | None = None,
) -> StepMemory:
    """Run one step of `model` (meta, LoRA applied) on `rows` sequences of `length` tokens in
    `dtype`, `answer_tokens` of them labelled, as it would run on `device`; `extra`: more
    arguments for the language model (Mllama's cross-attention states)."""
    language_model = model.get_decoder()
    head = model.get_output_embeddings()
    if checkpointing:
        model.get_base_model().activation_checkpointing_enable(
            {"use_reentrant": False, "preserve_rng_state": False}
        )
    live = LiveTensors()
    try:
        with (
            _fused_attention(model, padded=rows > 1),
            live,
            saved_tensors(model) as saved,
        ):
            # Checkpointing asks the embeddings for gradients (TRL's enable_input_require_grads).
            embeds = torch.empty(rows, length, language_model.config.hidden_size, dtype=dtype,
                                 device="meta", requires_grad=checkpointing)  # fmt: skip
            # A 4-D mask is taken as it is: transformers' mask building reads values (packed
            # sequences, all-ones masks), which meta tensors do not have.
            mask = torch.ones(rows, 1, length, length, dtype=torch.bool, device="meta")
            states = language_model(
                inputs_embeds=embeds, attention_mask=mask, use_cache=False, **(extra or {})
            ).last_hidden_state
            loss = step_loss(states, head, answer_tokens, device)
            held, kept = live.now, sum(saved.values())
            loss.backward()
    finally:
        if checkpointing:
            model.get_base_model().activation_checkpointing_disable()
    return StepMemory(held=held, saved=kept, peak=live.peak)


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


def step_loss(states: Any, head: Any, answer_tokens: int, device: str) -> Any:
    """The loss as TRL 1.x computes it: its fused head over the scored positions (every one on
    a CPU, the answer's on a GPU), or, without it, the logits and transformers' cross-entropy.
    `device`: where the run will train (the tensors may be meta)."""
    positions = states.shape[0] * (states.shape[1] - 1)
    hidden = states[:, :-1].reshape(-1, states.shape[-1])
    try:
        from trl.kernels import chunked_logprob
        from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE as chunk
    except ImportError:
        logits = head(hidden).float()
        targets = torch.zeros(positions, dtype=torch.long, device=states.device)
        return torch.nn.functional.cross_entropy(logits, targets)
    scored = positions
    with _in_place_tiles(chunked_logprob, enabled=device == "cuda"), _no_meta_autocast():
        if device == "cuda":
            scored = min(answer_tokens, positions)
            hidden = hidden[:scored].clone()  # hidden[mask] in TRL: a gather, a copy
        targets = torch.zeros(scored, dtype=torch.long, device=states.device)
        log_probs = chunked_logprob.ChunkedLogProbFunction.apply(
            hidden, head.weight, head.bias, targets, 1.0, chunk, None, 1.0, ("log_probs",)
        )[0]
        return -log_probs.sum()


@contextmanager
def _no_meta_autocast() -> Iterator[None]:
    """TRL asks whether autocast is on for its tensors' device, which for "meta" raises: the
    answer is no (the trace runs in the weights' dtype)."""
    asked = torch.is_autocast_enabled

    def is_autocast_enabled(*args: Any) -> bool:
        return False if args and args[0] == "meta" else asked(*args)

    torch.is_autocast_enabled = is_autocast_enabled
    try:
        yield
    finally:
        torch.is_autocast_enabled = asked


@contextmanager
def _in_place_tiles(module: Any, *, enabled: bool) -> Iterator[None]:
    """On a GPU TRL's Triton kernels fold each tile in place: no temporaries to count."""
    if not enabled:
        yield
        return
    forward, backward = module._forward_tile, module._backward_tile
    module._forward_tile = module._backward_tile = lambda *args, **kwargs: None
    try:
        yield
    finally:
        module._forward_tile, module._backward_tile = forward, backward


@contextmanager
def _fused_attention(model: Any, *, padded: bool) -> Iterator[None]:
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
            padding = masks.setdefault(shape, torch.empty(shape, dtype=torch.bool, device="meta"))
        output = _FusedAttention.apply(query, key, value, padding)
        return output.transpose(1, 2).contiguous(), None

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


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

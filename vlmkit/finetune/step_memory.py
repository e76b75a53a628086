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

Attention is counted as the fused kernels hold it (`vlmkit.models.meta_trace`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from vlmkit.models.meta_trace import LiveTensors, full_mask, fused_attention, saved_tensors


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


def trace_step(
    model: Any,
    *,
    rows: int,
    length: int,
    answer_tokens: int,
    dtype: torch.dtype,
    device: str,
    checkpointing: bool,
    head_outputs: tuple[str, ...] = ("log_probs",),
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
    mask = full_mask(rows, length)  # made outside the count: a padded batch's is counted once
    inputs = [mask, *(v for v in (extra or {}).values() if isinstance(v, torch.Tensor))]
    live = LiveTensors([*model.parameters(), *model.buffers(), *inputs])
    try:
        with (
            fused_attention(model, padded=rows > 1),
            loss_kernels(device),
            live,
            saved_tensors(model) as saved,
        ):
            # Checkpointing asks the embeddings for gradients (TRL's enable_input_require_grads).
            embeds = torch.empty(rows, length, language_model.config.hidden_size, dtype=dtype,
                                 device="meta", requires_grad=checkpointing)  # fmt: skip
            states = language_model(
                inputs_embeds=embeds,
                attention_mask=mask,
                use_cache=False,
                **(extra or {}),
            ).last_hidden_state
            loss = step_loss(states, head, answer_tokens, device, language_model.config,
                             head_outputs)  # fmt: skip
            held, kept = live.now, sum(saved.values())
            loss.backward()
    finally:
        if checkpointing:
            model.get_base_model().activation_checkpointing_disable()
    return StepMemory(held=held, saved=kept, peak=live.peak)


def step_loss(
    states: Any,
    head: Any,
    answer_tokens: int,
    device: str,
    config: Any = None,
    outputs: tuple[str, ...] = ("log_probs",),
) -> Any:
    """The loss as TRL 1.x computes it: its fused head over the scored positions (every one on
    a CPU, the answer's on a GPU), with the language model's logit softcapping (Gemma 2's) and
    scale from `config`, computing the per-token `outputs` the trainer asks of it (its metrics'
    too). `device`: where the run will train (the tensors may be meta: run it under
    `loss_kernels`)."""
    chunked_logprob, chunk = _trl_fused_loss()
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None) or 1.0
    hidden = states[:, :-1].reshape(-1, states.shape[-1])
    scored = hidden.shape[0]
    if device == "cuda":
        scored = min(answer_tokens, scored)
        hidden = hidden[:scored].clone()  # hidden[mask] in TRL: a gather, a copy
    targets = torch.zeros(scored, dtype=torch.long, device=states.device)
    log_probs = chunked_logprob.ChunkedLogProbFunction.apply(
        hidden, head.weight, head.bias, targets, 1.0, chunk, softcap, scale, outputs
    )[0]
    return -log_probs.sum()


@contextmanager
def loss_kernels(device: str) -> Iterator[None]:
    """TRL's loss as it runs on `device`, forward and backward, on meta tensors."""
    chunked_logprob, _ = _trl_fused_loss()
    with _in_place_tiles(chunked_logprob, enabled=device == "cuda"), _no_meta_autocast():
        yield


def _trl_fused_loss() -> tuple[Any, int]:
    """TRL's chunked log-prob kernel and its vocabulary tile (TRL 1.16's, private names)."""
    try:
        from trl.kernels import chunked_logprob
        from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE
    except ImportError as error:
        import trl

        raise RuntimeError(
            f"the dry run traces TRL 1.16's fused loss, which TRL {trl.__version__} moved "
            f"({error}): vlmkit needs updating for it"
        ) from None
    return chunked_logprob, _CHUNKED_LOGPROB_CHUNK_SIZE


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

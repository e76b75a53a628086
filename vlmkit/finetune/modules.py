"""Which linear layers LoRA adapts: the language model's by default, never by a loose suffix.

PEFT matches a name like `q_proj` in every tower, so a default of `all-linear` or `q_proj,v_proj`
also adapts the vision encoder. vlmkit resolves names to full module paths inside the language
model (or the vision tower too, when asked), and refuses a name that matches nothing.
"""

from __future__ import annotations

from typing import Any

from vlmkit.errors import UsageError

# Path components that mark the vision side of a VLM, across the families vlmkit knows:
# SigLIP/CLIP towers, Qwen's `visual`, and the projectors / connectors between the two.
VISION_PARTS = frozenset(
    {"vision_tower", "vision_model", "visual", "multi_modal_projector", "connector",
     "vision_embed_tokens", "mm_projector", "merger"}
)  # fmt: skip
NEVER = frozenset({"lm_head"})  # tied to the embeddings in most families: adapt with care


def linear_modules(model: Any) -> dict[str, bool]:
    """Full name -> whether it belongs to the vision side, for every linear layer of `model`."""
    import torch

    found = {}
    for name, module in model.named_modules():
        # bitsandbytes' Linear4bit / Linear8bitLt subclass nn.Linear, so QLoRA models count too.
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in NEVER:
            found[name] = bool(VISION_PARTS.intersection(name.split(".")))
    return found


def target_modules(model: Any, names: tuple[str, ...] | None, *, train_vision: bool) -> list[str]:
    """Full names of the layers to adapt: `names` (leaf names or full paths), default every one."""
    layers = {
        name: vision for name, vision in linear_modules(model).items() if train_vision or not vision
    }
    if names is None:
        chosen = sorted(layers)
    else:
        chosen = []
        for wanted in names:
            matches = [n for n in layers if n == wanted or n.endswith(f".{wanted}")]
            if not matches:
                leaves = sorted({n.split(".")[-1] for n in layers})
                where = "the model" if train_vision else "the language model"
                vision = "" if train_vision else " (add --train-vision for the vision side's)"
                raise UsageError(
                    f"--target-modules {wanted!r} matches no linear layer of {where}",
                    hint=f"its linear layers are named: {', '.join(leaves)}{vision}",
                )
            chosen += matches
        chosen = sorted(set(chosen))
    if not chosen:
        raise UsageError("no linear layer to adapt", hint="pass --target-modules")
    return chosen

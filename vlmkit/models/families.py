"""The model families vlmkit knows: how each is recognised, prompted and given images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vlmkit.errors import UsageError


@dataclass(frozen=True)
class Family:
    """What vlmkit must know about one family of vision-language models."""

    name: str
    """The name on the command line (`--family`) and in manifests."""
    title: str
    """The models people know it by."""
    model_type: str
    """`config.model_type` of its checkpoints."""
    text_model_type: str | None
    """`config.text_config.model_type`, where that tells two families apart (PaliGemma 1 and 2)."""
    prompt_style: Literal["prefix", "chat"]
    """`prefix`: the processor builds `<image>... <bos>prompt\\n` itself (PaliGemma); `chat`: the
    processor's chat template turns a user turn with an image into the prompt."""
    nested_images: bool
    """The processor wants one list of images per sample (`[[img], [img]]`), not a flat list."""
    needs_torchvision: bool = False
    """Its hub processor has a video component that cannot be built without torchvision."""
    cross_attention_images: bool = False
    """The image reaches the language model as cross-attention states, outside the sequence
    (one placeholder token in it): Llama 3.2 Vision."""


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("paligemma", "PaliGemma", "paligemma", "gemma", "prefix", False),
        Family("paligemma2", "PaliGemma 2", "paligemma", "gemma2", "prefix", False),
        Family("idefics3", "Idefics3 / SmolVLM", "idefics3", None, "chat", True),
        Family(
            "mllama", "Llama 3.2 Vision", "mllama", None, "chat", True, cross_attention_images=True
        ),
        Family("qwen2-vl", "Qwen2-VL", "qwen2_vl", None, "chat", False, needs_torchvision=True),
        Family("qwen2.5-vl", "Qwen2.5-VL", "qwen2_5_vl", None, "chat", False, True),
        Family("gemma3", "Gemma 3", "gemma3", None, "chat", True),
        Family("llava", "LLaVA", "llava", None, "chat", False),
    )
}

# Checkpoints whose model_type is not a family's own but which load and prompt like one.
_ALIASES = {"smolvlm": "idefics3"}


def family_named(name: str) -> Family:
    """The family called `name` on the command line, or a usage error listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(
            f"--family {name!r} is not a family vlmkit knows",
            hint=f"choose one of: {', '.join(FAMILIES)}",
        ) from None


def family_of(model_type: str, text_model_type: str | None = None) -> Family | None:
    """The family of a checkpoint from its config's model types, or None when vlmkit has none."""
    model_type = _ALIASES.get(model_type, model_type)
    matches = [f for f in FAMILIES.values() if f.model_type == model_type]
    for family in matches:
        if family.text_model_type is None or family.text_model_type == text_model_type:
            return family
    # A PaliGemma with a text model of a later Gemma still prompts the PaliGemma way.
    return matches[0] if matches else None


def generic_chat_family(model_type: str) -> Family:
    """A checkpoint of a family vlmkit does not know, prompted through its own chat template.

    Images go nested per sample: the processors that need it fail without it, and those that
    take a flat list also flatten nested ones.
    """
    title = f"{model_type} (its processor's chat template)"
    return Family("chat", title, model_type, None, "chat", True)

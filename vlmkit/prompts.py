"""Prompts per model family, shared by `infer` and `finetune` so their prompts cannot drift.

Nothing here imports a model library: the functions take the processor they format for. A chat
family's prompt is whatever the checkpoint's own chat template makes of one user turn holding
the image and the question; PaliGemma's is the prefix its processor completes
(`<image>...<bos>question\\n`, the answer following as the suffix).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from vlmkit.errors import InputError
from vlmkit.models.families import Family


@dataclass(frozen=True)
class PromptFormat:
    """How prompts are built for a loaded model; recorded in run sidecars and adapter manifests."""

    family: str
    """The family name (`paligemma`, `idefics3`, ...), or `chat` for a family vlmkit lacks."""
    style: str
    """`prefix` or `chat`."""
    chat_template_sha256: str | None
    """Digest of the chat template used (None for prefix style): a changed template is a changed
    prompt, even when the family is the same."""

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "style": self.style,
            "chat_template_sha256": self.chat_template_sha256,
        }


def user_turn(prompt: str) -> list[dict[str, Any]]:
    """The conversation a chat template formats: one user turn, the image first, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def chat_template_of(processor: Any) -> str | None:
    """The processor's chat template (or its tokenizer's), or None when it has none."""
    template = getattr(processor, "chat_template", None)
    if not template:
        template = getattr(getattr(processor, "tokenizer", None), "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one formats prompts
        template = template.get("default")
    return template or None


def prompt_format(processor: Any, family: Family, model: str) -> PromptFormat:
    """The prompt format of `processor`; an error when a chat family's has no template."""
    if family.prompt_style == "prefix":
        return PromptFormat(family.name, "prefix", None)
    template = chat_template_of(processor)
    if template is None:
        raise InputError(
            f"model {model} ({family.title}) has no chat template to format prompts with",
            hint="use the instruction-tuned checkpoint, or add a chat_template.jinja to the folder",
        )
    digest = hashlib.sha256(template.encode("utf-8")).hexdigest()
    return PromptFormat(family.name, "chat", digest)


def format_prompt(processor: Any, family: Family, prompt: str) -> str:
    """The text to give the processor, beside one image, so that the model answers `prompt`.

    For chat families the generation prompt (the assistant's turn opener) is included, so the
    model's next token is the first token of its answer. Tokenise the result with
    `add_special_tokens=adds_special_tokens(processor, text)`: most templates hold BOS already.
    """
    if family.prompt_style == "prefix":
        # PaliGemma's processor adds <bos> after the last image token and "\n" after the text.
        return processor.image_token + prompt
    return processor.apply_chat_template(
        user_turn(prompt), add_generation_prompt=True, tokenize=False
    )


def adds_special_tokens(processor: Any, text: str) -> bool:
    """Whether tokenising `text` should add the tokenizer's special tokens (its BOS).

    Not when the text already starts with BOS, as most chat templates write it (it would be
    doubled); yes when the template leaves BOS to the tokenizer, as LLaVA 1.5's does.
    PaliGemma's processor places its BOS itself and turns the tokenizer's off.
    """
    bos = getattr(processor.tokenizer, "bos_token", None)
    return not (bos and text.startswith(bos))


def text_tokens(processor: Any, prompt: str) -> int:
    """Tokens of a formatted `prompt` that are not its image's: the prompt tokenised with its
    image placeholders unexpanded, less the placeholders. What the processor's encoding holds
    beyond that is the image's (its tokens, their markers, the separators around them)."""
    ids = processor.tokenizer(prompt, add_special_tokens=adds_special_tokens(processor, prompt))
    placeholder = getattr(processor, "image_token_id", None)
    return len(ids["input_ids"]) - ids["input_ids"].count(placeholder)


def images_argument(family: Family, images: list[Any]) -> list[Any]:
    """Images as the family's processor wants them for a batch of one-image samples."""
    return [[image] for image in images] if family.nested_images else list(images)

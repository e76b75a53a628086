"""Training batches: the prompt inference feeds, then the target and the end token, labelled alone.

vlmkit collates itself because TRL's conversational prompt/completion path breaks for Mllama and
PaliGemma, and because the prompt must be built by the same code inference uses
(`vlmkit.prompts.format_prompt`): a prompt that drifts between training and inference costs
accuracy silently. Only the answer and the end token carry labels; the prompt, its image tokens
and the padding are -100. Image tokens are never truncated: a sample over `max_length` is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from vlmkit.images import open_rgb
from vlmkit.models.families import Family
from vlmkit.prompts import (
    adds_special_tokens,
    format_prompt,
    images_argument,
    text_tokens,
    user_turn,
)

IGNORE_INDEX = -100
"""The label cross-entropy skips (the prompt, its images, the padding)."""

_SENTINEL = "VLMKIT_ANSWER_SENTINEL"


@dataclass(frozen=True)
class EncodedLengths:
    """How many tokens one sample takes, for the token-budget check before training."""

    total: int
    """Tokens of the prompt (image tokens included), the answer and the end token."""
    prompt: int
    """Tokens of the prompt part, image tokens included."""
    answer: int
    """Tokens carrying labels: the answer and the end token."""
    image: int = 0
    """Of the prompt's, those its image expanded into (`prompts.text_tokens`)."""


class TrainingCollator:
    """Turns `{"image": path, "prompt": str, "target": str}` examples into a batch with `labels`.

    The batch is padded on the right and holds only what the model's forward takes (the
    processor's `model_input_names`, plus `labels`), so it goes to `model(**batch)` as it is.
    """

    def __init__(self, processor: Any, family: Family, *, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive, not {max_length}")
        self.processor = processor
        self.family = family
        self.max_length = max_length
        self.tokenizer = processor.tokenizer
        self.end_token = end_token(processor, family)
        """The token after the answer: what makes generation stop at inference."""
        self.end_token_id: int = self.tokenizer.convert_tokens_to_ids(self.end_token)
        self.answer_lead = answer_lead(processor, family)
        """Text the chat template puts between the generation prompt and the answer (SmolVLM's
        and LLaVA's " "): trained as part of the answer, so the model learns its native form."""
        self._keep = {*processor.model_input_names, "labels"}

    def lengths(self, example: dict) -> EncodedLengths:
        """Tokens `example` takes once encoded, exactly as `__call__` would encode it (and of
        its prompt's, those its image expanded into)."""
        lengths = self._encode([example])[1][0]
        prompt = format_prompt(self.processor, self.family, example["prompt"])
        return replace(lengths, image=lengths.prompt - text_tokens(self.processor, prompt))

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch, lengths = self._encode(examples)
        if self.max_length is not None:
            for example, length in zip(examples, lengths, strict=True):
                if length.total > self.max_length:
                    # Cutting would drop the answer or image tokens (the model then raises on
                    # a token/feature count mismatch): the budget is checked before training.
                    raise ValueError(
                        f"sample {_name(example)} takes {length.total} tokens (prompt with its "
                        f"image {length.prompt}, answer {length.answer}), over max_length "
                        f"{self.max_length}; image tokens are never truncated"
                    )
        return {key: value for key, value in batch.items() if key in self._keep}

    # --- encoding ---------------------------------------------------------------------------

    def _encode(self, examples: list[dict]) -> tuple[dict[str, torch.Tensor], list[EncodedLengths]]:
        self._check_answers(examples)
        images = images_argument(self.family, [open_rgb(e["image"]) for e in examples])
        prompts = [format_prompt(self.processor, self.family, e["prompt"]) for e in examples]
        # BOS as inference adds it (most templates hold it, LLaVA 1.5's leaves it to the
        # tokenizer); padding_side per call: inference set "left" on this shared tokenizer.
        kwargs = {
            "padding": True,
            "padding_side": "right",
            "return_tensors": "pt",
            "add_special_tokens": adds_special_tokens(self.processor, prompts[0]),
        }
        if self.family.prompt_style == "prefix":
            # PaliGemma's own convention: the suffix is tokenised as the second sequence of a
            # pair (no merge with the prefix), eos appended, token_type_ids 1 on it alone, and
            # labels = input_ids where token_type_ids == 1 (padding has type 0).
            targets = [e["target"] for e in examples]
            batch = dict(self.processor(text=prompts, images=images, suffix=targets, **kwargs))
            batch["labels"] = torch.as_tensor(batch["labels"], dtype=torch.long)
            real = batch["attention_mask"].bool()
            answer = (batch["labels"] != IGNORE_INDEX).sum(dim=1).tolist()
            total = real.sum(dim=1).tolist()
            lengths = [EncodedLengths(t, t - a, a) for t, a in zip(total, answer, strict=True)]
        else:
            encoded = self.processor(text=prompts, images=images, **kwargs)
            answers = [self._answer_ids(p, e["target"])
                       for p, e in zip(prompts, examples, strict=True)]  # fmt: skip
            batch, lengths = self._append_answers(dict(encoded), answers)
        return batch, lengths

    def _check_answers(self, examples: list[dict]) -> None:
        """An answer holding the processor's image placeholder would be expanded like an image
        the batch does not have: the model then fails on a token/feature count mismatch."""
        placeholders = [
            getattr(self.processor, name, None) for name in ("image_token", "boi_token")
        ]
        for example in examples:
            for token in filter(None, placeholders):
                if token in example["target"]:
                    raise ValueError(
                        f"the answer of {_name(example)} holds the image placeholder {token!r}"
                    )

    def _answer_ids(self, prompt: str, target: str) -> list[int]:
        """Token ids of `target` + end token as they follow `prompt`, never merged with it.

        Tokenised in context (a SentencePiece tokenizer would add a leading "▁" to the target
        alone), unless byte-level BPE merges across the boundary (":" + "{" -> ":{"): then the
        training prompt would differ from the prompt inference feeds, so the answer is
        tokenised after a special token instead, which the tokenizer splits off before BPE.
        Image placeholders are special tokens, so tokenising the text here, unexpanded, gives
        the same tokens after them as the processor's expanded text does.
        """

        def encode(text: str) -> list[int]:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

        answer = self.answer_lead + target + self.end_token
        alone, joint = encode(prompt), encode(prompt + answer)
        if joint[: len(alone)] == alone:
            return joint[len(alone) :]
        return encode(self.end_token + answer)[1:]

    def _append_answers(
        self, encoded: dict[str, Any], answers: list[list[int]]
    ) -> tuple[dict[str, torch.Tensor], list[EncodedLengths]]:
        """Put each row's answer after its prompt, growing every per-token tensor with it.

        Per-token tensors (attention_mask, token_type_ids, mm_token_type_ids, Mllama's
        cross_attention_mask) give the answer the values of the prompt's last token: the
        generation prompt ends in text, and answer tokens are text too, seeing the same images.
        That is what the processor makes of the full text (tests compare the two).
        """
        prompt_ids = encoded.pop("input_ids")
        rows, columns = prompt_ids.shape
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        width = max(p + len(a) for p, a in zip(prompt_lengths, answers, strict=True))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((rows, width), pad, dtype=prompt_ids.dtype)
        labels = torch.full((rows, width), IGNORE_INDEX, dtype=torch.long)
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "labels": labels}
        for key, value in encoded.items():
            # Qwen's pixel_values is (patches, features): never mistake it for a per-token tensor.
            per_token = isinstance(value, torch.Tensor) and value.dim() >= 2
            if not per_token or key.startswith("pixel") or value.shape[:2] != (rows, columns):
                batch[key] = value
                continue
            grown = value.new_zeros((rows, width, *value.shape[2:]))  # padding: all zeros
            for row, (p, answer) in enumerate(zip(prompt_lengths, answers, strict=True)):
                grown[row, :p] = value[row, :p]
                grown[row, p : p + len(answer)] = value[row, p - 1]
            batch[key] = grown
        lengths = []
        for row, (p, answer) in enumerate(zip(prompt_lengths, answers, strict=True)):
            tokens = torch.tensor(answer, dtype=prompt_ids.dtype)
            input_ids[row, :p] = prompt_ids[row, :p]
            input_ids[row, p : p + len(answer)] = tokens
            labels[row, p : p + len(answer)] = tokens
            lengths.append(EncodedLengths(p + len(answer), p, len(answer)))
        return batch, lengths


def end_token(processor: Any, family: Family) -> str:
    """The token trained after the answer, so that the fine-tuned model stops where it should.

    For a chat family, the special token its chat template writes right after an assistant
    message: the turn end the instruction-tuned model already emits there (Gemma 3's
    `<end_of_turn>`, while its tokenizer's eos is `<eos>`, which the template never writes).
    Otherwise (PaliGemma, or a template that ends a turn with plain text, as LLaVA's) the
    tokenizer's eos token. It must be among the model's generation stop ids (Gemma 3's are
    `<eos>` and `<end_of_turn>`): the tests check it for every family, training code can check
    `end_token_id` against the model it trains.
    """
    tokenizer = processor.tokenizer
    if family.prompt_style == "chat":
        turn = {"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}
        try:
            rendered = processor.apply_chat_template(
                [*user_turn("?"), turn], tokenize=False, add_generation_prompt=False
            )
        except Exception:  # a template that rejects an assistant turn: fall back to eos
            rendered = ""
        after = rendered.partition(_SENTINEL)[2]
        first = tokenizer(after, add_special_tokens=False)["input_ids"][:1] if after else []
        added = tokenizer.added_tokens_decoder.get(first[0]) if first else None
        if added is not None and added.special:
            return added.content
    return tokenizer.eos_token


def answer_lead(processor: Any, family: Family) -> str:
    """What the chat template writes between the generation prompt and an assistant message's
    text: " " after SmolVLM's "Assistant:" and LLaVA's "ASSISTANT:", nothing for most."""
    if family.prompt_style != "chat":
        return ""
    turn = {"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}
    try:
        opener = format_prompt(processor, family, "?")
        rendered = processor.apply_chat_template(
            [*user_turn("?"), turn], tokenize=False, add_generation_prompt=False
        )
    except Exception:  # a template that rejects an assistant turn: nothing to learn from it
        return ""
    before = rendered.partition(_SENTINEL)[0]
    return before[len(opener) :] if before.startswith(opener) else ""


def _name(example: dict) -> str:
    return str(example.get("id") or example["image"])

"""`--backend transformers` (the default): batched generation with a model loaded in-process.

Prompts are padded on the left so every answer starts at the same column, which is sliced off
before decoding: the prompt never leaks into a prediction. A prompt that leaves no room in the
model's context gets an error line; a batch that runs the GPU out of memory is split in halves.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING, Any

from vlmkit.infer.backends.base import (
    Backend,
    Failure,
    ModelDescription,
    Prepared,
    failed,
    one_line,
)
from vlmkit.infer.selection import Sample
from vlmkit.infer.settings import GenerationSettings
from vlmkit.prompts import adds_special_tokens, format_prompt, images_argument
from vlmkit.records import PredictionRecord

if TYPE_CHECKING:
    from vlmkit.models.loading import LoadedModel

# torch loads with the model (`load`), not with the registry: `vlmkit infer` checks its
# request before anything heavy is imported.

log = logging.getLogger(__name__)


class TransformersBackend(Backend[tuple[Any, str]]):
    """Answers batches of samples with a loaded model under fixed generation settings (the
    finetune evaluation uses it too, on the model being trained)."""

    name = "transformers"

    def __init__(self, loaded: LoadedModel, settings: GenerationSettings) -> None:
        self.loaded = loaded
        self.settings = settings
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        self.generation_config = _generation_config(loaded.model, self.tokenizer, settings)
        self._stop_ids = _stop_ids(self.generation_config, self.tokenizer)
        if settings.do_sample:
            import torch

            torch.manual_seed(settings.seed)

    @classmethod
    def load(cls, source: Any, request: Any) -> TransformersBackend:
        from vlmkit.models.loading import load_model

        return cls(load_model(source, request.load), request.generation)

    def describe(self) -> ModelDescription:
        return ModelDescription(backend=self.name, **self.loaded.describe())

    def request(self, sample: Sample, image: Any) -> tuple[Any, str]:
        return image, format_prompt(self.processor, self.loaded.family, sample.prompt)

    def generate(self, batch: list[Prepared[tuple[Any, str]]]) -> list[PredictionRecord]:
        import torch

        try:
            inputs = self._encode(batch)
        except Exception as error:
            raise Failure(f"processor failed: {one_line(error)}") from error
        too_long = self._too_long(inputs)
        if too_long:
            kept = [p for i, p in enumerate(batch) if i not in too_long]
            refused = [failed(batch[i].sample, message) for i, message in too_long.items()]
            return refused + self.answer(kept)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.loaded.model.generate(
                    **inputs, generation_config=self.generation_config
                )
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            if len(batch) > 1:
                log.warning("CUDA out of memory at batch size %d: splitting it", len(batch))
            raise Failure("CUDA out of memory even alone") from error
        latency = (time.perf_counter() - started) / len(batch)
        answers = output[:, inputs["input_ids"].shape[1] :].tolist()
        return [
            self._record(prepared.sample, tokens, latency)
            for prepared, tokens in zip(batch, answers, strict=True)
        ]

    def _encode(self, batch: list[Prepared[tuple[Any, str]]]) -> Any:
        import torch

        texts, images = [p.request[1] for p in batch], [p.request[0] for p in batch]
        inputs = encode_prompts(self.processor, self.loaded.family, texts, images)
        return inputs.to(self.loaded.model.device, dtype=getattr(torch, self.loaded.dtype))

    def _too_long(self, inputs: Any) -> dict[int, str]:
        context = self.loaded.context_length
        if context is None:
            return {}
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        limit = context - self.settings.max_new_tokens
        return {
            i: f"prompt of {n} tokens (image included) plus --max-new-tokens "
            f"{self.settings.max_new_tokens} exceeds the model's context of {context}"
            for i, n in enumerate(lengths)
            if n > limit
        }

    def _record(self, sample: Sample, tokens: list[int], latency: float) -> PredictionRecord:
        answer, stopped = tokens, False
        for position, token in enumerate(tokens):
            if token in self._stop_ids:
                answer, stopped = tokens[:position], True
                break
        text = self.tokenizer.decode(answer, skip_special_tokens=True).strip()
        cut = not stopped and len(tokens) >= self.settings.max_new_tokens
        return PredictionRecord(
            sample.id, text, latency_s=round(latency, 4), new_tokens=len(answer),
            truncated=cut or None,
        )  # fmt: skip


def encode_prompts(processor: Any, family: Any, prompts: list[str], images: list[Any]) -> Any:
    """The model's inputs for formatted `prompts` and their images, padded (on the tokenizer's
    side: left, for generation); `vlmkit infer --dry-run` counts them as this makes them."""
    kwargs: dict[str, Any] = {
        "padding": True,
        "return_tensors": "pt",
        "add_special_tokens": adds_special_tokens(processor, prompts[0]),
    }
    inputs = processor(text=prompts, images=images_argument(family, images), **kwargs)
    inputs.pop("labels", None)  # PaliGemma's processor adds them for training
    return inputs


def _generation_config(model: Any, tokenizer: Any, settings: GenerationSettings) -> Any:
    """The checkpoint's generation config with vlmkit's settings on top (greedy unless asked).

    Checkpoints often ship sampling defaults (temperature 0.6, top_p 0.9...): greedy runs clear
    them rather than inherit them, so a score never depends on a hidden sampler.
    """
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = settings.max_new_tokens
    config.max_length = None
    config.num_beams = settings.num_beams
    config.do_sample = settings.do_sample
    if settings.do_sample:
        config.temperature, config.top_p, config.top_k = settings.temperature, settings.top_p, None
    else:
        config.temperature = config.top_p = config.top_k = None
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    return config


def _stop_ids(config: Any, tokenizer: Any) -> set[int]:
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    ids = set(eos) if isinstance(eos, list) else {eos}
    ids.add(config.pad_token_id)
    return {i for i in ids if i is not None}

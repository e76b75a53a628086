"""Batched generation: samples in, prediction records out; one bad sample never stops a batch.

Prompts are padded on the left so every answer starts at the same column, which is sliced off
before decoding: the prompt never leaks into a prediction. A sample whose image cannot be read,
whose processor call fails or whose prompt leaves no room in the model's context gets an error
record instead; a batch that runs the GPU out of memory is split in halves and retried.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from vlmkit.images import UnreadableImage, open_rgb
from vlmkit.infer.selection import Sample
from vlmkit.infer.settings import GenerationSettings
from vlmkit.models.loading import LoadedModel
from vlmkit.prompts import adds_special_tokens, format_prompt, images_argument
from vlmkit.records import PredictionRecord

log = logging.getLogger(__name__)


@dataclass
class _Prepared:
    sample: Sample
    image: Any
    text: str


class Predictor:
    """Answers batches of samples with a loaded model under fixed generation settings."""

    def __init__(self, loaded: LoadedModel, settings: GenerationSettings) -> None:
        self.loaded = loaded
        self.settings = settings
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        self.generation_config = _generation_config(loaded.model, self.tokenizer, settings)
        self._stop_ids = _stop_ids(self.generation_config, self.tokenizer)
        if settings.do_sample:
            torch.manual_seed(settings.seed)

    def predict(self, samples: list[Sample]) -> list[PredictionRecord]:
        """One record per sample, in order (an `error` record where it failed)."""
        results: dict[str, PredictionRecord] = {}
        ready: list[_Prepared] = []
        for sample in samples:
            prepared = self._prepare(sample)
            if isinstance(prepared, PredictionRecord):
                results[sample.id] = prepared
            else:
                ready.append(prepared)
        for record in self._generate(ready):
            results[record.id] = record
        return [results[sample.id] for sample in samples]

    # --- preparation ------------------------------------------------------------------------

    def _prepare(self, sample: Sample) -> _Prepared | PredictionRecord:
        try:
            image = open_rgb(sample.image)
        except UnreadableImage as error:
            return _failed(sample, str(error))
        try:
            text = format_prompt(self.processor, self.loaded.family, sample.prompt)
        except Exception as error:  # a chat template may raise on content it rejects
            return _failed(sample, f"cannot format the prompt: {_one_line(error)}")
        return _Prepared(sample, image, text)

    def _encode(self, batch: list[_Prepared]) -> Any:
        texts = [p.text for p in batch]
        kwargs: dict[str, Any] = {
            "padding": True,
            "return_tensors": "pt",
            "add_special_tokens": adds_special_tokens(self.processor, texts[0]),
        }
        images = images_argument(self.loaded.family, [p.image for p in batch])
        inputs = self.processor(text=texts, images=images, **kwargs)
        inputs.pop("labels", None)  # PaliGemma's processor adds them for training
        return inputs.to(self.loaded.model.device, dtype=getattr(torch, self.loaded.dtype))

    # --- generation -------------------------------------------------------------------------

    def _generate(self, batch: list[_Prepared]) -> list[PredictionRecord]:
        if not batch:
            return []
        try:
            inputs = self._encode(batch)
        except Exception as error:
            if len(batch) == 1:
                return [_failed(batch[0].sample, f"processor failed: {_one_line(error)}")]
            return self._split(batch)  # find the sample the processor rejects
        too_long = self._too_long(inputs)
        if too_long:
            kept = [p for i, p in enumerate(batch) if i not in too_long]
            failed = [_failed(batch[i].sample, message) for i, message in too_long.items()]
            return failed + self._generate(kept)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.loaded.model.generate(
                    **inputs, generation_config=self.generation_config
                )
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(batch) == 1:
                return [_failed(batch[0].sample, "CUDA out of memory even alone")]
            log.warning("CUDA out of memory at batch size %d: splitting it", len(batch))
            return self._split(batch)
        except Exception as error:
            if len(batch) == 1:
                return [_failed(batch[0].sample, f"generation failed: {_one_line(error)}")]
            return self._split(batch)
        latency = (time.perf_counter() - started) / len(batch)
        answers = output[:, inputs["input_ids"].shape[1] :].tolist()
        return [
            self._record(prepared.sample, tokens, latency)
            for prepared, tokens in zip(batch, answers, strict=True)
        ]

    def _split(self, batch: list[_Prepared]) -> list[PredictionRecord]:
        half = len(batch) // 2
        return self._generate(batch[:half]) + self._generate(batch[half:])

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
        answer = tokens
        for position, token in enumerate(tokens):
            if token in self._stop_ids:
                answer = tokens[:position]
                break
        text = self.tokenizer.decode(answer, skip_special_tokens=True).strip()
        return PredictionRecord(
            sample.id, text, latency_s=round(latency, 4), new_tokens=len(answer)
        )


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


def _failed(sample: Sample, message: str) -> PredictionRecord:
    return PredictionRecord(sample.id, "", error=message)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__

"""Load a processor and a vision-language model (+4-bit, +LoRA) under vlmkit's device/dtype policy.

Safe by default: weights only from safetensors files (pickled `.bin` weights can run code when
loaded) and no code from the checkpoint unless `trust_remote_code` is asked for.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from vlmkit.errors import InputError, UsageError
from vlmkit.models.families import Family
from vlmkit.models.four_bit import four_bit_config, packed_kernel_misfits
from vlmkit.models.options import LoadOptions
from vlmkit.models.resolution import apply_image_settings
from vlmkit.models.sources import ModelSource, model_family
from vlmkit.prompts import PromptFormat, prompt_format

log = logging.getLogger(__name__)

PROCESSOR_FILES = "the processor's files (processor_config.json, tokenizer files)"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to generate, with what is needed to prompt it and to record how it was made."""

    model: Any
    processor: Any
    family: Family
    prompt_format: PromptFormat
    source: ModelSource
    device: str
    dtype: str
    context_length: int | None
    """Most tokens (prompt + answer) the language model takes, when its config says."""
    image_preprocessing: dict[str, Any] | None = None
    """How images are resized and split (`vlmkit.models.resolution`): asked and in effect."""

    def describe(self) -> dict[str, Any]:
        """What a run sidecar records about the model."""
        return {
            "model": self.source.model,
            "adapter": str(self.source.adapter) if self.source.adapter else None,
            "family": self.family.name,
            "model_type": self.family.model_type,
            "prompt_format": self.prompt_format.to_json(),
            "device": self.device,
            "dtype": self.dtype,
            "context_length": self.context_length,
            "image_preprocessing": self.image_preprocessing,
        }


def load_model(source: ModelSource, options: LoadOptions, *, device_map: Any = None) -> LoadedModel:
    """Load `source` (and its adapter) for generation.

    `device_map` overrides the default placement (`auto` on CUDA): a data-parallel training
    process puts the whole model on its own GPU.
    """
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as transformers_logging

    # The command draws its own progress bar; transformers' loading bars would interleave.
    transformers_logging.disable_progress_bar()
    device = choose_device(options.device)
    dtype = choose_dtype(options.dtype, device)
    parts = load_parts(source, options)
    family, processor = parts.family, parts.processor
    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, **_code_policy(options)}
    if options.load_in_4bit:
        kwargs["quantization_config"] = four_bit_config(dtype)
    if device_map is not None:
        kwargs["device_map"] = device_map
    elif device == "cuda":
        kwargs["device_map"] = "auto"  # spreads a model too big for one GPU over the visible ones
    model = _hub_error_as_input(
        source,
        lambda: AutoModelForImageTextToText.from_pretrained(source.model, **kwargs),
        needs="safetensors weights (pickled .bin weights are never loaded)",
    )
    if options.load_in_4bit and device == "cpu":
        packed_kernel_misfits(model)
    if source.adapter is not None:
        model = _apply_adapter(model, source)
    model.eval()
    return LoadedModel(
        model=model,
        processor=processor,
        family=family,
        prompt_format=parts.prompt_format,
        source=source,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        context_length=parts.context_length,
        image_preprocessing=parts.image_preprocessing,
    )


@dataclass(frozen=True)
class ModelParts:
    """Everything of a model but its weights: what a dry run reads, and what loading checks
    before the weights (a folder without a chat template fails in milliseconds)."""

    config: Any
    family: Family
    processor: Any
    prompt_format: PromptFormat
    image_preprocessing: dict[str, Any] | None
    context_length: int | None


def load_parts(source: ModelSource, options: LoadOptions) -> ModelParts:
    """The config, the processor (with the image settings applied) and the prompt format."""
    from transformers import AutoConfig

    config = _hub_error_as_input(
        source,
        lambda: AutoConfig.from_pretrained(source.model, **_code_policy(options)),
        needs="a config.json",
        folder_errors=True,
    )
    family = model_family(config.to_dict(), source.model)
    processor = load_processor(source, family, options)
    formats = prompt_format(processor, family, source.model)  # no template: fail before weights
    preprocessing = apply_image_settings(processor, family, options.image, config.to_dict())
    return ModelParts(config, family, processor, formats, preprocessing, _context_length(config))


def empty_model(parts: ModelParts, dtype: torch.dtype, options: LoadOptions) -> Any:
    """The model built from its config on the meta device: every parameter's shape and dtype,
    no memory taken and no weight read (what a dry run counts and traces)."""
    from transformers import AutoModelForImageTextToText

    try:
        with torch.device("meta"):
            return AutoModelForImageTextToText.from_config(
                parts.config, dtype=dtype, **_code_policy(options)
            )
    except ValueError as error:
        if "Unrecognized configuration class" in str(error):
            raise _not_a_vision_language_model(parts.config.name_or_path, error) from None
        raise


def planned_device(requested: str) -> str:
    """The device a run asked for will use; `cuda` is taken as asked even without a GPU here
    (a dry run on a laptop plans a GPU run)."""
    return requested if requested == "cuda" else choose_device(requested)


def choose_device(requested: str) -> str:
    """`auto` becomes `cuda` when a GPU is visible, else `cpu`; `cuda` without a GPU is an error."""
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise UsageError("--device cuda: no CUDA GPU is visible", hint="use --device cpu (or auto)")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


def unplannable_here(device: str) -> list[str]:
    """What a plan for `device` made on this machine must say: a CUDA run planned without a
    GPU in sight is estimated, not checked against one."""
    if device == "cuda" and not torch.cuda.is_available():
        return ["no CUDA GPU is visible here: the estimate is for the run on one"]
    return []


def planned_dtype(requested: str, device: str) -> torch.dtype:
    """The dtype a run on `device` will use; a planned CUDA run without a GPU here is taken to
    have bf16 (every GPU since Ampere)."""
    if device == "cuda" and requested == "auto" and not torch.cuda.is_available():
        return torch.bfloat16
    return choose_dtype(requested, device)


def choose_dtype(requested: str, device: str) -> torch.dtype:
    """The weights' dtype: bf16 (fp16 on GPUs without bf16) on CUDA, fp32 on CPU, unless asked."""
    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_processor(source: ModelSource, family: Family, options: LoadOptions) -> Any:
    """The model's processor, checked to be one (AutoProcessor falls back to a bare tokenizer)."""
    from transformers import AutoProcessor, ProcessorMixin

    if family.needs_torchvision and not torchvision_available():
        # The hub processor's video part needs torchvision; vlmkit only ever sends images.
        from vlmkit.models.qwen_image_only import load_qwen_image_only_processor

        processor = _hub_error_as_input(
            source,
            lambda: load_qwen_image_only_processor(source.model, **_code_policy(options)),
            needs=PROCESSOR_FILES,
            folder_errors=True,
        )
    else:
        processor = _hub_error_as_input(
            source,
            lambda: AutoProcessor.from_pretrained(source.model, **_code_policy(options)),
            needs=PROCESSOR_FILES,
            folder_errors=True,
        )
    if not isinstance(processor, ProcessorMixin):
        raise InputError(
            f"--model {source.model} has no image processor (got a {type(processor).__name__})",
            hint=f"the folder needs {PROCESSOR_FILES} beside the weights",
        )
    tokenizer = processor.tokenizer
    # Batched generation appends new tokens at the right: prompts must be padded on the left.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def torchvision_available() -> bool:
    """Whether torchvision imports (a wheel built for another torch is installed but fails)."""
    try:
        importlib.import_module("torchvision")
    except Exception:  # ImportError, or a RuntimeError from a mismatched build's operators
        return False
    return True


def _apply_adapter(model: Any, source: ModelSource) -> Any:
    import warnings

    from peft import PeftModel

    try:
        with warnings.catch_warnings():
            # peft 0.21 calls a transformers 5 property it renamed; nothing the user can act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated")
            return PeftModel.from_pretrained(model, str(source.adapter), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            f"adapter {source.adapter} does not fit --model {source.model}: {first}",
            hint="pass the base model the adapter was trained on as --model",
        ) from None


def _code_policy(options: LoadOptions) -> dict[str, Any]:
    return {"trust_remote_code": options.trust_remote_code}


def _hub_error_as_input(
    source: ModelSource, load: Any, *, needs: str, folder_errors: bool = False
) -> Any:
    """Run `load`; a not-found or offline error becomes one line saying what is missing, and
    with `folder_errors` any other ValueError of a local folder's files (a tokenizer that
    cannot be built)."""
    try:
        return load()
    except OSError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        if source.local:
            hint = f"the folder must hold {needs}, as save_pretrained writes them"
        else:
            hint = "not in the Hugging Face cache and the hub is unreachable: download it first"
        raise InputError(f"--model {source.model}: {message}", hint=hint) from None
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise InputError(
                f"--model {source.model} needs code from its repository to load",
                hint="read that code, then pass --trust-remote-code if you trust it",
            ) from None
        if "Unrecognized configuration class" in str(error):
            raise _not_a_vision_language_model(source.model, error) from None
        if folder_errors and source.local:
            raise InputError(
                f"--model {source.model}: {_first_line(error)}",
                hint=f"the folder must hold {needs}, as save_pretrained writes them",
            ) from None
        raise


def _not_a_vision_language_model(model: str, error: Exception) -> InputError:
    return InputError(
        f"--model {model}: transformers has no image-text-to-text model for its config "
        f"({_first_line(error).split(' for this kind')[0]})",
        hint="vlmkit trains and runs vision-language models: check config.json's model_type",
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _context_length(config: Any) -> int | None:
    text = getattr(config, "text_config", None) or config
    value = getattr(text, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None

"""Qwen2-VL / Qwen2.5-VL processors for images only, so that they work without torchvision.

The hub processors of both families own a video processor, and transformers cannot build one
without torchvision (not even with `video_processor=None`), so `AutoProcessor.from_pretrained`
fails for them on a torch install without torchvision. Their image processor does not need it:
transformers 5 falls back to the PIL backend (`Qwen2VLImageProcessorPil`). The classes here are
the hub processors minus the video component: the same placeholder expansion, chat template
and outputs (`input_ids`, `attention_mask`, `pixel_values`, `image_grid_thw`, `mm_token_type_ids`)
for images; videos are refused.

Choice: these classes are *not* registered with `AutoProcessor`, and a folder they save is laid
out like a hub checkpoint (tokenizer files, `preprocessor_config.json` and `chat_template.jinja`,
with `processor_class` naming the hub class). Registering would mean overriding transformers'
own mapping for `Qwen2VLConfig` process-wide, and folders naming a vlmkit class would not load
anywhere else; a hub-shaped folder loads with plain `AutoProcessor` wherever torchvision is
installed, and with `load_qwen_image_only_processor` everywhere, tiny test models and real
checkpoints alike. Without torchvision, `AutoProcessor` raises on such a folder rather than
returning a bare tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    ImageProcessingMixin,
    ProcessorMixin,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
)


def _init_image_only(
    processor: Any, image_processor: Any, tokenizer: Any, chat_template: Any
) -> None:
    # The hub __init__ sets the placeholder tokens and then hands a video processor to
    # ProcessorMixin; here the tokens are set the same way and the mixin gets two attributes.
    processor.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
    processor.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
    processor.image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    processor.video_token_id = tokenizer.convert_tokens_to_ids(processor.video_token)
    ProcessorMixin.__init__(processor, image_processor, tokenizer, chat_template=chat_template)


def _save_hub_layout(
    processor: Any, save_directory: str | os.PathLike, hub_class: str, push_to_hub: bool
) -> list[str]:
    """Save as the hub checkpoints are laid out, naming `hub_class` as the processor."""
    if push_to_hub:
        raise NotImplementedError("save the folder, then upload it with huggingface_hub")
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    # As ProcessorMixin.save_pretrained does, but with the hub class rather than this one.
    processor.tokenizer._set_processor_class(hub_class)
    processor.tokenizer.save_pretrained(folder)
    files = processor.image_processor.save_pretrained(folder)
    # The image processor's own file names the processor, as on the hub, so that AutoProcessor
    # finds the hub class (it reads processor_class from preprocessor_config.json).
    config_file = Path(files[0])
    config = json.loads(config_file.read_text("utf-8"))
    config["processor_class"] = hub_class
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")
    if isinstance(processor.chat_template, str):
        (folder / "chat_template.jinja").write_text(processor.chat_template, "utf-8")
    return [str(config_file)]


class _ImageOnly:
    """What both image-only processors change in their hub class (named by `hub_class`)."""

    hub_class: str

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _init_image_only(self, image_processor, tokenizer, chat_template)

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        if videos is not None:
            raise ValueError(f"{type(self).__name__} handles images only, not videos")
        return super().__call__(images=images, text=text, **kwargs)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        return _save_hub_layout(self, save_directory, self.hub_class, push_to_hub)


class Qwen2VLImageOnlyProcessor(_ImageOnly, Qwen2VLProcessor):
    """Qwen2-VL's processor without its video processor: images and text only."""

    hub_class = "Qwen2VLProcessor"


class Qwen2_5_VLImageOnlyProcessor(_ImageOnly, Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without its video processor: images and text only."""

    hub_class = "Qwen2_5_VLProcessor"


IMAGE_ONLY_PROCESSORS: dict[str, type[ProcessorMixin]] = {
    "qwen2_vl": Qwen2VLImageOnlyProcessor,
    "Qwen2VLProcessor": Qwen2VLImageOnlyProcessor,
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
    "Qwen2_5_VLProcessor": Qwen2_5_VLImageOnlyProcessor,
}
"""The image-only processor class for each `config.model_type` and hub processor class."""

_HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "subfolder")


def _kind(folder_or_hub_id: str | os.PathLike, **hub_kwargs: Any) -> str:
    """The checkpoint's model type, or for a processor saved on its own (no config.json, as
    beside an adapter) the processor class its preprocessor_config.json names."""
    try:
        return AutoConfig.from_pretrained(folder_or_hub_id, **hub_kwargs).model_type
    except (OSError, ValueError):
        config, _ = ImageProcessingMixin.get_image_processor_dict(folder_or_hub_id, **hub_kwargs)
        return config.get("processor_class", "unknown")


def load_qwen_image_only_processor(folder_or_hub_id: str | os.PathLike, **from_pretrained_kwargs):
    """The image-only processor of a Qwen2-VL or Qwen2.5-VL checkpoint (a folder or a hub id).

    Loads the checkpoint's tokenizer, image processor and chat template as `AutoProcessor`
    would; `from_pretrained_kwargs` go to `from_pretrained` (`revision`, `local_files_only`, ...).
    """
    hub_kwargs = {k: v for k, v in from_pretrained_kwargs.items() if k in _HUB_KWARGS}
    kind = _kind(folder_or_hub_id, **hub_kwargs)
    try:
        cls = IMAGE_ONLY_PROCESSORS[kind]
    except KeyError:
        raise ValueError(f"{folder_or_hub_id} is {kind!r}, not Qwen2-VL or Qwen2.5-VL") from None
    return cls.from_pretrained(folder_or_hub_id, **from_pretrained_kwargs)

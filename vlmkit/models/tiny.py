"""Tiny random-weight models of every family, built offline and saved like hub checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForImageTextToText,
    CLIPImageProcessorPil,
    Gemma3Config,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    GenerationConfig,
    Idefics3Config,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaConfig,
    LlavaProcessor,
    MllamaConfig,
    MllamaImageProcessorPil,
    MllamaProcessor,
    PaliGemmaConfig,
    PaliGemmaProcessor,
    PretrainedConfig,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2VLConfig,
    Qwen2VLImageProcessorPil,
    SiglipImageProcessorPil,
)
from transformers.models.paligemma.processing_paligemma import EXTRA_TOKENS
from transformers.utils import logging as hf_logging

from vlmkit.models import tiny_tokenizers as tt
from vlmkit.models.families import family_named
from vlmkit.models.qwen_image_only import Qwen2_5_VLImageOnlyProcessor, Qwen2VLImageOnlyProcessor

# One size for every family: big enough to exercise every code path (grouped-query attention,
# two text layers), small enough to build in well under a second and stay near 1 MB on disk.
# Every linear layer is a multiple of 64 wide on its input side and of 32 on its output side:
# bitsandbytes' packed 4-bit kernel for AVX512-BF16 CPUs needs whole 64-element quantisation
# blocks along each input row and output rows in groups of 32 (a 32-wide model fails there).
HIDDEN = 64
FFN = 128
HEADS = 2
KV_HEADS = 1
HEAD_DIM = HIDDEN // HEADS
TEXT_LAYERS = 2
VOCAB = 640
"""Size of the vocabulary each tokenizer learns (byte-fallback ones add 256 byte tokens)."""
INIT_STD = HIDDEN**-0.5
"""Standard deviation of every initial weight: 1/sqrt(width), not the configs' 0.02.

With 0.02 a 64-wide random model is one LoRA can barely teach, for two measured reasons.
Each layer adds only a small fraction of its input's size to the residual stream, so the hidden
state at the answer position is mostly the current token's embedding and little of the prompt
or the image (Gemma, which scales embeddings up by sqrt(width), most of all): the four prompts
of the learning check gave PaliGemma final hidden states 1.6% apart (13.5% at 1/sqrt(width)).
And the output layer is frozen under LoRA (tied to the embeddings in PaliGemma and Gemma 3)
while the final norm fixes the hidden state's size, so the logits stay within about +-1.5 and
the loss cannot fall far below ln(vocabulary): it sat at 6.4-6.6 after 60 steps (7.1 in the
earlier 32-wide models), and three families did not learn the four answers. At 1/sqrt(width)
each layer keeps its input's size, as a trained network's do, and every family's loss falls
from 4-6 to under 1 in 60 LoRA steps (tests/test_learning.py).
"""

_TEXT = {
    "hidden_size": HIDDEN,
    "intermediate_size": FFN,
    "num_hidden_layers": TEXT_LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "max_position_embeddings": 2048,
}
_VISION = {
    "hidden_size": HIDDEN,
    "intermediate_size": FFN,
    "num_hidden_layers": 1,
    "num_attention_heads": HEADS,
}


def chat_template(name: str) -> str:
    """A hub chat template shipped in `vlmkit/models/chat_templates/` (see its README)."""
    folder = resources.files("vlmkit.models").joinpath("chat_templates")
    return folder.joinpath(f"{name}.jinja").read_text(encoding="utf-8")


@dataclass(frozen=True)
class _Parts:
    """What a family builder returns: the processor and the model config made for it."""

    processor: ProcessorMixin
    config: PretrainedConfig
    ids: dict[str, Any]
    """`bos_token_id`, `eos_token_id` (an id, or a list with the turn end first) and
    `pad_token_id`, the same in the text config and the generation config."""


def _ids(tokenizer: Any, *also_eos: str) -> dict[str, Any]:
    """The tokenizer's bos/eos/pad ids; `also_eos` tokens end generation too (turn ends)."""
    eos = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(list(also_eos))]
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos if also_eos else eos[0],
        "pad_token_id": tokenizer.pad_token_id,
    }


def _paligemma(text_model_type: str) -> _Parts:
    # PaliGemma's tokenizer already holds <image> and the 1152 <locNNNN>/<segNNN> tokens on the
    # hub; adding them here keeps the vocabulary the same before and after the processor is made.
    tokenizer = tt.gemma_tokenizer(VOCAB, trailing_special=["<image>"], plain=EXTRA_TOKENS)
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32}, image_seq_length=16)
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    ids = _ids(tokenizer)
    text = {**_TEXT, "model_type": text_model_type, "head_dim": HEAD_DIM, **ids}
    if text_model_type == "gemma2":
        text |= {"query_pre_attn_scalar": HEAD_DIM, "sliding_window": 512}
    config = PaliGemmaConfig(
        vision_config={
            **_VISION,
            "model_type": "siglip_vision_model",
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={**text, "vocab_size": len(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vocab_size=len(tokenizer),
        projection_dim=HIDDEN,
        hidden_size=HIDDEN,
        **ids,
    )
    return _Parts(processor, config, ids)


def _idefics3() -> _Parts:
    # SmolVLM v1's layout: a GPT-2 byte-level tokenizer with ChatML-ish specials, an Idefics3
    # processor that splits images into tiles plus a global view, and SmolVLM's chat template.
    grid = [f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]
    tokenizer = tt.gpt2_tokenizer(
        VOCAB,
        special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        # The tile markers are special too, so that decoding with skip_special_tokens drops them.
        trailing_special=[
            "<fake_token_around_image>",
            "<image>",
            "<end_of_utterance>",
            "<global-img>",
            *grid,
        ],
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True
    )
    # (32 px / 8 px patches)^2 = 16 patches, pixel-shuffled by scale_factor 2 into 4 tokens a tile.
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=4,
        chat_template=chat_template("smolvlm"),
    )
    ids = _ids(tokenizer)
    config = Idefics3Config(
        text_config={**_TEXT, "model_type": "llama", "vocab_size": len(tokenizer), **ids},
        vision_config={**_VISION, "image_size": 32, "patch_size": 8},
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    return _Parts(processor, config, ids)


def _mllama() -> _Parts:
    # Llama 3.2 Vision: <|image|> is the id right after the text vocabulary (the text model's
    # embedding table has 8 extra rows for it), and turns end with <|eot_id|>.
    tokenizer = tt.llama3_tokenizer(
        VOCAB,
        special=(
            "<|begin_of_text|> <|end_of_text|> <|finetune_right_pad_id|> <|start_header_id|> "
            "<|end_header_id|> <|eom_id|> <|eot_id|> <|python_tag|>"
        ).split(),
        trailing_special=["<|image|>"],
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
    )
    image_token_id = tokenizer.convert_tokens_to_ids("<|image|>")
    ids = _ids(tokenizer, "<|end_of_text|>", "<|eom_id|>")
    image_processor = MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=4)
    processor = MllamaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template("llama3_2_vision"),
    )
    config = MllamaConfig(
        text_config={
            **_TEXT,
            "vocab_size": image_token_id,
            "cross_attention_layers": [1],
            **ids,
        },
        vision_config={
            **_VISION,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "image_size": 32,
            "patch_size": 8,
            "intermediate_layers_indices": [0],
            # The final and the one intermediate layer's states, concatenated.
            "vision_output_dim": 2 * HIDDEN,
            "max_num_tiles": 4,
        },
        image_token_index=image_token_id,
    )
    return _Parts(processor, config, ids)


_QWEN_SPECIALS = (
    "<|endoftext|> <|im_start|> <|im_end|> <|object_ref_start|> <|object_ref_end|> <|box_start|> "
    "<|box_end|> <|quad_start|> <|quad_end|> <|vision_start|> <|vision_end|> <|vision_pad|> "
    "<|image_pad|> <|video_pad|>"
).split()


def _qwen(config_class: type[PretrainedConfig], processor_class: type[ProcessorMixin]) -> _Parts:
    tokenizer = tt.qwen2_tokenizer(
        VOCAB,
        special=_QWEN_SPECIALS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    # The hub's 14 px patches merged 2x2: an image is resized to a multiple of 28 px with
    # 56x56 to 112x112 pixels, so it becomes 4 to 16 tokens whatever its shape.
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template("qwen2_vl"),
    )
    vision = {
        "depth": 1,
        "num_heads": HEADS,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    if config_class is Qwen2_5_VLConfig:
        vision |= {
            "hidden_size": HIDDEN,
            "intermediate_size": FFN,
            "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": [0],
            "window_size": 56,
        }
    else:
        vision |= {"embed_dim": HIDDEN, "hidden_size": HIDDEN, "mlp_ratio": 2}
    # As on the hub: no BOS in the tokenizer, <|endoftext|> as the configs' BOS and PAD.
    ids = _ids(tokenizer, "<|endoftext|>") | {"bos_token_id": tokenizer.pad_token_id}
    # Multimodal RoPE splits each head's rotary half (8 pairs) between time, height and width.
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [4, 6, 6]}
    token = tokenizer.convert_tokens_to_ids
    config = config_class(
        text_config={**_TEXT, "vocab_size": len(tokenizer), "rope_parameters": rope, **ids},
        vision_config=vision,
        image_token_id=token("<|image_pad|>"),
        video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"),
        vision_end_token_id=token("<|vision_end|>"),
    )
    return _Parts(processor, config, ids)


def _gemma3() -> _Parts:
    tokenizer = tt.gemma_tokenizer(
        VOCAB,
        special=["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>"],
        trailing_special=["<image_soft_token>"],
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    # 32 px / 4 px patches = 8x8 patches, average-pooled 2x2 into 16 soft tokens an image.
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template("gemma3"),
        image_seq_length=16,
    )
    ids = _ids(tokenizer, "<end_of_turn>")
    config = Gemma3Config(
        text_config={
            **_TEXT,
            "vocab_size": len(tokenizer),
            "head_dim": HEAD_DIM,
            "query_pre_attn_scalar": HEAD_DIM,
            "sliding_window": 512,
            "layer_types": ["sliding_attention", "full_attention"],
            **ids,
        },
        vision_config={
            **_VISION,
            "model_type": "siglip_vision_model",
            "image_size": 32,
            "patch_size": 4,
        },
        mm_tokens_per_image=16,
        boi_token_index=tokenizer.convert_tokens_to_ids(tokenizer.boi_token),
        eoi_token_index=tokenizer.convert_tokens_to_ids(tokenizer.eoi_token),
        image_token_index=tokenizer.convert_tokens_to_ids(tokenizer.image_token),
    )
    return _Parts(processor, config, ids)


def _llava() -> _Parts:
    # LLaVA 1.5 (llava-hf layout): a SentencePiece-style Llama tokenizer with <image> and <pad>
    # appended, CLIP features of the second-to-last layer without the CLS token.
    tokenizer = tt.llama_tokenizer(VOCAB, trailing_special=["<image>", "<pad>"], pad_token="<pad>")
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("llava"),
    )
    ids = _ids(tokenizer)
    config = LlavaConfig(
        vision_config={
            **_VISION,
            "model_type": "clip_vision_model",
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": HIDDEN,
        },
        text_config={**_TEXT, "model_type": "llama", "vocab_size": len(tokenizer), **ids},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=16,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        pad_token_id=tokenizer.pad_token_id,
    )
    return _Parts(processor, config, ids)


_BUILDERS: dict[str, Callable[[], _Parts]] = {
    "paligemma": lambda: _paligemma("gemma"),
    "paligemma2": lambda: _paligemma("gemma2"),
    "idefics3": _idefics3,
    "mllama": _mllama,
    "qwen2-vl": lambda: _qwen(Qwen2VLConfig, Qwen2VLImageOnlyProcessor),
    "qwen2.5-vl": lambda: _qwen(Qwen2_5_VLConfig, Qwen2_5_VLImageOnlyProcessor),
    "gemma3": _gemma3,
    "llava": _llava,
}


def _learnable_init(config: PretrainedConfig) -> None:
    """Initialise the whole model, every tower, with `INIT_STD` (see there for why)."""
    for part in (config, *(getattr(config, name) for name in config.sub_configs)):
        part.initializer_range = INIT_STD


def build_tiny_model(family: str, out: Path, *, seed: int = 0) -> None:
    """Build a tiny random model of `family` with its processor, and save both into `out`.

    The folder holds what a hub checkpoint holds (config, safetensors weights, tokenizer,
    processor configs, chat template, generation config), so it loads through
    `AutoProcessor` / `AutoModelForImageTextToText` (Qwen without torchvision: through
    `load_qwen_image_only_processor`). The same seed gives the same weights.
    """
    name = family_named(family).name
    parts = _BUILDERS[name]()
    # A private RNG stream: building a model must not move the caller's global torch seed.
    _learnable_init(parts.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(parts.config, dtype=torch.float32)
    model.generation_config = GenerationConfig(**parts.ids, do_sample=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _quiet_progress():
        model.save_pretrained(out)
    parts.processor.save_pretrained(out)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    # save_pretrained draws a "Writing model shards" bar for the one tiny shard; progress
    # display is the CLI's business, so it is switched off here and restored after.
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()

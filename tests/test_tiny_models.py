"""Tiny models of every family build offline, reload like hub checkpoints and generate on CPU."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)
from transformers.utils import is_torchvision_available

from vlmkit.errors import UsageError
from vlmkit.models.families import FAMILIES, Family
from vlmkit.models.qwen_image_only import load_qwen_image_only_processor
from vlmkit.models.tiny import build_tiny_model, chat_template

pytestmark = pytest.mark.slow

# The chat template of each chat family's hub checkpoints (vlmkit/models/chat_templates).
TEMPLATES = {
    "idefics3": "smolvlm",
    "mllama": "llama3_2_vision",
    "qwen2-vl": "qwen2_vl",
    "qwen2.5-vl": "qwen2_vl",
    "gemma3": "gemma3",
    "llava": "llava",
}
# Seen in training (accents, €, dashes) and never seen (emoji, kanji outside the corpus): a
# byte-fallback tokenizer must spell the latter with byte tokens, not <unk>.
ROUND_TRIP = ["Total: 12,50 € — café", "Beleg ☕ 🧾 領収書\tØre"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Two busy cores: more threads than that slow tiny models down 10-50x.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build each family once per module; returns folder paths by family name."""
    folders: dict[str, Path] = {}

    def folder(name: str) -> Path:
        if name not in folders:
            folders[name] = tmp_path_factory.mktemp(name) / "model"
            build_tiny_model(name, folders[name])
        return folders[name]

    return folder


def load_processor(family: Family, folder: Path):
    if family.needs_torchvision and not is_torchvision_available():
        return load_qwen_image_only_processor(folder)
    return AutoProcessor.from_pretrained(folder)


def prompt(processor, family: Family, question: str) -> str:
    """The text vlmkit gives the processor beside one image (see vlmkit.prompts)."""
    if family.prompt_style == "prefix":
        return processor.image_token + question
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)


def model_inputs(processor, family: Family, questions: list[str], images: list[Image.Image]):
    texts = [prompt(processor, family, question) for question in questions]
    # Chat templates already hold the BOS token; PaliGemma's processor places its own.
    kwargs = {} if family.prompt_style == "prefix" else {"add_special_tokens": False}
    if family.nested_images:
        images = [[image] for image in images]
    return processor(text=texts, images=images, padding=True, return_tensors="pt", **kwargs)


def receipt_image(width: int, height: int, shade: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (shade, 255 - shade, 128))
    image.paste((0, 0, 0), (2, 2, width // 2, height // 3))
    return image


@pytest.mark.parametrize("name", FAMILIES)
def test_builds_reloads_and_generates(built, name):
    family = FAMILIES[name]
    folder = built(name)
    processor = load_processor(family, folder)
    # AutoProcessor quietly falls back to a bare tokenizer when it misses the processor class.
    assert isinstance(processor, ProcessorMixin)
    assert not isinstance(processor, PreTrainedTokenizerBase)
    if name in TEMPLATES:
        assert processor.chat_template == chat_template(TEMPLATES[name])
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert model.config.model_type == family.model_type
    if family.text_model_type is not None:
        assert model.config.text_config.model_type == family.text_model_type
    assert model.dtype == torch.float32

    inputs = model_inputs(
        processor, family, ["Extract the receipt as JSON."], [receipt_image(48, 64, 40)]
    )
    # The processor expanded the prompt's image placeholder into the model's image tokens.
    assert (inputs["input_ids"] == model.config.image_token_id).any()
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert len(new_tokens) == 5
    text = processor.decode(new_tokens, skip_special_tokens=True)
    assert not [token for token in processor.tokenizer.all_special_tokens if token in text]


@pytest.mark.parametrize("name", FAMILIES)
def test_saved_like_a_hub_checkpoint(built, name):
    folder = built(name)
    files = {path.name for path in folder.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert sum(path.stat().st_size for path in folder.iterdir()) < 2_000_000
    assert ("chat_template.jinja" in files) == (name in TEMPLATES)


@pytest.mark.parametrize("name", FAMILIES)
def test_special_token_ids_agree(built, name):
    folder = built(name)
    tokenizer = load_processor(FAMILIES[name], folder).tokenizer
    model = AutoModelForImageTextToText.from_pretrained(folder)
    generation, text = model.generation_config, model.config.get_text_config()
    assert generation.do_sample is False
    assert tokenizer.pad_token_id is not None
    assert generation.pad_token_id == text.pad_token_id == tokenizer.pad_token_id
    eos = (
        generation.eos_token_id
        if isinstance(generation.eos_token_id, list)
        else [generation.eos_token_id]
    )
    # The tokenizer's EOS ends generation, whatever turn-end tokens the family adds to it.
    assert eos[0] == tokenizer.eos_token_id
    assert text.eos_token_id == generation.eos_token_id
    assert generation.bos_token_id == text.bos_token_id


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_same_files(tmp_path, name):
    build_tiny_model(name, tmp_path / "a", seed=3)
    build_tiny_model(name, tmp_path / "b", seed=3)
    build_tiny_model(name, tmp_path / "c", seed=4)

    def digests(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    weights = [(tmp_path / x / "model.safetensors").read_bytes() for x in "ac"]
    assert weights[0] != weights[1]


@pytest.mark.parametrize("text", ROUND_TRIP)
@pytest.mark.parametrize("name", FAMILIES)
def test_tokenizer_round_trips_non_ascii(built, name, text):
    tokenizer = load_processor(FAMILIES[name], built(name)).tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.unk_token_id is not None:
        assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("name", FAMILIES)
def test_left_padded_batch_generates_as_one_at_a_time(built, name):
    family = FAMILIES[name]
    folder = built(name)
    processor = load_processor(family, folder)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(folder)
    questions = ["Extract the receipt as JSON.", "Which letter is circled? Answer with one letter."]
    images = [receipt_image(48, 64, 40), receipt_image(60, 30, 200)]

    def generate(questions, images):
        inputs = model_inputs(processor, family, questions, images)
        output = model.generate(
            **inputs,
            max_new_tokens=5,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        return output.sequences[:, inputs["input_ids"].shape[1] :], output.logits[0]

    batch, batch_logits = generate(questions, images)
    for row, (question, image) in enumerate(zip(questions, images, strict=True)):
        alone, alone_logits = generate([question], [image])
        alone = alone[0]
        assert batch[row, : len(alone)].tolist() == alone.tolist()
        # A row that stopped early is padded in the batch.
        assert set(batch[row, len(alone) :].tolist()) <= {model.generation_config.pad_token_id}
        # Random weights often repeat one token; the first step's logits show padding leaks.
        torch.testing.assert_close(batch_logits[row], alone_logits[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["qwen2-vl", "qwen2.5-vl"])
def test_qwen_folder_without_torchvision(built, name, tmp_path):
    folder = built(name)
    if is_torchvision_available():
        assert isinstance(AutoProcessor.from_pretrained(folder), ProcessorMixin)
    else:
        # An error, not a silent bare tokenizer: callers must use the image-only processor.
        with pytest.raises(ImportError, match=r"(?i)torchvision"):
            AutoProcessor.from_pretrained(folder)
    # The image-only processor saves a hub-shaped folder that it loads back from.
    processor = load_qwen_image_only_processor(folder)
    processor.save_pretrained(tmp_path)
    hub_class = {"qwen2-vl": "Qwen2VLProcessor", "qwen2.5-vl": "Qwen2_5_VLProcessor"}[name]
    for config in ("preprocessor_config.json", "tokenizer_config.json"):
        assert json.loads((tmp_path / config).read_text("utf-8"))["processor_class"] == hub_class
    again = load_qwen_image_only_processor(tmp_path)
    assert type(again) is type(processor)
    assert again.chat_template == processor.chat_template
    with pytest.raises(ValueError, match="images only"):
        processor(
            text=["<|vision_start|><|video_pad|><|vision_end|>"],
            videos=[[receipt_image(28, 28, 0)]],
        )


@pytest.mark.parametrize("template", ["smolvlm", "qwen2_vl", "gemma3"])
def test_chat_templates_match_trl_copies_of_the_hub(template):
    # TRL keeps byte-exact copies of these hub templates and recognises models by them.
    pytest.importorskip("trl")
    trl_name = {"qwen2_vl": "qwen2_5_vl"}.get(template, template)
    trl_copy = resources.files("trl").joinpath("chat_templates", f"{trl_name}.jinja")
    assert chat_template(template) == trl_copy.read_text(encoding="utf-8")


def test_unknown_family_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--family"):
        build_tiny_model("gpt5-vision", tmp_path)
    assert not list(tmp_path.iterdir())

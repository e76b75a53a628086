"""Families are recognised from config.json alone, and prompts are formatted the family's way."""

from __future__ import annotations

import json

import pytest

from vlmkit.errors import InputError, UsageError
from vlmkit.models.families import FAMILIES, family_named, family_of
from vlmkit.models.sources import architecture, model_family, resolve_source
from vlmkit.prompts import chat_template_of, images_argument, user_turn


@pytest.mark.parametrize(
    ("model_type", "text_type", "family"),
    [
        ("paligemma", "gemma", "paligemma"),
        ("paligemma", "gemma2", "paligemma2"),
        ("paligemma", "gemma3_text", "paligemma"),  # a later Gemma: still PaliGemma's prompts
        ("idefics3", "llama", "idefics3"),
        ("smolvlm", "llama", "idefics3"),
        ("mllama", None, "mllama"),
        ("qwen2_vl", "qwen2_vl_text", "qwen2-vl"),
        ("qwen2_5_vl", None, "qwen2.5-vl"),
        ("gemma3", "gemma3_text", "gemma3"),
        ("llava", "llama", "llava"),
    ],
)
def test_families_from_model_types(model_type, text_type, family):
    assert family_of(model_type, text_type).name == family


def test_unknown_vision_models_fall_back_to_their_chat_template():
    family = model_family({"model_type": "llava_next", "vision_config": {}}, "m")
    assert (family.name, family.prompt_style, family.nested_images) == ("chat", "chat", True)
    with pytest.raises(InputError, match="is a 'bert' model, not a vision-language model"):
        model_family({"model_type": "bert"}, "m")


def test_family_names_and_did_you_mean():
    assert set(FAMILIES) == {"paligemma", "paligemma2", "idefics3", "mllama", "qwen2-vl",
                             "qwen2.5-vl", "gemma3", "llava"}  # fmt: skip
    with pytest.raises(UsageError, match="--family 'llama'") as caught:
        family_named("llama")
    assert "paligemma" in caught.value.hint


def test_prompt_helpers():
    assert user_turn("Read.") == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read."}]}
    ]
    images = ["a", "b"]
    assert images_argument(FAMILIES["idefics3"], images) == [["a"], ["b"]]
    assert images_argument(FAMILIES["qwen2-vl"], images) == ["a", "b"]

    from types import SimpleNamespace

    tokenizer = SimpleNamespace(chat_template={"default": "T", "tool_use": "U"})
    assert chat_template_of(SimpleNamespace(chat_template=None, tokenizer=tokenizer)) == "T"


def test_architecture_compares_what_adapters_depend_on():
    config = {"model_type": "paligemma", "text_config": {"hidden_size": 64, "vocab_size": 9}}
    assert architecture(config) == {"model_type": "paligemma", "hidden_size": 64, "vocab_size": 9}


def test_sources_need_no_heavy_import(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "idefics3"}))
    (folder / "model.safetensors").write_bytes(b"")
    source = resolve_source(str(folder), None)
    assert source.local and source.config == {"model_type": "idefics3"}
    hub = resolve_source("HuggingFaceTB/SmolVLM-Instruct", None)
    assert not hub.local and hub.config is None
    with pytest.raises(UsageError, match="does not exist"):
        resolve_source("./nowhere/model", None)

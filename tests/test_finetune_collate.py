"""The fine-tuning collator on tiny models of every family: labels, prompts, lengths, budgets."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from vlmkit.finetune.collate import IGNORE_INDEX, TrainingCollator
from vlmkit.images import open_rgb
from vlmkit.infer.backends.base import Prepared
from vlmkit.infer.backends.hf_transformers import TransformersBackend
from vlmkit.infer.selection import Sample
from vlmkit.infer.settings import GenerationSettings
from vlmkit.models.families import FAMILIES
from vlmkit.models.loading import LoadedModel, load_model
from vlmkit.models.options import LoadOptions
from vlmkit.models.sources import resolve_source
from vlmkit.models.tiny import build_tiny_model
from vlmkit.prompts import adds_special_tokens, format_prompt, images_argument

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

CHAT = [name for name, family in FAMILIES.items() if family.prompt_style == "chat"]
# Gemma 3's tokenizer eos is <eos>, but its template ends every model turn with <end_of_turn>.
END_TOKEN = {"gemma3": "<end_of_turn>"}
# The attention mask and the per-token type ids (only some families have each).
PER_TOKEN = ("attention_mask", "token_type_ids", "mm_token_type_ids")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """`loaded(family)`: a tiny model of that family, built and loaded once per module."""
    root = tmp_path_factory.mktemp("tiny-collate")
    models: dict[str, LoadedModel] = {}

    def get(family: str) -> LoadedModel:
        if family not in models:
            build_tiny_model(family, root / family, seed=0)
            models[family] = load_model(resolve_source(str(root / family), None), LoadOptions())
        return models[family]

    return get


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> list[dict]:
    """Three samples: images of different sizes (one greyscale), targets of different lengths."""
    folder = tmp_path_factory.mktemp("collate-images")
    shapes = {"tall": ((40, 60), "RGB"), "wide": ((64, 48), "RGB"), "grey": ((30, 30), "L")}
    for name, (size, mode) in shapes.items():
        image = Image.new(mode, size, "white")
        ImageDraw.Draw(image).ellipse((4, 4, size[0] - 4, size[1] - 4), outline="black", width=3)
        image.save(folder / f"{name}.png")
    return [
        {"id": "brace", "image": str(folder / "tall.png"), "prompt": "Read it:", "target": "{a}"},
        {
            "id": "json",
            "image": str(folder / "wide.png"),
            "prompt": "Extract the receipt as JSON.",
            "target": '{"total": "12.50"}',
            "meta": {"ignored": True},
        },
        {"id": "unicode", "image": str(folder / "grey.png"), "prompt": "Q", "target": "Grüße 東京"},
    ]


def _end_text(model: LoadedModel) -> str:
    return END_TOKEN.get(model.family.name, model.processor.tokenizer.eos_token)


def _image_token_ids(model: LoadedModel) -> set[int]:
    names = ("image_token_id", "image_token_index")
    ids = {getattr(model.model.config, name, None) for name in names}
    ids.add(getattr(model.processor, "image_token_id", None))
    return ids - {None}


def _inference_inputs(model: LoadedModel, examples: list[dict]):
    """What `vlmkit infer` feeds the model for these samples, through its transformers backend."""
    backend = TransformersBackend(model, GenerationSettings())
    samples = [Sample(e["id"], Path(e["image"]), e["prompt"]) for e in examples]
    prepared = [Prepared(s, backend.request(s, open_rgb(s.image))) for s in samples]
    return backend._encode(prepared)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_only_the_answer_and_end_token_carry_labels(loaded, examples, family):
    model = loaded(family)
    tokenizer = model.processor.tokenizer
    collator = TrainingCollator(model.processor, model.family)
    batch = collator(examples)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert labels.shape == ids.shape == mask.shape and labels.dtype == torch.long

    # The end token is the one inference stops on.
    assert collator.end_token == _end_text(model)
    stop = model.model.generation_config.eos_token_id
    assert collator.end_token_id in (stop if isinstance(stop, list) else [stop])

    image_ids = _image_token_ids(model)
    specials = set(tokenizer.all_special_ids)
    for row, example in enumerate(examples):
        labelled = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        start, end = labelled[0], labelled[-1] + 1
        assert labelled == list(range(start, end)), "one contiguous run"
        assert labels[row, start:end].tolist() == ids[row, start:end].tolist()
        text = tokenizer.decode(labels[row, start:end], skip_special_tokens=False)
        # Decoded alone, a SentencePiece tokenizer drops a leading space: the check in context
        # below holds the exact text.
        answer = collator.answer_lead + example["target"]
        assert text.lstrip(" ") == answer.lstrip(" ") + _end_text(model)
        # In context too: the answer adds the target's text to the prompt's, nothing else.
        whole, prompt = (tokenizer.decode(ids[row, :n]) for n in (end, start))
        assert whole == prompt + collator.answer_lead + example["target"] + _end_text(model)
        # Only the last labelled token is special: no image, BOS or turn token is learned.
        assert ids[row, end - 1] == collator.end_token_id
        assert specials.isdisjoint(ids[row, start : end - 1].tolist())
        # The prompt before the run holds the image's tokens, none labelled.
        assert not image_ids.isdisjoint(ids[row, :start].tolist())
        # Padded on the right, after the answer, and padding is never labelled.
        assert mask[row, :end].all() and not mask[row, end:].any()
        assert (labels[row][mask[row] == 0] == IGNORE_INDEX).all()
    if model.family.prompt_style == "prefix":
        # PaliGemma attends to the prefix both ways and to the suffix causally: type 1 = suffix.
        assert torch.equal(batch["token_type_ids"] == 1, labels != IGNORE_INDEX)
    # Collating pads on the right without touching what inference set on the shared tokenizer.
    assert tokenizer.padding_side == "left"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prompt_and_images_are_what_inference_feeds(loaded, examples, family):
    model = loaded(family)
    collator = TrainingCollator(model.processor, model.family)
    batch = collator(examples)
    inference = _inference_inputs(model, examples)  # left-padded
    for row, example in enumerate(examples):
        prompt = collator.lengths(example).prompt
        fed = inference["attention_mask"][row].bool()
        assert (
            batch["input_ids"][row, :prompt].tolist() == inference["input_ids"][row, fed].tolist()
        )
        assert (batch["labels"][row, :prompt] == IGNORE_INDEX).all()
        for key in [*PER_TOKEN, "cross_attention_mask"]:
            if key in inference:
                assert torch.equal(batch[key][row, :prompt], inference[key][row, fed]), key
    image_keys = set(inference) - {"input_ids", *PER_TOKEN, "cross_attention_mask"}
    assert image_keys and image_keys <= set(batch)
    for key in image_keys:
        assert torch.equal(batch[key], inference[key]), key


@pytest.mark.parametrize("family", CHAT)
def test_answer_tokens_get_what_the_processor_gives_the_full_text(loaded, examples, family):
    """Appending the answer keeps every per-token tensor as the processor builds it."""
    model = loaded(family)
    processor = model.processor
    collator = TrainingCollator(processor, model.family)
    batch = collator(examples)
    for row, example in enumerate(examples):
        total = collator.lengths(example).total
        text = format_prompt(processor, model.family, example["prompt"])
        text += collator.answer_lead + example["target"] + collator.end_token
        with Image.open(example["image"]) as image:
            images = images_argument(model.family, [image.convert("RGB")])
        special = adds_special_tokens(processor, text)  # BOS as inference adds it
        full = processor(
            text=[text], images=images, add_special_tokens=special, return_tensors="pt"
        )
        assert batch["input_ids"][row, :total].tolist() == full["input_ids"][0].tolist()
        for key in [*PER_TOKEN, "cross_attention_mask"]:
            if key not in full:
                continue
            # Mllama's mask is padded to the batch's most tiles: the extra ones stay zero.
            ours = batch[key][row, :total]
            region = tuple(slice(0, size) for size in full[key][0].shape)
            assert torch.equal(ours[region], full[key][0]), key
            assert ours.sum() == full[key][0].sum(), key


@pytest.mark.parametrize("family", list(FAMILIES))
def test_batch_trains_the_model(loaded, examples, family):
    model = loaded(family).model
    batch = TrainingCollator(loaded(family).processor, loaded(family).family)(examples)
    assert set(batch) <= set(inspect.signature(model.forward).parameters)
    model.train()  # the training path: Gemma 3 and PaliGemma attend with token_type_ids
    try:
        loss = model(**batch).loss
        assert torch.isfinite(loss) and loss > 0
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_lengths_agree_with_the_batch(loaded, examples, family):
    model = loaded(family)
    collator = TrainingCollator(model.processor, model.family)
    batch = collator(examples)
    for row, example in enumerate(examples):
        lengths = collator.lengths(example)
        assert lengths.prompt + lengths.answer == lengths.total
        assert lengths.total == int(batch["attention_mask"][row].sum())
        assert lengths.answer == int((batch["labels"][row] != IGNORE_INDEX).sum())
        assert batch["labels"][row, lengths.prompt] != IGNORE_INDEX
        assert (batch["labels"][row, : lengths.prompt] == IGNORE_INDEX).all()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_sample_over_max_length_is_an_error_naming_it(loaded, examples, family):
    model = loaded(family)
    totals = [TrainingCollator(model.processor, model.family).lengths(e).total for e in examples]
    longest = max(totals)
    fits = TrainingCollator(model.processor, model.family, max_length=longest)(examples)
    assert fits["input_ids"].shape[1] == longest  # the limit itself fits: nothing is cut
    over = next(e["id"] for e, total in zip(examples, totals, strict=True) if total == longest)
    collator = TrainingCollator(model.processor, model.family, max_length=longest - 1)
    with pytest.raises(ValueError, match=rf"sample {over} takes {longest} tokens.*never truncated"):
        collator(examples)


@pytest.mark.parametrize("family", CHAT)
def test_a_bpe_merge_across_the_boundary_leaves_the_inference_prompt(loaded, examples, family):
    """A generation prompt ending in "{" before a target starting with '"' tokenises jointly as
    '{"': the prompt must still be inference's tokens, and the labels the target's alone."""
    model = loaded(family)
    processor = copy.deepcopy(model.processor)
    processor.chat_template += "{% if add_generation_prompt %}{{ '{' }}{% endif %}"
    model = dataclasses.replace(model, processor=processor)
    tokenizer = processor.tokenizer
    example = {**examples[1], "target": '"total": 1}'}
    collator = TrainingCollator(processor, model.family)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt = format_prompt(processor, model.family, example["prompt"])
    assert prompt.endswith("{")
    joint = encode(prompt + collator.answer_lead + example["target"] + collator.end_token)
    assert joint[: len(encode(prompt))] != encode(prompt), "no merge: the test checks nothing"

    batch = collator([example])
    inference = _inference_inputs(model, [example])
    lengths = collator.lengths(example)
    assert batch["input_ids"][0, : lengths.prompt].tolist() == inference["input_ids"][0].tolist()
    labelled = batch["labels"][0, lengths.prompt :]
    assert (labelled != IGNORE_INDEX).all() and len(labelled) == lengths.answer
    text = tokenizer.decode(labelled, skip_special_tokens=False)
    assert text == collator.answer_lead + example["target"] + collator.end_token
    whole = tokenizer.decode(batch["input_ids"][0])
    assert whole == tokenizer.decode(inference["input_ids"][0]) + text


@pytest.mark.parametrize("family", FAMILIES)
def test_the_answer_starts_as_the_chat_template_writes_it(loaded, family):
    """SmolVLM and LLaVA write "Assistant: text": the space is part of what the model learns."""
    from vlmkit.finetune.collate import TrainingCollator

    model = loaded(family)
    collator = TrainingCollator(model.processor, model.family)
    expected = {"idefics3": " ", "llava": " "}.get(family, "")
    assert collator.answer_lead == expected

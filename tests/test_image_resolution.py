"""Image resolution: one cap and each family's knobs, set on the processor, recorded with the
adapter and the predictions, and checked where runs are compared (tiny models of each family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_helpers import letters_dataset, read_jsonl, vlmkit
from PIL import Image

from vlmkit.errors import UsageError
from vlmkit.models.families import FAMILIES
from vlmkit.models.options import LoadOptions
from vlmkit.models.resolution import ImageSettings, apply_image_settings, image_token_stats
from vlmkit.models.sources import resolve_source

pytestmark = pytest.mark.usefixtures("torch_one_thread")

BIG = Image.new("RGB", (800, 600), "white")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resolution")
    for family in ("idefics3", "qwen2-vl", "mllama", "llava", "paligemma2"):
        assert vlmkit("tiny-model", root / family, "--family", family).exit_code == 0
    return root


def _processor(models: Path, family: str):
    from vlmkit.models.loading import load_processor

    source = resolve_source(str(models / family), None)
    return load_processor(source, FAMILIES[family], LoadOptions()), source.config or {}


def _image_tokens(processor) -> int:
    """Tokens the big image takes, as the processor counts them."""
    return processor._get_num_multimodal_tokens(image_sizes=[BIG.size[::-1]]).num_image_tokens[0]


@pytest.mark.parametrize(
    ("family", "settings"),
    [("qwen2-vl", ImageSettings(max_image_tokens=6)),
     ("qwen2-vl", ImageSettings(image_max_pixels=28 * 28 * 3)),
     ("idefics3", ImageSettings(image_splitting=False)),
     ("idefics3", ImageSettings(max_image_tokens=5))],
)  # fmt: skip
def test_a_cap_changes_the_tokens_as_the_processor_says(models, family, settings):
    processor, config = _processor(models, family)
    before = _image_tokens(processor)
    record = apply_image_settings(processor, FAMILIES[family], settings, config)
    after = _image_tokens(processor)
    assert after < before
    assert record["settings"] == settings.given() and record["family"] == family
    # The processor's own encoding agrees: the prompt is shorter by as many tokens.
    stats = image_token_stats(processor, [])
    assert stats is None  # no images, nothing to count


def test_mllama_tiles(models):
    processor, config = _processor(models, "mllama")
    apply_image_settings(processor, FAMILIES["mllama"], ImageSettings(max_image_tiles=1), config)
    encoded = processor(text=["<|image|>Read."], images=[[BIG]], return_tensors="pt")
    assert encoded["pixel_values"].shape[2] == 1  # one tile where there were four


@pytest.mark.parametrize(
    ("family", "settings", "said"),
    [("paligemma2", ImageSettings(image_max_pixels=1000),
      "--image-max-pixels: PaliGemma 2 has no such knob"),
     ("llava", ImageSettings(image_splitting=False), "LLaVA has no such knob"),
     ("llava", ImageSettings(max_image_tokens=4), "LLaVA's resolution is fixed by its checkpoint"),
     ("idefics3", ImageSettings(max_image_tokens=2), "one Idefics3 / SmolVLM tile takes 4 tokens"),
     ("idefics3", ImageSettings(max_image_tokens=8, image_longest_edge=64), "both cap the image"),
     ("qwen2-vl", ImageSettings(max_image_tokens=8, image_max_pixels=9999), "both cap the image"),
     ("mllama", ImageSettings(max_image_tokens=3), "tile takes")],
)  # fmt: skip
def test_knobs_that_do_not_fit_are_one_clear_error(models, family, settings, said):
    processor, config = _processor(models, family)
    with pytest.raises(UsageError, match=said):
        apply_image_settings(processor, FAMILIES[family], settings, config)


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [({"max_image_tokens": 0}, "--max-image-tokens must be a whole number of at least 1"),
     ({"image_max_pixels": -5}, "--image-max-pixels must be"),
     ({"image_min_pixels": 5000, "image_max_pixels": 4000}, "is above --image-max-pixels")],
)  # fmt: skip
def test_bad_values(kwargs, said):
    with pytest.raises(UsageError, match=said):
        ImageSettings(**kwargs)


@pytest.mark.slow
def test_training_and_inference_share_the_resolution(models, tmp_path: Path):
    data = letters_dataset(tmp_path / "letters", n=4)
    out = tmp_path / "adapter"
    result = vlmkit("finetune", data, "--model", models / "idefics3", "-o", out,
                    "--max-steps", "1", "--no-image-splitting")  # fmt: skip
    assert result.exit_code == 0, result.output
    trained = json.loads((out / "vlmkit-adapter.json").read_text())["image_preprocessing"]
    assert trained["settings"] == {"image_splitting": False}
    assert trained["effective"]["do_image_splitting"] is False
    # No flag: the adapter's settings are used, and said.
    result = vlmkit("infer", data, "--adapter", out, "-o", tmp_path / "same.jsonl",
                    "--max-new-tokens", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "images preprocessed as the adapter was trained" in result.stderr
    same = json.loads((tmp_path / "same.run.json").read_text())["model"]
    assert same["image_preprocessing"]["effective"] == trained["effective"]
    assert same["image_tokens"]["images"] == 4 and same["image_tokens"]["max"] > 0
    # Another resolution: used as asked, and warned of.
    result = vlmkit("infer", data, "--adapter", out, "-o", tmp_path / "other.jsonl",
                    "--max-new-tokens", "2", "--image-splitting")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the adapter was trained with image settings" in " ".join(result.stderr.split())
    other = json.loads((tmp_path / "other.run.json").read_text())["model"]
    assert other["image_tokens"]["mean"] > same["image_tokens"]["mean"]
    # Comparing the two runs says that their images were preprocessed differently.
    scored = vlmkit("score", tmp_path / "other.jsonl", data, "--baseline", tmp_path / "same.jsonl")
    assert scored.exit_code == 0, scored.output
    assert "preprocessed images differently" in " ".join(scored.stderr.split())
    assert len(read_jsonl(tmp_path / "other.jsonl")) == 4


@pytest.mark.slow
def test_the_token_budget_counts_image_tokens_at_the_chosen_resolution(models, tmp_path: Path):
    data = letters_dataset(tmp_path / "letters", n=4)
    # At the default setting a sample takes 87 tokens here; without splitting, 60.
    common = ("--model", models / "idefics3", "--max-steps", "1", "--max-length", "70")
    result = vlmkit("finetune", data, "-o", tmp_path / "a", *common)
    assert result.exit_code == 1 and "exceed 70 tokens" in result.stderr
    result = vlmkit("finetune", data, "-o", tmp_path / "b", *common, "--no-image-splitting")
    assert result.exit_code == 0, result.output


def test_served_and_vllm_backends_refuse_image_flags(models, tmp_path: Path):
    data = letters_dataset(tmp_path / "letters", n=2)
    result = vlmkit("infer", data, "--model", "m", "--backend", "openai", "--endpoint",
                    "http://127.0.0.1:9/v1", "-o", tmp_path / "p.jsonl",
                    "--max-image-tokens", "64")  # fmt: skip
    assert result.exit_code == 2
    assert "image settings apply to --backend transformers" in " ".join(result.stderr.split())

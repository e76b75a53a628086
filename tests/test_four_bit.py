"""4-bit NF4 on CPU: both bitsandbytes CPU kernels, layers too narrow for the fast one, QLoRA."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from model_helpers import letters_dataset, memory_dataset, read_jsonl, vlmkit

pytestmark = pytest.mark.slow


def _cpu_has_packed_kernel() -> bool:
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())


@pytest.fixture(params=["packed", "plain"])
def kernel(request, monkeypatch):
    """Which CPU kernel bitsandbytes gives 4-bit layers: its AVX512-BF16 one where the CPU has
    it, and the plain one (what AVX2 CPUs run) everywhere, by the function it asks."""
    if request.param == "packed" and not _cpu_has_packed_kernel():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes has only its plain kernel here")
    if request.param == "plain":
        monkeypatch.setattr("bitsandbytes.nn.modules.has_avx512bf16", lambda: False)
    return request.param


@pytest.fixture(scope="module")
def models(tmp_path_factory, torch_one_thread):
    root = tmp_path_factory.mktemp("four-bit")
    for family in ("paligemma", "idefics3"):
        assert vlmkit("tiny-model", root / family, "--family", family).exit_code == 0
    _narrow_copy(root / "paligemma", root / "narrow")
    return root, letters_dataset(root / "letters", n=4), memory_dataset(root / "memory")


def _narrow_copy(model: Path, out: Path) -> None:
    """The tiny PaliGemma at half its width (32): layers the AVX512-BF16 kernel cannot take."""
    import torch
    from transformers import AutoModelForImageTextToText, PaliGemmaConfig

    config = json.loads((model / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    text |= {"hidden_size": 32, "intermediate_size": 64, "head_dim": 16}
    vision |= {"hidden_size": 32, "intermediate_size": 64}
    config |= {"hidden_size": 32, "projection_dim": 32}
    config.pop("model_type")
    torch.manual_seed(0)
    narrow = AutoModelForImageTextToText.from_config(PaliGemmaConfig(**config))
    narrow.save_pretrained(out)
    for file in model.iterdir():
        if not (out / file.name).exists():
            shutil.copyfile(file, out / file.name)


def _loaded_four_bit(model: Path):
    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source

    return load_model(resolve_source(str(model), None), LoadOptions(load_in_4bit=True)).model


def _four_bit_layers(model) -> list:
    from bitsandbytes.nn import Linear4bit

    return [m for m in model.modules() if isinstance(m, Linear4bit)]


def test_four_bit_inference_on_each_cpu_kernel(models, kernel, tmp_path):
    root, letters, _ = models
    layers = _four_bit_layers(_loaded_four_bit(root / "paligemma"))
    assert layers and all(m.support_avx512bf16_for_cpu == (kernel == "packed") for m in layers)
    out = tmp_path / "p.jsonl"
    result = vlmkit("infer", letters, "--model", root / "paligemma", "--load-in-4bit",
                    "-o", out, "--max-new-tokens", "6")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.run.json").read_text())["key"]["load_in_4bit"] is True
    rows = read_jsonl(out)
    assert len(rows) == 4 and not any(row.get("error") for row in rows)


def test_the_packed_kernel_really_runs_where_the_cpu_has_it(models):
    import torch

    if not _cpu_has_packed_kernel():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes has only its plain kernel here")
    root, _, _ = models
    model = _loaded_four_bit(root / "paligemma")
    with torch.no_grad():
        model.generate(input_ids=torch.tensor([[2, 50, 60]]), max_new_tokens=2)
    text_layers = [m for m in _four_bit_layers(model) if m.weight.quant_state is not None]
    assert any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in text_layers)


def test_layers_too_narrow_for_the_packed_kernel_use_the_plain_one(models, tmp_path):
    from vlmkit.models.four_bit import packed_kernel_misfits

    root, letters, _ = models
    model = _loaded_four_bit(root / "narrow")
    # load_model already switched them; a second look finds nothing left to switch.
    assert packed_kernel_misfits(model) == []
    layers = _four_bit_layers(model)
    narrow = [m for m in layers if m.in_features % 64 or m.out_features % 32]
    assert narrow and not any(m.support_avx512bf16_for_cpu for m in narrow)
    out = tmp_path / "p.jsonl"
    result = vlmkit("infer", letters, "--model", root / "narrow", "--load-in-4bit", "-o", out,
                    "--max-new-tokens", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not any(row.get("error") for row in read_jsonl(out))


def test_narrow_layers_are_named_when_switched(models, monkeypatch):
    from bitsandbytes.nn import Linear4bit

    from vlmkit.models.four_bit import packed_kernel_misfits

    # Layers as bitsandbytes builds them on an AVX512-BF16 CPU, whatever CPU runs the test.
    monkeypatch.setattr("bitsandbytes.nn.modules.has_avx512bf16", lambda: True)
    import torch

    model = torch.nn.Sequential(Linear4bit(32, 64), Linear4bit(64, 48), Linear4bit(128, 64))
    model.load_state_dict(model.state_dict())
    assert packed_kernel_misfits(model) == ["0 (32->64)", "1 (64->48)"]
    assert [m.support_avx512bf16_for_cpu for m in model] == [False, False, True]


def test_qlora_trains_evaluates_saves_and_merges_on_each_cpu_kernel(models, kernel, tmp_path):
    root, _, memory = models
    out = tmp_path / "qlora"
    result = vlmkit("finetune", memory, "--model", root / "idefics3", "-o", out,
                    "--method", "qlora", "--max-steps", "4", "--eval", memory,
                    "--eval-every", "2", "--eval-max-new-tokens", "4", "--best-metric", "cer",
                    "--merge")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["method"] == "qlora" and manifest["final_metrics"] is not None
    for adapter in (out, out / "best"):
        preds = tmp_path / f"{adapter.name}.jsonl"
        result = vlmkit("infer", memory, "--adapter", adapter, "--load-in-4bit", "-o", preds,
                        "--max-new-tokens", "4")  # fmt: skip
        assert result.exit_code == 0, result.output
    result = vlmkit("infer", memory, "--model", out / "merged", "-o", tmp_path / "merged.jsonl",
                    "--max-new-tokens", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not any(row.get("error") for row in read_jsonl(tmp_path / "merged.jsonl"))


def test_known_harmless_library_noise_is_silenced_and_real_warnings_kept(models, tmp_path):
    from model_helpers import vlmkit_process

    root, _, memory = models
    process = vlmkit_process("finetune", memory, "--model", root / "idefics3", "-o",
                             tmp_path / "a", "--method", "qlora", "--max-steps", "4",
                             "--save-every", "1", "--gradient-checkpointing", "--eval", memory,
                             "--eval-every", "2", "--eval-max-new-tokens", "2",
                             "--dtype", "bfloat16")  # fmt: skip
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    for noise in ("No module named 'kernels'", "is_gradient_checkpointing", "mtime may not"):
        assert noise not in stderr
    assert "bf16 on this CPU is 10-45x slower" in stderr  # vlmkit's own warning stays


def test_the_silencing_drops_only_the_known_message():
    import logging

    from vlmkit.cli import quiet

    quiet.install()
    quiet.install()  # idempotent
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(logger.filters) == 1
    keep = logging.LogRecord(logger.name, logging.WARNING, __file__, 1, "real trouble", (), None)
    drop = logging.LogRecord(logger.name, logging.WARNING, __file__, 1,
                             "Failed: No module named 'kernels'.", (), None)  # fmt: skip
    assert logger.filter(keep) and not logger.filter(drop)

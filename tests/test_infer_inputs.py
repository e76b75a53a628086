"""Adapters, 4-bit loading, and every bad input `vlmkit infer` must refuse before any work."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_helpers import letters_dataset, predictions, read_jsonl, vlmkit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny PaliGemma and Idefics3 models, a LoRA adapter for the PaliGemma, and a dataset."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("inputs")
    for family in ("paligemma", "idefics3"):
        assert vlmkit("tiny-model", root / family, "--family", family).exit_code == 0
    base = AutoModelForImageTextToText.from_pretrained(root / "paligemma")
    torch.manual_seed(0)
    # Random (not zero) B matrices, so the adapter visibly changes the model's answers.
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"],
                        init_lora_weights=False)  # fmt: skip
    get_peft_model(base, config).save_pretrained(root / "adapter")
    letters = letters_dataset(root / "letters", n=4)
    return root, letters


def _infer(letters: Path, out: Path, *args: str | Path):
    return vlmkit("infer", letters, "-o", out, "--max-new-tokens", "6", *args)


def test_an_adapter_brings_its_base_model(models, tmp_path):
    root, letters = models
    base_out, tuned_out = tmp_path / "base.jsonl", tmp_path / "tuned.jsonl"
    assert _infer(letters, base_out, "--model", root / "paligemma").exit_code == 0
    result = _infer(letters, tuned_out, "--adapter", root / "adapter")  # no --model
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "tuned.run.json").read_text("utf-8"))
    assert run["model"]["model"] == str(root / "paligemma")
    assert run["model"]["adapter"] == str(root / "adapter")
    assert len(run["key"]["adapter"]) == 64  # the weights' digest: the folder may move
    assert predictions(tuned_out) != predictions(base_out)


def test_the_adapter_weights_are_the_ones_loaded(models):
    from peft import PeftModel
    from safetensors.torch import load_file

    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source

    root, _ = models
    loaded = load_model(resolve_source(None, root / "adapter"), LoadOptions())
    assert isinstance(loaded.model, PeftModel)
    saved = load_file(root / "adapter" / "adapter_model.safetensors")
    state = loaded.model.state_dict()
    name = next(k for k in saved if "lora_B" in k)
    live = next(
        v
        for k, v in state.items()
        if k.endswith(name.split("base_model.model.")[-1].replace(".weight", ".default.weight"))
    )
    assert (live == saved[name]).all()


def test_an_adapter_for_another_base_model_is_refused(models, tmp_path):
    root, letters = models
    result = _infer(letters, tmp_path / "p.jsonl", "--model", root / "idefics3",
                    "--adapter", root / "adapter")  # fmt: skip
    assert result.exit_code == 1
    assert "was trained on another base model" in result.stderr
    assert "model_type paligemma vs idefics3" in result.stderr
    assert not (tmp_path / "p.jsonl.partial").exists()


def test_an_adapter_whose_base_model_is_gone_needs_model(models, tmp_path):
    root, letters = models
    moved = tmp_path / "adapter"
    shutil.copytree(root / "adapter", moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted-model")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    result = _infer(letters, tmp_path / "p.jsonl", "--adapter", moved)
    assert result.exit_code == 1
    assert "which does not exist here" in result.stderr and "--model" in result.stderr
    # With --model the adapter loads on that base instead.
    result = _infer(
        letters, tmp_path / "p.jsonl", "--adapter", moved, "--model", root / "paligemma"
    )
    assert result.exit_code == 0, result.output


def _remove_chat_template(folder: Path) -> None:
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    for name in ("processor_config.json", "tokenizer_config.json"):
        path = folder / name
        config = json.loads(path.read_text())
        config.pop("chat_template", None)
        path.write_text(json.dumps(config))


def _bad_model(root: Path, tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    if kind == "missing":
        return folder
    folder.mkdir()
    if kind == "no-config":
        (folder / "model.safetensors").write_bytes(b"")
    elif kind == "text-only":
        (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    elif kind == "remote-code":
        (folder / "config.json").write_text(json.dumps({
            "model_type": "custom_vlm", "vision_config": {},
            "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"},
        }))  # fmt: skip
    elif kind == "no-chat-template":
        shutil.rmtree(folder)
        shutil.copytree(root / "idefics3", folder)
        _remove_chat_template(folder)
    elif kind == "pickle-weights":
        shutil.rmtree(folder)
        shutil.copytree(root / "paligemma", folder)
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    elif kind == "no-processor":
        shutil.rmtree(folder)
        shutil.copytree(root / "paligemma", folder)
        (folder / "processor_config.json").unlink()
    return folder


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("missing", 2, "does not exist"),
        ("no-config", 1, "is not a model folder (no config.json)"),
        ("text-only", 1, "is a 'gpt2' model, not a vision-language model"),
        ("remote-code", 1, "needs code from its repository"),
        ("no-chat-template", 1, "has no chat template"),
        ("pickle-weights", 1, "has only pickled weights (pytorch_model.bin)"),
        ("no-processor", 1, "processor_config.json, tokenizer files"),
    ],
)
def test_bad_models_are_one_clear_error(models, tmp_path, kind, code, message):
    root, letters = models
    out = tmp_path / "p.jsonl"
    result = _infer(letters, out, "--model", _bad_model(root, tmp_path, kind))
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert result.stderr.count("Error:") == 1 and "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "p.jsonl.partial").exists()


def test_bad_adapters_and_datasets(models, tmp_path):
    root, letters = models
    out = tmp_path / "p.jsonl"
    (tmp_path / "not-adapter").mkdir()
    result = _infer(letters, out, "--adapter", tmp_path / "not-adapter")
    assert result.exit_code == 1 and "no adapter_config.json" in result.stderr
    result = _infer(tmp_path, out, "--model", root / "paligemma")
    assert result.exit_code == 1 and "has no metadata.jsonl" in result.stderr
    result = _infer(letters, out)
    assert result.exit_code == 2 and "--model is missing" in result.stderr
    result = _infer(letters, out, "--model", root / "paligemma", "--backend", "vllm")
    assert result.exit_code == 1 and "needs vLLM, which is not installed" in result.stderr
    result = _infer(letters, out, "--model", root / "paligemma", "--shard", "3/2")
    assert result.exit_code == 2 and "--shard 3/2" in result.stderr


def test_a_mistyped_model_folder_is_not_taken_for_a_hub_id(models, tmp_path, monkeypatch):
    _, letters = models
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    result = _infer(letters, tmp_path / "p.jsonl", "--model", "models/tiny-paligemm")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_a_relative_base_model_is_found_beside_the_adapter(models, tmp_path, monkeypatch):
    root, letters = models
    shutil.copytree(root / "paligemma", tmp_path / "base")
    shutil.copytree(root / "adapter", tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "base"  # as peft records `--model base`
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _infer(letters, tmp_path / "p.jsonl", "--adapter", "../adapter")
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "p.run.json").read_text())
    assert Path(run["model"]["model"]).resolve() == (tmp_path / "base").resolve()


def _without_hub(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """Run vlmkit where the hub cannot be reached (a closed local port), online mode."""
    with socket.socket() as probe:  # a free port: nothing listens on it once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub"),
            "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [sys.executable, "-m", "vlmkit", *map(str, args)]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_a_hub_id_without_network_fails_once_and_fast(models, tmp_path):
    _, letters = models
    started = time.monotonic()
    result = _without_hub(tmp_path, "infer", letters, "--model", "org/not-cached", "-o",
                          tmp_path / "p.jsonl")  # fmt: skip
    assert result.returncode == 1 and time.monotonic() - started < 30
    assert "--model org/not-cached: no such folder here, not in the Hugging Face" in result.stderr
    assert "cannot be reached from this machine" in result.stderr
    assert "hf download org/not-cached" in result.stderr and "Retry" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == len(set(lines))  # nothing printed twice


def test_a_cached_hub_model_loads_without_network(models, tmp_path):
    root, letters = models
    # The cache's layout, as `hf download tinyorg/tiny` leaves it.
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--tinyorg--tiny"
    shutil.copytree(root / "paligemma", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    result = _without_hub(tmp_path, "infer", letters, "--model", "tinyorg/tiny", "-o",
                          tmp_path / "p.jsonl", "--max-new-tokens", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "p.jsonl")) == 4 and "Retry" not in result.stderr


def test_an_out_that_is_a_folder_is_one_clear_error(models, tmp_path):
    _, letters = models
    for out in (".", "/", tmp_path):
        result = _infer(letters, Path(out), "--model", "unused/model")
        assert result.exit_code == 2 and "is a folder" in result.stderr, result.output

"""`vlmkit finetune` end to end on tiny models: it learns; infer --adapter needs nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from model_helpers import memory_dataset, read_jsonl, vlmkit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("finetune")
    assert vlmkit("tiny-model", root / "idefics3", "--family", "idefics3").exit_code == 0
    return root, memory_dataset(root / "memory")


def _finetune(data: Path, model: Path, out: Path, *args: str | Path):
    return vlmkit("finetune", data, "--model", model, "-o", out, *args)


def _exact_match(preds: Path, data: Path) -> float:
    result = vlmkit("score", preds, data, "-m", "exact_match", "--json", "-")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]["exact_match"]


def test_it_learns_and_infer_uses_the_adapter_alone(setup, tmp_path):
    """The learning check: data, labels, adapter saving and loading and prompts line up."""
    root, data = setup
    base = tmp_path / "base.jsonl"
    assert vlmkit("infer", data, "--model", root / "idefics3", "-o", base,
                  "--max-new-tokens", "12").exit_code == 0  # fmt: skip
    assert _exact_match(base, data) == 0.0
    out = tmp_path / "adapter"
    result = _finetune(data, root / "idefics3", out, "--max-steps", "60", "--lr", "1e-2",
                       "--eval", data, "--eval-every", "30", "--eval-max-new-tokens", "12",
                       "--best-metric", "exact_match")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Wrote the adapter" in result.stdout and "{'loss'" not in result.stdout
    assert "4 of the --eval samples are also training samples" in result.stderr
    tuned = tmp_path / "tuned.jsonl"
    result = vlmkit("infer", data, "--adapter", out, "-o", tuned, "--max-new-tokens", "12")
    assert result.exit_code == 0, result.output
    assert _exact_match(tuned, data) == 1.0
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["base_model"] == str((root / "idefics3").resolve())
    assert manifest["family"] == "idefics3" and manifest["method"] == "lora"
    assert manifest["prompt_format"]["style"] == "chat"
    assert manifest["train_data"]["samples"] == 4
    assert manifest["final_metrics"]["exact_match"] == 1.0
    assert manifest["best"]["metric"] == "exact_match"
    assert (out / "best" / "adapter_model.safetensors").is_file()
    log = read_jsonl(out / "log.jsonl")
    # A loss line every 5 steps, those where an evaluation ran too (30, 60) included.
    assert [row["step"] for row in log if "loss" in row] == list(range(5, 61, 5))
    evals = [row for row in log if "eval/exact_match" in row]
    assert [row["step"] for row in evals] == [30, 60]
    # LoRA adapted the language model only.
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert targets and not any("vision" in t or "connector" in t for t in targets)


def test_qlora_trains_on_cpu_and_merges(setup, tmp_path):
    root, data = setup
    out = tmp_path / "qlora"
    result = _finetune(data, root / "idefics3", out, "--method", "qlora", "--max-steps", "3",
                       "--merge")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "vlmkit-adapter.json").read_text())["method"] == "qlora"
    merged = tmp_path / "merged.jsonl"
    result = vlmkit("infer", data, "--model", out / "merged", "-o", merged, "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(merged)) == 4


def test_resume_continues_and_refuses_other_settings(setup, tmp_path):
    root, data = setup
    out = tmp_path / "run"
    assert (
        _finetune(data, root / "idefics3", out, "--max-steps", "2", "--save-every", "2").exit_code
        == 0
    )
    result = _finetune(
        data, root / "idefics3", out, "--max-steps", "4", "--resume", "--save-every", "2"
    )
    assert result.exit_code == 0, result.output
    assert "4 steps" in result.stdout
    result = _finetune(
        data, root / "idefics3", out, "--max-steps", "6", "--resume", "--lora-r", "4"
    )
    assert result.exit_code == 2 and "lora_r: 16 -> 4" in result.stderr
    result = _finetune(data, root / "idefics3", out, "--max-steps", "2")
    assert result.exit_code == 2 and "--resume" in result.stderr and "--overwrite" in result.stderr


def test_a_config_file_with_flags_on_top(setup, tmp_path):
    root, data = setup
    config = tmp_path / "train.toml"
    config.write_text(
        'max-steps = 2\nlora-r = 4\nlora-alpha = 8\ntarget-modules = ["q_proj", "v_proj"]\n'
    )
    out = tmp_path / "run"
    result = _finetune(data, root / "idefics3", out, "--config", config, "--lora-r", "8")
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "vlmkit-adapter.json").read_text())["settings"]
    # A flag given wins over the file; a flag left at its default does not (lora-alpha).
    assert (settings["max_steps"], settings["lora_r"], settings["lora_alpha"]) == (2, 8, 8)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 8
    assert all(
        t.endswith(("q_proj", "v_proj")) and "text_model" in t for t in adapter["target_modules"]
    )


def test_samples_too_long_are_named_or_skipped(setup, tmp_path):
    root, data = setup
    result = _finetune(
        data, root / "idefics3", tmp_path / "a", "--max-length", "30", "--max-steps", "1"
    )
    assert result.exit_code == 1 and "exceed 30 tokens with their image tokens" in result.stderr
    assert "m0 (" in result.stderr and "--skip-long" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--target-modules", "qkv"), 2, "matches no linear layer of the language model"),
        (("--lora-r", "0"), 2, "--lora-r must be at least 1"),
        (("--lr", "3"), 2, "--lr 3.0 makes no sense"),
        (("--best-metric", "cer"), 2, "--best-metric needs --eval"),
        (("--dtype", "float16"), 2, "needs a CUDA GPU"),
        (("--resume",), 2, "has no checkpoint to continue from"),
    ],
)
def test_bad_settings_are_one_clear_error(setup, tmp_path, args, code, message):
    root, data = setup
    result = _finetune(data, root / "idefics3", tmp_path / "out", *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_datasets_and_outputs(setup, tmp_path):
    root, data = setup
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    rows = read_jsonl(bad / "metadata.jsonl")
    rows[1]["target"] = " "
    (bad / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _finetune(bad, root / "idefics3", tmp_path / "a")
    assert (
        result.exit_code == 1 and "metadata.jsonl:2: the target of 'm1' is empty" in result.stderr
    )
    (bad / "metadata.jsonl").write_text("")
    result = _finetune(bad, root / "idefics3", tmp_path / "a")
    assert result.exit_code == 1 and "has no samples" in result.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "adapter_config.json").write_text("{}")
    result = _finetune(data, root / "idefics3", mine, "--overwrite")
    assert (
        result.exit_code == 2
        and "only replaces a folder that vlmkit finetune wrote" in result.stderr
    )
    assert (mine / "adapter_config.json").exists()


def test_gradient_checkpointing_trains(setup, tmp_path):
    root, data = setup
    result = _finetune(data, root / "idefics3", tmp_path / "gc", "--max-steps", "2",
                       "--gradient-checkpointing")  # fmt: skip
    assert result.exit_code == 0, result.output


def test_skip_long_trains_on_the_rest_and_counts(setup, tmp_path):
    root, data = setup
    rows = read_jsonl(data / "metadata.jsonl")
    longer = tmp_path / "longer"
    shutil.copytree(data, longer)
    rows[0]["target"] = "a much longer answer " * 4
    (longer / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "a"
    limit = _budget(root / "idefics3", longer)
    result = _finetune(longer, root / "idefics3", out, "--max-length", str(limit), "--skip-long",
                       "--max-steps", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 samples were longer than the token budget" in result.stderr
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["skipped_long"] == ["m0"] and manifest["training"]["samples"] == 3


def _budget(model: Path, data: Path) -> int:
    """A --max-length that fits every sample of `data` but its first."""
    from vlmkit.finetune.data import read_training_data
    from vlmkit.finetune.objectives import objective_named
    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source

    loaded = load_model(resolve_source(str(model), None), LoadOptions())
    sft = objective_named("sft")
    collator = sft.collator(loaded.processor, loaded.family, None)
    training = read_training_data(data, None, flag="D")
    lengths = [sft.measure(collator, example, None).total for example in sft.examples(training)]
    assert lengths[0] > max(lengths[1:])
    return max(lengths[1:])


def test_overwrite_keeps_the_old_adapter_when_a_check_fails(setup, tmp_path):
    root, data = setup
    out = tmp_path / "a"
    assert _finetune(data, root / "idefics3", out, "--max-steps", "1").exit_code == 0
    result = _finetune(data, root / "idefics3", out, "--overwrite", "--target-modules", "qkv")
    assert result.exit_code == 2 and "qkv" in result.stderr
    assert (out / "adapter_model.safetensors").is_file()


def test_resume_on_other_data_or_model_is_refused(setup, tmp_path):
    root, data = setup
    out = tmp_path / "a"
    args = ("--max-steps", "2", "--save-every", "2")
    assert _finetune(data, root / "idefics3", out, *args).exit_code == 0
    other = tmp_path / "other"
    shutil.copytree(root / "idefics3", other)
    result = _finetune(data, other, out, "--resume", "--max-steps", "3")
    assert result.exit_code == 2 and "another base model" in result.stderr
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    with open(changed / "metadata.jsonl", "a") as handle:
        handle.write(json.dumps({**read_jsonl(data / "metadata.jsonl")[0], "id": "m9"}) + "\n")
    result = _finetune(changed, root / "idefics3", out, "--resume", "--max-steps", "3")
    assert result.exit_code == 2 and "another training data" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--best-metric", "cerr", "--eval", "DATA"), "did you mean 'cer'"),
        (("--report-to", "bogus"), "'bogus' is not a tracker"),
        (("--eval-every", "5"), "--eval-every apply to --eval"),
    ],
)
def test_eval_and_tracking_flags_are_checked_first(setup, tmp_path, args, message):
    root, data = setup
    args = tuple(str(data) if a == "DATA" else a for a in args)
    result = _finetune(data, root / "idefics3", tmp_path / "a", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "a").exists()


def test_an_eval_set_of_mixed_tasks_is_refused_before_training(setup, tmp_path):
    root, data = setup
    mixed = tmp_path / "mixed"
    shutil.copytree(data, mixed)
    rows = read_jsonl(mixed / "metadata.jsonl")
    rows[0]["task"] = "letter"
    (mixed / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _finetune(data, root / "idefics3", tmp_path / "a", "--eval", mixed)
    assert result.exit_code == 1 and "mixes tasks (letter, ocr)" in result.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("damage", ["bomb", "missing", "garbage"])
def test_a_bad_training_image_is_one_clear_error(setup, tmp_path, damage):
    from image_helpers import write_bomb_png

    root, data = setup
    bad = Path(shutil.copytree(data, tmp_path / "bad"))
    image = bad / "images" / "2.png"
    if damage == "bomb":
        write_bomb_png(image)  # a 20000x20000 image
    elif damage == "missing":
        image.unlink()
    else:
        image.write_bytes(b"not an image")
    result = _finetune(bad, root / "idefics3", tmp_path / "out", "--max-steps", "1")
    assert result.exit_code == 1, result.output
    expected = "of 'm2' is missing" if damage == "missing" else "sample 'm2' cannot be encoded"
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_the_adapter_is_readable_as_the_umask_says(setup, tmp_path):
    import os

    root, data = setup
    mask = os.umask(0o022)
    try:
        assert _finetune(data, root / "idefics3", tmp_path / "a", "--max-steps", "1").exit_code == 0
    finally:
        os.umask(mask)
    assert (tmp_path / "a" / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644

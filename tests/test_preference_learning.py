"""DPO learns on every family, and the whole SFT -> pairs -> DPO loop runs on files.

The rejected answers are a model's own: an adapter trained just long enough by SFT to answer
in the task's form, but not yet right everywhere (a random tiny model's answers are noise, or
for the Gemma-based families only special tokens, which decode to nothing). DPO then starts
from that adapter (`--init-adapter`), its reference a frozen copy of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_helpers import letters_dataset, memory_dataset, read_jsonl, vlmkit

from vlmkit.models.families import FAMILIES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


@pytest.fixture(scope="module")
def memory(tmp_path_factory) -> Path:
    return memory_dataset(tmp_path_factory.mktemp("preference") / "memory")


def _own_mistakes(data: Path, model: Path, work: Path) -> Path:
    """An SFT adapter that still gets some samples wrong, and pairs made of those mistakes
    (the fewest SFT steps that leave a mistake: tiny models learn 4 answers in 2-10 steps)."""
    for steps in ("2", "4", "6", "10"):
        result = vlmkit("finetune", data, "--model", model, "-o", work / "sft", "--overwrite",
                        "--max-steps", steps, "--lr", "1e-2")  # fmt: skip
        assert result.exit_code == 0, result.output
        result = vlmkit("infer", data, "--adapter", work / "sft", "-o", work / "sft.jsonl",
                        "--max-new-tokens", "12", "--overwrite")  # fmt: skip
        assert result.exit_code == 0, result.output
        if vlmkit("pairs", data, work / "sft.jsonl", "-o", work / "pairs",
                  "--overwrite").exit_code == 0:  # fmt: skip
            return work / "pairs"
    pytest.fail("SFT got every sample right at every step count tried: no mistakes to pair")


def _right(preds: Path, data: Path, ids: set[str]) -> int:
    targets = {r["id"]: r["target"] for r in read_jsonl(data / "metadata.jsonl")}
    return sum(p["prediction"] == targets[p["id"]] for p in read_jsonl(preds) if p["id"] in ids)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_dpo_learns_on_every_family(memory, tmp_path, family):
    model = tmp_path / "model"
    assert vlmkit("tiny-model", model, "--family", family).exit_code == 0
    pairs = _own_mistakes(memory, model, tmp_path)
    paired = {row["meta"]["source_id"] for row in read_jsonl(pairs / "metadata.jsonl")}
    assert _right(tmp_path / "sft.jsonl", memory, paired) == 0  # what made them pairs
    out = tmp_path / "dpo"
    # RPO: DPO's loss plus the chosen answer's likelihood (without it, DPO on a model this
    # small lowers both answers' likelihood and greedy decoding finds neither).
    result = vlmkit("finetune", pairs, "--objective", "dpo", "--model", model, "--init-adapter",
                    tmp_path / "sft", "-o", out, "--max-steps", "30", "--lr", "5e-3",
                    "--dpo-loss", "sigmoid,sft", "--logging-steps", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    last = [row for row in read_jsonl(out / "log.jsonl") if "loss" in row][-1]
    assert last["rewards/accuracies"] == 1.0 and last["rewards/margins"] > 0
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["objective"] == "dpo" and manifest["settings"]["init_adapter"]
    tuned = tmp_path / "dpo.jsonl"
    assert vlmkit("infer", memory, "--adapter", out, "-o", tuned, "--max-new-tokens",
                  "12").exit_code == 0  # fmt: skip
    assert _right(tuned, memory, paired) > 0


def test_plain_dpo_prefers_the_chosen_answers(memory, tmp_path):
    model = tmp_path / "model"
    assert vlmkit("tiny-model", model, "--family", "idefics3").exit_code == 0
    pairs = _own_mistakes(memory, model, tmp_path)
    out = tmp_path / "dpo"
    result = vlmkit("finetune", pairs, "--objective", "dpo", "--model", model, "-o", out,
                    "--max-steps", "20", "--lr", "5e-3", "--logging-steps", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    last = [row for row in read_jsonl(out / "log.jsonl") if "loss" in row][-1]
    assert last["rewards/accuracies"] == 1.0 and last["rewards/margins"] > 0
    assert {"rewards/chosen", "rewards/rejected", "logps/chosen"} <= set(last)


def test_the_whole_loop_on_files(tmp_path):
    """synth -> tiny-model -> infer -> finetune (sft) -> infer -> pairs -> finetune (dpo,
    --init-adapter) -> infer -> score --baseline."""
    letters = letters_dataset(tmp_path / "letters", n=8)
    model = tmp_path / "model"
    assert vlmkit("tiny-model", model, "--family", "qwen2-vl").exit_code == 0
    steps = [
        ("infer", letters, "--model", model, "-o", tmp_path / "base.jsonl"),
        ("finetune", letters, "--model", model, "-o", tmp_path / "sft", "--max-steps", "4",
         "--lr", "1e-2"),
        ("infer", letters, "--adapter", tmp_path / "sft", "-o", tmp_path / "sft.jsonl"),
        ("pairs", letters, tmp_path / "base.jsonl", tmp_path / "sft.jsonl", "-o",
         tmp_path / "pairs", "--max-pairs-per-sample", "2"),
        ("finetune", tmp_path / "pairs", "--objective", "dpo", "--model", model,
         "--init-adapter", tmp_path / "sft", "-o", tmp_path / "dpo", "--max-steps", "6",
         "--dpo-loss", "sigmoid,sft", "--lr", "5e-3"),
        ("infer", letters, "--adapter", tmp_path / "dpo", "-o", tmp_path / "dpo.jsonl"),
        ("score", tmp_path / "dpo.jsonl", letters, "--baseline", tmp_path / "sft.jsonl",
         "--json", tmp_path / "compare.json"),
    ]  # fmt: skip
    for args in steps:
        result = vlmkit(*args, *(("--max-new-tokens", "6") if args[0] == "infer" else ()))
        assert result.exit_code == 0, (args[0], result.output)
    compare = json.loads((tmp_path / "compare.json").read_text())
    assert "letter_accuracy" in compare["comparison"]
    sources = {row["meta"]["pair"]["rejected_source"] for row in read_jsonl(
        tmp_path / "pairs" / "metadata.jsonl")}  # fmt: skip
    assert sources <= {str(tmp_path / "base.jsonl"), str(tmp_path / "sft.jsonl")}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("dpo-inputs")
    assert vlmkit("tiny-model", root / "model", "--family", "idefics3").exit_code == 0
    data = memory_dataset(root / "memory")
    rows = read_jsonl(data / "metadata.jsonl")
    pairs = root / "pairs"
    pairs.mkdir()
    (pairs / "images").symlink_to(data / "images")
    for row in rows:
        row["chosen"], row["rejected"] = row.pop("target"), "nope"
    (pairs / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "model", data, pairs


def _refused(result, code: int, *messages: str) -> None:
    assert result.exit_code == code, result.output
    for message in messages:
        assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_each_objective_names_the_fields_it_needs(small, tmp_path):
    model, data, pairs = small
    result = vlmkit("finetune", data, "--objective", "dpo", "--model", model, "-o", tmp_path / "a")
    _refused(result, 1, "has a target, not a preference pair", "vlmkit pairs")
    _refused(vlmkit("finetune", pairs, "--model", model, "-o", tmp_path / "a"), 1,
             "is a preference pair", "--objective dpo")  # fmt: skip
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rejected": "cat"}, "chosen and rejected of 'm0' are the same answer"),
        ({"chosen": " "}, "the chosen answer of 'm0' is empty"),
        ({"rejected": ""}, "the rejected answer of 'm0' is empty"),
    ],
)
def test_bad_pairs_are_refused_before_weights_load(small, tmp_path, change, message):
    import shutil

    model, _, pairs = small
    bad = Path(shutil.copytree(pairs, tmp_path / "bad", symlinks=True))
    rows = read_jsonl(bad / "metadata.jsonl")
    rows[0].update(change)
    (bad / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _refused(vlmkit("finetune", bad, "--objective", "dpo", "--model", model, "-o",
                    tmp_path / "a"), 1, message)  # fmt: skip


def test_bad_dpo_settings(small, tmp_path):
    model, data, pairs = small
    args = ("finetune", pairs, "--objective", "dpo", "--model", model, "-o", tmp_path / "a")
    _refused(vlmkit(*args, "--beta", "0"), 2, "--beta must be above 0")
    _refused(vlmkit(*args, "--dpo-loss", "sigmod"), 2, "sigmod is not one of TRL's DPO losses")
    _refused(vlmkit("finetune", data, "--model", model, "-o", tmp_path / "a", "--beta", "0.5"),
             2, "--beta applies to --objective dpo and grpo")  # fmt: skip
    _refused(vlmkit("finetune", data, "--model", model, "-o", tmp_path / "a",
                    "--dpo-loss", "ipo"), 2, "--dpo-loss applies to --objective dpo")  # fmt: skip
    other = tmp_path / "other"
    assert vlmkit("tiny-model", other, "--family", "qwen2-vl").exit_code == 0
    adapter = tmp_path / "qwen-sft"
    assert vlmkit("finetune", data, "--model", other, "-o", adapter, "--max-steps",
                  "1").exit_code == 0  # fmt: skip
    _refused(vlmkit(*args, "--init-adapter", adapter), 1, "was trained on another base model")
    assert not (tmp_path / "a").exists()


def test_dpo_has_everything_sft_has(small, tmp_path):
    """--eval by generation, the best adapter, --resume, --merge, and infer --adapter alone."""
    model, data, pairs = small
    out = tmp_path / "dpo"
    args = ("finetune", pairs, "--objective", "dpo", "--model", model, "-o", out,
            "--save-every", "2", "--eval", data, "--eval-every", "2", "--eval-max-new-tokens",
            "4", "--best-metric", "cer")  # fmt: skip
    result = vlmkit(*args, "--max-steps", "2", "--merge")
    assert result.exit_code == 0, result.output
    assert (out / "merged" / "model.safetensors").is_file() and (out / "best").is_dir()
    result = vlmkit(*args, "--max-steps", "4", "--resume")
    assert result.exit_code == 0, result.output
    assert not (out / "merged").exists()  # the old weights' merge: gone with them
    log = read_jsonl(out / "log.jsonl")
    assert [row["step"] for row in log if "eval/cer" in row] == [2, 4]
    assert [row["step"] for row in log if "rewards/margins" in row] == [2, 4]
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["training"]["steps"] == 4 and manifest["best"]["metric"] == "cer"
    preds = tmp_path / "p.jsonl"
    assert (
        vlmkit("infer", data, "--adapter", out, "-o", preds, "--max-new-tokens", "4").exit_code == 0
    )


def test_an_init_adapter_merges(small, tmp_path):
    model, data, pairs = small
    sft = tmp_path / "sft"
    assert vlmkit("finetune", data, "--model", model, "-o", sft, "--max-steps", "1").exit_code == 0
    out = tmp_path / "dpo"
    result = vlmkit("finetune", pairs, "--objective", "dpo", "--model", model, "--init-adapter",
                    sft, "-o", out, "--max-steps", "2", "--merge")  # fmt: skip
    assert result.exit_code == 0, result.output
    merged = tmp_path / "merged.jsonl"
    assert vlmkit("infer", data, "--model", out / "merged", "-o", merged, "--max-new-tokens",
                  "4").exit_code == 0  # fmt: skip
    adapter = tmp_path / "adapter.jsonl"
    assert vlmkit("infer", data, "--adapter", out, "-o", adapter, "--max-new-tokens",
                  "4").exit_code == 0  # fmt: skip
    assert [r["prediction"] for r in read_jsonl(merged)] == [
        r["prediction"] for r in read_jsonl(adapter)
    ]


def test_more_bad_dpo_inputs(small, tmp_path):
    import shutil

    model, data, pairs = small
    args = ("finetune", pairs, "--objective", "dpo", "--model", model, "-o", tmp_path / "a")
    _refused(vlmkit(*args, "--beta", "inf"), 2, "--beta must be above 0")
    _refused(vlmkit(*args, "--dpo-loss", "sigmoid,,sft"), 2, "name each loss once")
    _refused(vlmkit(*args, "--eval", pairs), 1, "has no target (a preference pair)")
    sft = tmp_path / "sft"
    assert vlmkit("finetune", data, "--model", model, "-o", sft, "--max-steps", "1").exit_code == 0
    _refused(vlmkit(*args, "--init-adapter", sft, "--lora-r", "8"), 2,
             "--lora-r does not apply with --init-adapter")  # fmt: skip
    (sft / "vlmkit-adapter.json").unlink()  # an unfinished run
    _refused(vlmkit(*args, "--init-adapter", sft), 1, "its training has not finished")
    changes = (({"chosen": None}, "field 'chosen' is null, not text"),
               ({"rejected": 7}, "field 'rejected' is a number, not text"),
               ({"rejected": "a <image> b"}, "holds the image placeholder"))  # fmt: skip
    for number, (change, message) in enumerate(changes):
        bad = Path(shutil.copytree(pairs, tmp_path / f"bad{number}", symlinks=True))
        rows = read_jsonl(pairs / "metadata.jsonl")
        rows[0].update(change)
        (bad / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        result = vlmkit("finetune", bad, "--objective", "dpo", "--model", model, "-o",
                        tmp_path / "a")  # fmt: skip
        _refused(result, 1, message)
    assert not (tmp_path / "a").exists()

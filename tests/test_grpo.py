"""`vlmkit finetune --objective grpo` on tiny models: it learns from vlmkit's metrics as rewards,
the reward it logs for a completion is the score `vlmkit score --per-sample` gives it, it trains
the families TRL's GRPOTrainer handles and refuses the others before loading them.

The learning check: circled-letter images (real synth output) of words made of one letter, so
that held-out images share the training answer. A short SFT leaves the tiny model answering
noise greedily; GRPO from that adapter, rewarded by letter_accuracy, finds the answer among its
samples and keeps it, which `vlmkit infer --adapter` then shows on the held-out split.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_helpers import memory_dataset, read_jsonl, vlmkit

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

GRPO_FAMILIES = ("idefics3", "qwen2-vl", "qwen2.5-vl", "gemma3", "llava")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("grpo")
    assert vlmkit("tiny-model", root / "idefics3", "--family", "idefics3").exit_code == 0
    words = root / "words.txt"
    words.write_text("".join("e" * n + "\n" for n in range(2, 8)), encoding="utf-8")
    result = vlmkit("synth", "circled-letter", "--words", words, "--min-length", "2",
                    "--max-length", "7", "--n", "24", "--test-fraction", "0.34",
                    "--image-size", "128", "--workers", "1", "--seed", "5",
                    "-o", root / "letters")  # fmt: skip
    assert result.exit_code == 0, result.output
    return root / "idefics3", root / "letters"


def _grpo(data: Path, model: Path, out: Path, *args: str | Path):
    return vlmkit("finetune", data, "--model", model, "-o", out, "--objective", "grpo",
                  "--batch-size", "8", "--num-generations", "8",
                  "--max-completion-length", "4", *args)  # fmt: skip


def _letter_accuracy(data: Path, adapter: Path, preds: Path) -> float:
    result = vlmkit("infer", data, "--adapter", adapter, "-o", preds, "--max-new-tokens", "6")
    assert result.exit_code == 0, result.output
    scored = vlmkit("score", preds, data, "-m", "letter_accuracy", "--json", "-")
    return json.loads(scored.stdout)["metrics"]["letter_accuracy"]


def test_grpo_after_sft_learns_on_held_out_images(setup, tmp_path: Path):
    model, letters = setup
    sft = tmp_path / "sft"
    result = vlmkit("finetune", letters / "train", "--model", model, "-o", sft,
                    "--max-steps", "2", "--lr", "2e-3", "--batch-size", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    before = _letter_accuracy(letters / "test", sft, tmp_path / "sft.jsonl")
    assert before < 0.5  # a short SFT: greedy answers are still noise
    out = tmp_path / "grpo"
    result = _grpo(letters / "train", model, out, "--init-adapter", sft,
                   "--reward", "letter_accuracy", "--max-steps", "30", "--lr", "5e-3",
                   "--temperature", "0.3", "--logging-steps", "3", "--eval", letters / "test",
                   "--eval-every", "15", "--eval-max-new-tokens", "6",
                   "--best-metric", "letter_accuracy")  # fmt: skip
    assert result.exit_code == 0, result.output
    log = read_jsonl(out / "log.jsonl")
    rewards = [row["rewards/letter_accuracy/mean"] for row in log
               if "rewards/letter_accuracy/mean" in row]  # fmt: skip
    assert rewards[-1] > rewards[0]
    held_out = [row["eval/letter_accuracy"] for row in log if "eval/letter_accuracy" in row]
    assert held_out[-1] > before
    after = _letter_accuracy(letters / "test", out, tmp_path / "grpo.jsonl")
    assert after > before
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["objective"] == "grpo"
    assert manifest["reward"]["sum"] == "reward = 1 * letter_accuracy"
    assert manifest["reward"]["num_generations"] == 8 and manifest["reward"]["beta"] == 0.0
    # Every group-of-8 sample was logged with its reward; the report draws the curves.
    completions = read_jsonl(out / "completions.jsonl")
    assert len(completions) == 30 * 8 and {"step", "id", "completion", "rewards"} <= set(
        completions[0]
    )
    page = tmp_path / "grpo.html"
    assert vlmkit("report", out, "--out", page).exit_code == 0
    html = page.read_text()
    assert "reward per step" in html and "share of groups that teach nothing" in html


def test_the_logged_reward_is_the_per_sample_score(setup, tmp_path: Path):
    model, _ = setup
    data = tmp_path / "json"
    (data / "images").mkdir(parents=True)
    memory = memory_dataset(tmp_path / "memory")
    rows = []
    for i, target in enumerate(['{"total": "7"}', '{"name": "ana", "total": "12.50"}']):
        (data / "images" / f"{i}.png").write_bytes((memory / "images" / f"{i}.png").read_bytes())
        rows.append({"id": f"j{i}", "file_name": f"images/{i}.png", "task": "json",
                     "prompt": "Read the receipt as JSON.", "target": target})  # fmt: skip
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "grpo"
    result = _grpo(data, model, out, "--reward", "field_f1=1,cer=0.5,format=0.2",
                   "--max-steps", "2", "--num-generations", "4", "--batch-size", "4",
                   "--temperature", "1.5", "--max-completion-length", "12")  # fmt: skip
    assert result.exit_code == 0, result.output
    completions = read_jsonl(out / "completions.jsonl")
    targets = {row["id"]: row["target"] for row in rows}
    refs = [{"id": f"c{k}", "task": "json", "target": targets[c["id"]]}
            for k, c in enumerate(completions)]  # fmt: skip
    preds = [{"id": f"c{k}", "prediction": c["completion"]} for k, c in enumerate(completions)]
    (tmp_path / "refs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refs))
    (tmp_path / "preds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in preds))
    per_sample = tmp_path / "per-sample.jsonl"
    scored = vlmkit("score", tmp_path / "preds.jsonl", tmp_path / "refs.jsonl", "-m",
                    "field_f1,cer,json_strict", "--per-sample", per_sample)  # fmt: skip
    assert scored.exit_code == 0, scored.output
    for logged, row in zip(completions, read_jsonl(per_sample), strict=True):
        assert logged["rewards"]["field_f1"] == row["scores"]["field_f1"]
        assert logged["rewards"]["cer"] == 1 - min(row["scores"]["cer"], 1)
        assert logged["rewards"]["format"] == row["scores"]["json_strict"]
        parts = logged["rewards"]
        assert logged["reward"] == pytest.approx(
            parts["field_f1"] + 0.5 * parts["cer"] + 0.2 * parts["format"]
        )


@pytest.mark.parametrize(
    ("family", "method"), [*((family, "lora") for family in GRPO_FAMILIES), ("idefics3", "qlora")]
)
def test_grpo_trains_each_family_trl_handles(setup, tmp_path: Path, family: str, method: str):
    _, letters = setup
    model = tmp_path / family
    assert vlmkit("tiny-model", model, "--family", family).exit_code == 0
    _same_prompt_tokens_as_infer(model, letters / "train")
    out = tmp_path / "grpo"
    result = _grpo(letters / "train", model, out, "--reward", "letter_accuracy,format=0.2",
                   "--max-steps", "2", "--logging-steps", "1", "--num-generations", "4",
                   "--batch-size", "4", "--method", method)  # fmt: skip
    assert result.exit_code == 0, result.output
    log = read_jsonl(out / "log.jsonl")
    assert any("rewards/format/mean" in row and "frac_reward_zero_std" in row for row in log)
    assert (out / "adapter_model.safetensors").is_file()


def _same_prompt_tokens_as_infer(model: Path, data: Path) -> None:
    """TRL's own prompt tokenisation (GRPOTrainer._tokenize_prompts, run on the rows vlmkit
    gives it) yields the tokens of the prompt `vlmkit infer` sends with the same image."""
    from types import SimpleNamespace

    from trl import GRPOTrainer
    from trl.data_utils import prepare_multimodal_messages

    from vlmkit.finetune.data import read_training_data
    from vlmkit.finetune.objectives import objective_named
    from vlmkit.images import open_rgb
    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source
    from vlmkit.prompts import adds_special_tokens, format_prompt, images_argument

    loaded = load_model(resolve_source(str(model), None), LoadOptions())
    processor, family = loaded.processor, loaded.family
    grpo = objective_named("grpo")
    examples = grpo.examples(read_training_data(data, None, flag="D"))
    row = grpo.dataset(examples)[0]  # as the trainer reads it: through Arrow, image decoded
    example, image = examples[0], open_rgb(examples[0]["image"])
    assert row["image"].tobytes() == image.tobytes()
    trainer = SimpleNamespace(processing_class=processor, _is_vlm=True, chat_template=None,
                              environment_factories=None, tools=None,
                              chat_template_kwargs={})  # fmt: skip
    prompt = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    trl_ids, _, _ = GRPOTrainer._tokenize_prompts(trainer, [prompt])
    text = format_prompt(processor, family, example["text"])
    ours = processor(text=[text], images=images_argument(family, [image]),
                     add_special_tokens=adds_special_tokens(processor, text))  # fmt: skip
    assert list(trl_ids[0]) == list(ours["input_ids"][0])


def test_a_resumed_run_samples_the_prompts_an_uninterrupted_one_does(setup, tmp_path: Path):
    """Across an epoch boundary (16 prompts, 2 per step: 8 steps an epoch)."""
    model, letters = setup
    args = ("--reward", "letter_accuracy", "--num-generations", "4", "--batch-size", "8",
            "--save-every", "2")  # fmt: skip
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert _grpo(letters / "train", model, whole, *args, "--max-steps", "12").exit_code == 0
    assert _grpo(letters / "train", model, parts, *args, "--max-steps", "10").exit_code == 0
    result = _grpo(letters / "train", model, parts, *args, "--max-steps", "12", "--resume")
    assert result.exit_code == 0, result.output

    def prompts(out: Path) -> list[tuple[int, str]]:
        return [(row["step"], row["id"]) for row in read_jsonl(out / "completions.jsonl")]

    assert prompts(parts) == prompts(whole)


def test_resume_cuts_the_completions_back_to_its_checkpoint(setup, tmp_path: Path):
    model, letters = setup
    out = tmp_path / "grpo"
    args = ("--reward", "letter_accuracy", "--save-every", "2", "--num-generations", "4",
            "--batch-size", "4")  # fmt: skip
    assert _grpo(letters / "train", model, out, *args, "--max-steps", "2").exit_code == 0
    # A kill after the checkpoint at step 2 leaves step 3's rows (and a torn line) behind.
    killed = {"step": 3, "id": "left-by-a-kill", "completion": "x", "rewards": {}, "reward": 0}
    with open(out / "completions.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(killed) + "\n" + '{"step": 3, "id": "torn')
    result = _grpo(letters / "train", model, out, *args, "--max-steps", "4", "--resume")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "completions.jsonl")
    assert "left-by-a-kill" not in {row["id"] for row in rows}
    steps = [row["step"] for row in rows]
    assert steps == sorted(steps) and set(steps) == {1, 2, 3, 4}
    assert steps.count(3) == 4  # one group of four for step 3, none left over from a kill


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "--objective grpo needs --reward"),
        (("--reward", "field_f1"), "--reward field_f1: the letter task does not produce it"),
        (("--reward", "letter_accuracy=x"), "the weight of letter_accuracy is 'x'"),
        (("--reward", "hf_bleu"), "hf_bleu: it is a corpus-level figure"),
        (("--reward", "cer", "--num-generations", "1"), "--num-generations must be at least 2"),
        (("--reward", "cer", "--temperature", "0"), "--temperature must be above 0"),
        (
            (
                "--reward",
                "letter_accuracy",
                "--batch-size",
                "4",
                "--num-generations",
                "8",
                "--save-every",
                "3",
            ),
            "serves 2 optimizer steps (--batch-size 4, --grad-accum 1)",
        ),
    ],
)
def test_bad_grpo_settings_stop_before_the_model_loads(setup, tmp_path, args, said):
    model, letters = setup
    out = tmp_path / "grpo"
    result = vlmkit("finetune", letters / "train", "--model", model, "-o", out,
                    "--objective", "grpo", *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.stderr.split())
    assert not out.exists()


def test_grpo_refuses_what_it_cannot_train(setup, tmp_path: Path):
    model, letters = setup
    pairs = tmp_path / "pairs"
    (pairs / "images").mkdir(parents=True)
    (pairs / "images" / "0.png").write_bytes((letters / "train" / "images" / "000000.png")
                                             .read_bytes())  # fmt: skip
    (pairs / "metadata.jsonl").write_text(json.dumps(
        {"id": "p", "file_name": "images/0.png", "task": "letter", "prompt": "Which?",
         "chosen": "{e}", "rejected": "{a}"}) + "\n")  # fmt: skip
    result = vlmkit("finetune", pairs, "--model", model, "-o", tmp_path / "a",
                    "--objective", "grpo", "--reward", "letter_accuracy")  # fmt: skip
    assert result.exit_code == 1 and "has a preference pair" in result.stderr
    result = vlmkit("finetune", letters / "train", "--model", model, "-o", tmp_path / "b",
                    "--reward", "letter_accuracy")  # fmt: skip
    assert result.exit_code == 2 and "--reward applies to --objective grpo" in result.stderr
    paligemma = tmp_path / "paligemma"
    assert vlmkit("tiny-model", paligemma, "--family", "paligemma2").exit_code == 0
    (paligemma / "model.safetensors").unlink()  # refused from its config alone
    result = vlmkit("finetune", letters / "train", "--model", paligemma, "-o", tmp_path / "c",
                    "--objective", "grpo", "--reward", "letter_accuracy")  # fmt: skip
    assert result.exit_code == 2
    assert "--objective grpo cannot train PaliGemma 2" in " ".join(result.stderr.split())
    assert not (tmp_path / "c").exists()


def test_trl_would_score_paligemma_completions_seeing_their_future(tmp_path: Path):
    """Why GRPO refuses PaliGemma even with a chat template attached (with one, TRL trains
    without an error): TRL extends `token_type_ids` with zeros over the completion, and
    PaliGemma reads 0 as its bidirectional prefix, so each completion token would be scored
    seeing the tokens after it. Generation extends them with ones (causal), as training must."""
    import torch

    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source

    model_dir = tmp_path / "paligemma2"
    assert vlmkit("tiny-model", model_dir, "--family", "paligemma2").exit_code == 0
    loaded = load_model(resolve_source(str(model_dir), None), LoadOptions())
    from PIL import Image

    image = Image.new("RGB", (64, 64), "white")
    prompt = loaded.processor(text=["<image>Which letter?"], images=[image],
                              return_tensors="pt")  # fmt: skip
    first = {}
    for last in (5, 9):  # two completions that differ in their second token only
        completion = torch.tensor([[7, last]])
        ids = torch.cat([prompt["input_ids"], completion], dim=1)
        for extension in ("zeros", "ones"):
            new = getattr(completion, f"new_{extension}")(completion.shape)
            types = torch.cat([prompt["token_type_ids"], new], dim=1)
            with torch.no_grad():
                logits = loaded.model(input_ids=ids, pixel_values=prompt["pixel_values"],
                                      token_type_ids=types).logits  # fmt: skip
            # The logits after the completion's first token: they must not see the second.
            first[extension, last] = logits[0, prompt["input_ids"].shape[1]]
    assert not torch.allclose(first["zeros", 5], first["zeros", 9])  # TRL's: the future leaks
    assert torch.allclose(first["ones", 5], first["ones", 9])  # causal: it does not


def test_completions_name_the_optimizer_steps_their_generation_trained(setup, tmp_path: Path):
    """With --grad-accum 2 and one group of 4 per batch of 4: a generation of 8 answers
    (two groups) is one optimizer step's two batches."""
    model, letters = setup
    out = tmp_path / "grpo"
    result = _grpo(letters / "train", model, out, "--reward", "letter_accuracy",
                   "--max-steps", "2", "--batch-size", "4", "--num-generations", "4",
                   "--grad-accum", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "completions.jsonl")
    assert [row["step"] for row in rows] == [1] * 8 + [2] * 8
    assert all("last_step" not in row for row in rows)


def test_a_vqa_best_metric_without_answers_stops_before_training(setup, tmp_path: Path):
    model, letters = setup
    result = vlmkit("finetune", letters / "train", "--model", model, "-o", tmp_path / "o",
                    "--max-steps", "2", "--eval", letters / "test",
                    "--best-metric", "vqa_accuracy")  # fmt: skip
    assert result.exit_code == 2 and "vqa_accuracy: " in result.stderr
    assert "has no 'answers' list" in result.stderr and not (tmp_path / "o").exists()

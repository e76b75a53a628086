"""GRPO cost on this machine: `vlmkit finetune --objective grpo` against a plain script that uses
TRL's GRPOTrainer the way its documentation shows, on the same tiny model, data and generations.

The plain script is what a user would otherwise write: the model and processor from
`from_pretrained`, a dataset of conversational prompts with an `image` column, a reward
function written by hand (the `{x}` letter compared with the target, what `--reward
letter_accuracy_strict` computes), a `LoraConfig` on `all-linear` layers, `GRPOConfig` set for
a CPU (fp32, no gradient checkpointing, like vlmkit; vlmkit adapts the language model's linear
layers, TRL's recipe every linear layer). Each side is a whole process; steps/s is
each trainer's own training time, peak resident memory is sampled from /proc. vlmkit's side
also scores every completion with its metric code and writes completions.jsonl.

    python bench/bench_grpo.py                        # idefics3, 20 steps, 8 generations
    python bench/bench_grpo.py --family qwen2-vl --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from peak_memory import run_measured  # bench/ is on sys.path: scripts run from there


def plain_trl(data: Path, model_dir: Path, out: Path, args: argparse.Namespace) -> None:
    """TRL's GRPO recipe for a VLM with a hand-written reward (run in its own process)."""
    import re

    import torch
    from datasets import Dataset, Image
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(model_dir)
    rows = []
    for line in (data / "metadata.jsonl").read_text().splitlines():
        record = json.loads(line)
        rows.append({
            "image": str(data / record["file_name"]),
            "prompt": [{"role": "user", "content": [{"type": "image"},
                                                    {"type": "text", "text": record["prompt"]}]}],
            "target": record["target"],
        })  # fmt: skip
    dataset = Dataset.from_list(rows).cast_column("image", Image(mode="RGB"))

    def letter_reward(completions, target, **kwargs):
        out = []
        for completion, expected in zip(completions, target, strict=True):
            found = re.findall(r"\{\s*([^\s{}])\s*\}", completion[0]["content"])
            out.append(float(bool(found) and found[-1].lower() == expected.lower()))
        return out

    config = GRPOConfig(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        num_generations=args.generations, max_completion_length=args.completion_length,
        learning_rate=2e-4, logging_steps=5, save_strategy="no", report_to="none",
        use_cpu=True, bf16=False, gradient_checkpointing=False, seed=0,
    )  # fmt: skip
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")  # fmt: skip
    trainer = GRPOTrainer(model=model, reward_funcs=[letter_reward], args=config,
                          train_dataset=dataset, processing_class=processor,
                          peft_config=lora)  # fmt: skip
    result = trainer.train()
    trainer.save_model(str(out))
    (out / "timing.json").write_text(json.dumps({"seconds": result.metrics["train_runtime"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="idefics3")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=16)
    parser.add_argument("--worker", nargs=3, metavar=("DATA", "MODEL", "OUT"))
    args = parser.parse_args()
    if args.worker:
        data, model, out = map(Path, args.worker)
        plain_trl(data, model, out, args)
        return
    vlmkit = [sys.executable, "-m", "vlmkit"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for step in (
            ["tiny-model", root / "model", "--family", args.family],
            ["synth", "circled-letter", "--n", "64", "--test-fraction", "0", "--image-size",
             "128", "--max-length", "6", "-o", root / "data"],
        ):  # fmt: skip
            subprocess.run([*vlmkit, *map(str, step)], check=True, capture_output=True)
        rows = []
        command = [*vlmkit, "finetune", str(root / "data"), "--objective", "grpo",
                   "--reward", "letter_accuracy_strict", "--model", str(root / "model"),
                   "-o", str(root / "vlmkit"), "--max-steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--num-generations",
                   str(args.generations), "--max-completion-length",
                   str(args.completion_length)]  # fmt: skip
        seconds, peak, _ = run_measured(command)
        training = json.loads((root / "vlmkit" / "vlmkit-adapter.json").read_text())["training"]
        rows.append(("vlmkit", args.steps / training["seconds"], seconds, peak))
        command = [sys.executable, __file__, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--generations", str(args.generations),
                   "--completion-length", str(args.completion_length), "--worker",
                   str(root / "data"), str(root / "model"), str(root / "plain")]  # fmt: skip
        seconds, peak, _ = run_measured(command)
        timing = json.loads((root / "plain" / "timing.json").read_text())
        rows.append(("plain TRL", args.steps / timing["seconds"], seconds, peak))
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print(f"{args.family} tiny model, 64 prompts, {args.steps} GRPO steps of batch "
          f"{args.batch_size}, {args.generations} generations of up to {args.completion_length} "
          f"tokens, CPU (threads: {threads})")  # fmt: skip
    print(f"{'':10} {'steps/s':>8} {'process s':>10} {'peak MB':>8}")
    for name, rate, seconds, peak in rows:
        print(f"{name:10} {rate:8.2f} {seconds:10.1f} {peak:8.0f}")
    print(f"vlmkit step time / plain TRL step time: {rows[1][1] / rows[0][1]:.2f}x")
    print(f"vlmkit peak memory / plain TRL peak memory: {rows[0][3] / rows[1][3]:.2f}x")


if __name__ == "__main__":
    main()

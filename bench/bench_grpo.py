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

from trainer_race import print_race, race, save_timing  # bench/ is on sys.path


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
    save_timing(out, result)


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
        command = [*vlmkit, "finetune", str(root / "data"), "--objective", "grpo",
                   "--reward", "letter_accuracy_strict", "--model", str(root / "model"),
                   "-o", str(root / "vlmkit"), "--max-steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--num-generations",
                   str(args.generations), "--max-completion-length",
                   str(args.completion_length)]  # fmt: skip
        plain = [sys.executable, __file__, "--steps", str(args.steps), "--batch-size",
                 str(args.batch_size), "--generations", str(args.generations),
                 "--completion-length", str(args.completion_length), "--worker",
                 str(root / "data"), str(root / "model"), str(root / "plain")]  # fmt: skip
        rows = race(args.steps, command, root / "vlmkit", plain, root / "plain")
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print_race(f"{args.family} tiny model, 64 prompts, {args.steps} GRPO steps of batch "
               f"{args.batch_size}, {args.generations} generations of up to "
               f"{args.completion_length} tokens, CPU (threads: {threads})", rows)  # fmt: skip


if __name__ == "__main__":
    main()

"""DPO cost on this machine: `vlmkit finetune --objective dpo` against a plain script that uses
TRL's DPOTrainer the way TRL's `dpo_vlm.py` example does, on the same tiny model and pairs.

The plain script is what a user would otherwise write: the model and processor from
`from_pretrained`, a dataset of conversational `prompt`/`chosen`/`rejected` rows with their
`images`, TRL's own vision collator, a `LoraConfig` on `all-linear` layers, `DPOConfig` set for
a CPU (fp32, no gradient checkpointing, like vlmkit). Each side is a whole process; steps/s is
each trainer's own training time, peak resident memory is sampled from /proc.

    python bench/bench_dpo.py                       # idefics3, 30 steps, batch 4
    python bench/bench_dpo.py --family qwen2-vl --steps 60
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


def plain_trl(pairs: Path, model_dir: Path, out: Path, steps: int, batch: int) -> None:
    """TRL's DPO recipe for a VLM, as its example script writes it (run in its own process)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(model_dir)
    rows = []
    for line in (pairs / "metadata.jsonl").read_text().splitlines():
        record = json.loads(line)
        image = Image.open(pairs / record["file_name"]).convert("RGB")
        rows.append({
            "images": [image],
            "prompt": [{"role": "user", "content": [{"type": "image"},
                                                    {"type": "text", "text": record["prompt"]}]}],
            "chosen": [{"role": "assistant", "content": [{"type": "text",
                                                          "text": record["chosen"]}]}],
            "rejected": [{"role": "assistant", "content": [{"type": "text",
                                                            "text": record["rejected"]}]}],
        })  # fmt: skip
    config = DPOConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=2e-4, logging_steps=10, save_strategy="no", report_to="none",
        use_cpu=True, bf16=False, gradient_checkpointing=False, seed=0,
    )  # fmt: skip
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")  # fmt: skip
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=processor, peft_config=lora)  # fmt: skip
    result = trainer.train()
    trainer.save_model(str(out))
    save_timing(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="idefics3")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--worker", nargs=3, metavar=("PAIRS", "MODEL", "OUT"))
    args = parser.parse_args()
    if args.worker:
        pairs, model, out = map(Path, args.worker)
        plain_trl(pairs, model, out, args.steps, args.batch_size)
        return
    vlmkit = [sys.executable, "-m", "vlmkit"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for step in (
            ["tiny-model", root / "model", "--family", args.family],
            ["synth", "circled-letter", "--n", "64", "--test-fraction", "0", "--image-size",
             "128", "--max-length", "6", "-o", root / "data"],
            ["infer", root / "data", "--model", root / "model", "-o", root / "base.jsonl",
             "--max-new-tokens", "8"],
            ["pairs", root / "data", root / "base.jsonl", "-o", root / "pairs"],
        ):  # fmt: skip
            subprocess.run([*vlmkit, *map(str, step)], check=True, capture_output=True)
        pairs = len((root / "pairs" / "metadata.jsonl").read_text().splitlines())
        command = [*vlmkit, "finetune", str(root / "pairs"), "--objective", "dpo", "--model",
                   str(root / "model"), "-o", str(root / "vlmkit"), "--max-steps",
                   str(args.steps), "--batch-size", str(args.batch_size)]  # fmt: skip
        plain = [sys.executable, __file__, "--steps", str(args.steps), "--batch-size",
                 str(args.batch_size), "--worker", str(root / "pairs"), str(root / "model"),
                 str(root / "plain")]  # fmt: skip
        rows = race(args.steps, command, root / "vlmkit", plain, root / "plain")
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print_race(f"{args.family} tiny model, {pairs} pairs, {args.steps} DPO steps of batch "
               f"{args.batch_size}, CPU (threads: {threads})", rows)  # fmt: skip


if __name__ == "__main__":
    main()

"""Fine-tuning cost on this machine: `vlmkit finetune` LoRA fp32 against QLoRA 4-bit, steps/s and
peak memory, on a tiny model (`vlmkit tiny-model`) and the circled-letter task.

Each run is a whole process (imports, loading, the budget check, training, saving the adapter
and manifest), timed with its peak resident memory; steps/s is the trainer's own, from the
manifest. A real-size model needs a GPU: no GPU was lent to measure one yet.

    python bench/bench_finetune.py                       # idefics3, 40 steps, batch 4
    python bench/bench_finetune.py --family paligemma --steps 80
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="idefics3")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    vlmkit = [sys.executable, "-m", "vlmkit"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([*vlmkit, "tiny-model", root / "model", "--family", args.family],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([*vlmkit, "synth", "circled-letter", "--n", "64", "--test-fraction", "0",
                        "--image-size", "128", "--max-length", "6", "-o", root / "data"],
                       check=True, capture_output=True)  # fmt: skip
        rows = []
        for method in ("lora", "qlora"):
            out = root / method
            command = [*vlmkit, "finetune", str(root / "data"), "--model", str(root / "model"),
                       "-o", str(out), "--method", method, "--max-steps", str(args.steps),
                       "--batch-size", str(args.batch_size)]  # fmt: skip
            seconds, peak, _ = run_measured(command)
            training = json.loads((out / "vlmkit-adapter.json").read_text())["training"]
            rows.append((method, args.steps / training["seconds"], seconds, peak))
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print(f"{args.family} tiny model, {args.steps} steps of batch {args.batch_size}, CPU "
          f"(threads: {threads})")  # fmt: skip
    print(f"{'method':8} {'steps/s':>8} {'process s':>10} {'peak MB':>8}")
    for method, rate, seconds, peak in rows:
        print(f"{method:8} {rate:8.2f} {seconds:10.1f} {peak:8.0f}")
    print(f"QLoRA step time / LoRA step time: {rows[0][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()

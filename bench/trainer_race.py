"""One fine-tuning objective raced against a plain TRL script: the same steps, whole processes.

Shared by bench_dpo.py and bench_grpo.py. Steps/s is each trainer's own training time (vlmkit's
from its manifest, the plain script's from TRL's `train_runtime`, written to timing.json);
peak resident memory is sampled from /proc by peak_memory.run_measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peak_memory import run_measured  # bench/ is on sys.path: scripts run from there

Row = tuple[str, float, float, float]
"""(who, steps/s, process seconds, peak MB)."""


def save_timing(out: Path, result: Any) -> None:
    """What the plain script's trainer measured (`trainer.train()`'s result), for the race."""
    (out / "timing.json").write_text(json.dumps({"seconds": result.metrics["train_runtime"]}))


def race(steps: int, vlmkit: list[str], vlmkit_out: Path, plain: list[str],
         plain_out: Path) -> list[Row]:  # fmt: skip
    """Run both commands, one after the other, and measure them."""
    seconds, peak, _ = run_measured(vlmkit)
    training = json.loads((vlmkit_out / "vlmkit-adapter.json").read_text())["training"]
    rows = [("vlmkit", steps / training["seconds"], seconds, peak)]
    seconds, peak, _ = run_measured(plain)
    timing = json.loads((plain_out / "timing.json").read_text())
    rows.append(("plain TRL", steps / timing["seconds"], seconds, peak))
    return rows


def print_race(title: str, rows: list[Row]) -> None:
    print(title)
    print(f"{'':10} {'steps/s':>8} {'process s':>10} {'peak MB':>8}")
    for name, rate, seconds, peak in rows:
        print(f"{name:10} {rate:8.2f} {seconds:10.1f} {peak:8.0f}")
    print(f"vlmkit step time / plain TRL step time: {rows[1][1] / rows[0][1]:.2f}x")
    print(f"vlmkit peak memory / plain TRL peak memory: {rows[0][3] / rows[1][3]:.2f}x")

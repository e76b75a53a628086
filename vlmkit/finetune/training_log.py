"""The training log: `OUT/log.jsonl` and the caller's progress as the run goes, and the loss
figure the manifest records.

A resumed run continues the log from its checkpoint's step: the lines the killed run wrote
after that checkpoint describe steps that are trained again, so they are dropped, and the log
of a resumed run reads like that of a run never stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from vlmkit.records import write_text_atomic


@dataclass(frozen=True)
class Hooks:
    """How the caller hears about progress (the CLI draws a bar and prints lines)."""

    on_start: Callable[[int], None] = lambda max_steps: None
    on_step: Callable[[int, float | None], None] = lambda step, loss: None
    on_scores: Callable[[int, dict[str, float]], None] = lambda step, scores: None


class TrainingLog(TrainerCallback):
    """Losses (and the trainer's other logs) to `path`, one JSON line each, and to `hooks`."""

    def __init__(
        self, path: Path, hooks: Hooks, *, resumed: bool, also: tuple[Path, ...] = ()
    ) -> None:
        self.path, self.hooks, self.resumed, self.loss = path, hooks, resumed, None
        self.also = also
        """Other per-step logs a resume cuts back the same way (GRPO's completions)."""

    def on_train_begin(self, args, state, control, **kwargs):
        # The trainer has restored the checkpoint's state by now: its step is where we are.
        if self.resumed and state.is_world_process_zero:
            for path in (self.path, *self.also):
                keep_until(path, state.global_step)
        self.hooks.on_start(state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.loss = logs.get("loss", self.loss)
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        if "train_loss" in row:
            # The trainer's end-of-run line: its loss covers only this `train()` call, a part
            # of a resumed run; the log says what the manifest says.
            row["train_loss"], last = whole_run_loss(state.log_history)
            row["train_loss_covers"] = f"steps 1-{last}" if last else None
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.hooks.on_step(state.global_step, self.loss)


def keep_until(path: Path, step: int) -> None:
    """Drop the lines of `path` logged after `step` (a line cut short by a kill too)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the last line of a killed run may be half-written
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))


def whole_run_loss(log_history: list[dict[str, Any]]) -> tuple[float | None, int | None]:
    """The mean training loss over every step logged, and the last step it covers.

    Each logged loss is the mean over the steps since the previous one, so the mean over the
    run weighs each by its steps. The trainer's own `training_loss` covers only the steps of
    its last `train()` call, which after a `--resume` is a part of the run; the trainer's state
    (restored from the checkpoint) holds every logged loss, so this figure is the same for a
    resumed run as for an uninterrupted one.
    """
    total, previous = 0.0, 0
    for row in log_history:
        if "loss" in row and isinstance(row.get("step"), int) and row["step"] > previous:
            total += float(row["loss"]) * (row["step"] - previous)
            previous = row["step"]
    return (total / previous, previous) if previous else (None, None)

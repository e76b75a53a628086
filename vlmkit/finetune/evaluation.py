"""Evaluation by generation during training: the infer code answers, vlmkit's metrics score.

Teacher-forced logits flatter a model (each token is predicted from the true previous ones);
what a user will get is free generation. Every `--eval-every` steps the model answers
`--eval-samples` eval samples greedily through `vlmkit infer`'s transformers backend, and the
answers are scored with the task's default metrics, exactly as `vlmkit score` would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from vlmkit.finetune.data import TrainingData
from vlmkit.infer.backends.hf_transformers import TransformersBackend
from vlmkit.infer.selection import Sample
from vlmkit.infer.settings import GenerationSettings
from vlmkit.metrics import metric_class
from vlmkit.models.loading import LoadedModel
from vlmkit.scoring import Joined, ScoreConfig, choose_metrics, evaluate

log = logging.getLogger(__name__)

BEST_SCORE = "best-score.json"
"""Beside the best adapter: its metric, value and step, so `--resume` knows what to beat."""


def generation_scores(
    loaded: LoadedModel,
    data: TrainingData,
    samples: int,
    max_new_tokens: int,
    also: str | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy answers to the first `samples` records of `data`, scored with the task's default
    metrics (and metric `also`); and the answers."""
    records = data.sample(samples)
    predictor = TransformersBackend(loaded, GenerationSettings(max_new_tokens=max_new_tokens))
    questions = [Sample(r.id, data.folder / r.file_name, r.prompt) for r in records]
    answers = predictor.predict(questions)
    joined = Joined(
        references=data.references(records),
        predictions=[a.prediction if a.error is None else "" for a in answers],
        prediction_records=[a.to_json() for a in answers],
        missing=[],
        errored=[a.id for a in answers if a.error is not None],
        prediction_path=Path("(generated during training)"),
        reference_path=data.folder,
    )
    _, defaults = choose_metrics(joined, ScoreConfig())
    names = tuple(dict.fromkeys([*defaults, *([also] if also else [])]))
    evaluation = evaluate(joined, ScoreConfig(metrics=names))
    return evaluation.values(), [a.to_json() for a in answers]


def better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new > old if metric_class(metric).higher_is_better else new < old


class GenerationEvalCallback(TrainerCallback):
    """Scores generated answers every `every` steps and at the end; keeps the best adapter."""

    def __init__(
        self,
        loaded: LoadedModel,
        data: TrainingData,
        *,
        samples: int,
        max_new_tokens: int,
        every: int | None,
        best_metric: str | None,
        best_dir: Path,
        on_scores: Callable[[int, dict[str, float]], None],
        resumed: bool = False,
    ) -> None:
        self.loaded, self.data = loaded, data
        self.samples, self.max_new_tokens, self.every = samples, max_new_tokens, every
        self.best_metric, self.best_dir = best_metric, best_dir
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.last: dict[str, float] = {}
        self.on_scores = on_scores
        self.trainer: Any = None
        """Set once the trainer exists: scores are logged through it, to every tracker."""
        if resumed:  # the best so far is the one to beat, not the first score after resuming
            self._load_best()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if (
            self.every
            and state.global_step % self.every == 0
            and state.global_step < state.max_steps
        ):
            self.run(model, state.global_step, state.is_world_process_zero)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.run(model, state.global_step, state.is_world_process_zero)

    def run(self, model: Any, step: int, main_process: bool) -> None:
        if not main_process:
            return
        tokenizer = self.loaded.processor.tokenizer
        side, was_training = tokenizer.padding_side, model.training
        model.eval()
        try:
            loaded = dataclasses.replace(self.loaded, model=model)
            scores, _ = generation_scores(
                loaded, self.data, self.samples, self.max_new_tokens, also=self.best_metric
            )
        finally:
            tokenizer.padding_side = side
            model.train(was_training)
        self.last = scores
        if self.trainer is not None:
            self._log(scores)
        self.on_scores(step, scores)
        if self.best_metric is not None:
            value = scores.get(self.best_metric)
            if value is not None and better(self.best_metric, value, self.best_value):
                self.best_value, self.best_step = value, step
                best = {"metric": self.best_metric, "value": value, "step": step}
                _save_whole(model, self.best_dir, best)

    def _log(self, scores: dict[str, float]) -> None:
        """Scores to every tracker, through the base `Trainer.log`, leaving the training log as
        it was: logging resets the trainer's `should_log`, and TRL's `log` empties the metrics
        it gathered for the next loss line. This runs in the main process alone, so either
        would drop that step's loss line there only, and under several processes the others
        would then wait in a collective the main one skips (a gloo "collective mismatch")."""
        from transformers import Trainer

        control = self.trainer.control
        should_log = control.should_log
        Trainer.log(self.trainer, {f"eval/{name}": value for name, value in scores.items()})
        control.should_log = should_log

    def _load_best(self) -> None:
        try:
            best = json.loads((self.best_dir / BEST_SCORE).read_text("utf-8"))
        except (OSError, ValueError):
            return
        if best.get("metric") == self.best_metric:
            self.best_value, self.best_step = best.get("value"), best.get("step")


def _save_whole(model: Any, folder: Path, best: dict[str, Any]) -> None:
    """Save the adapter and its score into `folder` as one step: a kill mid-save leaves the
    previous best adapter whole (the new one is written beside it, then renamed)."""
    staging = folder.with_name(f".{folder.name}.partial")
    retired = folder.with_name(f".{folder.name}.old")
    for stale in (staging, retired):
        shutil.rmtree(stale, ignore_errors=True)
    model.save_pretrained(staging)
    (staging / BEST_SCORE).write_text(json.dumps(best) + "\n", "utf-8")
    if folder.exists():
        folder.rename(retired)
    staging.rename(folder)
    shutil.rmtree(retired, ignore_errors=True)

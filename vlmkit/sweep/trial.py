"""One trial: one `vlmkit finetune` run (its plan and execute, not a copy), judged by the
sweep's metric at its best evaluation, its evaluations reported to the pruner as they come.

A trial trains into SWEEP_DIR/trials/NNNN, NNNN the number of the trial first given these
values: a trial queued again after its worker died continues that folder from its last
checkpoint, and one whose run had finished before its worker died (the study not yet told)
takes the finished run's result without training at all.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.errors import VlmkitError
from vlmkit.finetune.output import BEST, has_checkpoint
from vlmkit.models.sources import ADAPTER_MANIFEST
from vlmkit.sweep.attributes import (
    BEST_STEP,
    DEVICE,
    ERROR,
    FOLDER,
    INTERRUPTED,
    ORIGIN,
    SURPLUS,
    WORKER,
)
from vlmkit.sweep.space import SweepSpace
from vlmkit.sweep.workers import WorkerLock, interrupted

log = logging.getLogger(__name__)

TRIALS = "trials"


class Surplus(Exception):
    """A trial started after the budget was taken (several workers start at once): it stops
    before training, and does not count."""


@dataclass(frozen=True)
class TrialHooks:
    """How the caller hears about trials (the CLI prints a line for each event)."""

    on_start: Callable[[int, dict[str, Any], str, int], None] = (
        lambda number, params, device, first_trial: None
    )
    on_scores: Callable[[int, int, dict[str, float]], None] = lambda number, step, scores: None
    on_resume: Callable[[int, Path], None] = lambda number, folder: None


@dataclass
class TrialRunner:
    """The study's objective: `study.optimize(TrialRunner(...))`."""

    space: SweepSpace
    sweep_dir: Path
    budget: int | None
    worker: WorkerLock
    device: str | None = None
    """A CUDA device this worker was given (its only visible one), or None: the settings'."""
    hooks: TrialHooks = field(default_factory=TrialHooks)

    def __call__(self, trial: Any) -> float:
        trial.set_user_attr(WORKER, self.worker.record())
        self._check_budget(trial)
        try:
            return self._run(trial)
        except KeyboardInterrupt:
            _queue_again(trial)
            raise
        except VlmkitError as error:
            trial.set_user_attr(ERROR, error.message)
            raise
        except Exception as error:
            if type(error).__name__ != "TrialPruned":
                trial.set_user_attr(ERROR, f"{type(error).__name__}: {error}")
            raise

    def _run(self, trial: Any) -> float:
        params = self.space.suggest(trial)
        origin = trial.user_attrs.get(ORIGIN, trial.number)
        trial.set_user_attr(ORIGIN, origin)
        folder = self.sweep_dir / TRIALS / f"{origin:04d}"
        trial.set_user_attr(FOLDER, str(folder.relative_to(self.sweep_dir)))
        fixed = {"best_metric": self.space.metric, **({"device": "cuda"} if self.device else {})}
        settings = self.space.trial_settings(params, **fixed)
        device = self._device_name(settings.device)
        trial.set_user_attr(DEVICE, device)
        self.hooks.on_start(trial.number, params, device, origin)
        finished = _finished_value(folder, self.space.metric)
        if finished is not None:  # trained before its worker died; the study was not told
            trial.set_user_attr(BEST_STEP, finished[1])
            return finished[0]
        return self._train(trial, folder, settings)

    def _train(self, trial: Any, folder: Path, settings: Any) -> float:
        import optuna

        from vlmkit.finetune.session import FinetuneRequest, execute, plan
        from vlmkit.finetune.training_log import Hooks

        resume = has_checkpoint(folder)
        if resume:
            self.hooks.on_resume(trial.number, folder)
        request = FinetuneRequest(
            train=self.space.train, model=self.space.model, out=folder, settings=settings,
            split=self.space.split, eval_dataset=self.space.eval,
            eval_split=self.space.eval_split, config_file=self.space.file, resume=resume,
            # The sweep's own folder, left unfinished without a checkpoint: started again.
            overwrite=not resume and folder.is_dir() and any(folder.iterdir()),
        )  # fmt: skip
        metric = self.space.metric

        def on_scores(step: int, scores: dict[str, float]) -> None:
            self.hooks.on_scores(trial.number, step, scores)
            if metric in scores:
                with warnings.catch_warnings():
                    # A trial continued from a checkpoint evaluates again at steps its first
                    # run reported (its evaluations carry over): Optuna keeps the first.
                    warnings.simplefilter("ignore")
                    trial.report(scores[metric], step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{metric} {scores[metric]:.4f} at step {step}")

        work = plan(request)
        report = execute(work, Hooks(on_scores=on_scores))
        if not report.best:
            raise VlmkitError(f"trial {trial.number} was never evaluated on {metric}")
        trial.set_user_attr(BEST_STEP, report.best["step"])
        return float(report.best["value"])

    def _check_budget(self, trial: Any) -> None:
        """Stop a trial that would exceed the budget: the trials numbered before it that are
        finished or running already take it (the lower number wins, so no two workers both
        stop, and none runs a trial too many)."""
        from optuna.trial import TrialState

        if self.budget is None:
            return
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        before = [
            t
            for t in trial.study.get_trials(deepcopy=False, states=counted)
            if t.number < trial.number
            and not t.user_attrs.get(SURPLUS)
            # A running trial whose worker is gone will be run again: it takes no place.
            and not (t.state == TrialState.RUNNING and interrupted(t))
        ]
        if len(before) >= self.budget:
            trial.set_user_attr(SURPLUS, True)
            trial.study.stop()
            raise Surplus(f"the budget of {self.budget} trials is taken")

    def _device_name(self, setting: str) -> str:
        if self.device is not None:
            return f"cuda:{self.device}"
        from vlmkit.models.loading import choose_device

        return choose_device(setting)


def _queue_again(trial: Any) -> None:
    """A trial stopped by Ctrl-C (which Optuna marks failed) is queued again, as one whose
    worker died is: the next run continues it from its last checkpoint."""
    from vlmkit.sweep.workers import retry_callback

    trial.set_user_attr(INTERRUPTED, True)
    frozen = trial.study._storage.get_trial(trial._trial_id)
    retry_callback()(trial.study, frozen)


def _finished_value(folder: Path, metric: str) -> tuple[float, int] | None:
    """The result of a finished run in `folder` (its manifest's best), if there is one."""
    try:
        manifest = json.loads((folder / ADAPTER_MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    best = manifest.get("best") or {}
    if best.get("metric") != metric or not (folder / BEST / ADAPTER_MANIFEST).is_file():
        return None
    return float(best["value"]), int(best["step"])

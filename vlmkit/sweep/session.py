"""One `vlmkit sweep` from request to study: every check first, then the trials.

`plan` reads the SPACE file, checks the data, model and settings as `vlmkit finetune` would
(its own checks, on the first trial's settings), the metric against the eval task, the
devices, SWEEP_DIR and the study's storage (reached now: an unreachable database fails here),
and that the study there is this sweep's. `prepare` (once per command) creates or resumes the
study and queues again the trials whose worker died; `work` (once per worker) runs Optuna's
`optimize` until the budget is spent.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.errors import InputError, UsageError, VlmkitError
from vlmkit.records import write_json_atomic
from vlmkit.sweep.attributes import INTERRUPTED, SURPLUS
from vlmkit.sweep.results import IMPORTANCES, TRIALS_FILE, update_best, write_snapshot
from vlmkit.sweep.space import Choice, SweepSpace, read_space
from vlmkit.sweep.storage import (
    IDENTITY,
    SWEEP_DIR_ATTR,
    StorageSpec,
    check_journal,
    delete_study,
    differences,
    open_storage,
    storage_spec,
    study_attributes,
)
from vlmkit.sweep.trial import TRIALS, Surplus, TrialHooks, TrialRunner
from vlmkit.sweep.workers import (
    WORKERS,
    WorkerLock,
    parse_devices,
    queue_failed_again,
    reclaim_interrupted,
    retry_callback,
)

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
OWN = {SWEEP_FILE, TRIALS, "best", TRIALS_FILE, IMPORTANCES, WORKERS, ".best.lock",
       ".snapshot.lock"}  # fmt: skip
"""What a sweep writes in SWEEP_DIR (besides its journal and the folders `best/` is built in)."""

ONLY_FOR_TASK = {
    "json": ("field_f1", "ted_accuracy", "json_valid", "json_strict"),
    "letter": ("letter_accuracy", "letter_accuracy_strict"),
}
"""Metrics that read one task's answers (JSON trees, letters); the text metrics read any."""

GIVE_UP_AFTER = (3, 10)
"""Failed trials in a row after which a worker stops, before any trial finished and after:
the fault is then not in the values (a missing driver, a full disk), and every further trial
would fail alike."""


@dataclass(frozen=True)
class SweepRequest:
    """Everything `vlmkit sweep` was asked."""

    space: Path
    out: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    """SPACE keys given as flags (None: not given)."""
    storage: str | None = None
    study: str | None = None
    workers: int | None = None
    devices: str | None = None
    overwrite: bool = False


@dataclass
class SweepPlan:
    request: SweepRequest
    space: SweepSpace
    storage_spec: StorageSpec
    storage: Any
    study_name: str
    devices: list[str | None]
    notices: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.request.out

    @property
    def budget(self) -> int | None:
        return self.space.budget()


def plan(request: SweepRequest) -> SweepPlan:
    """Every check, before any study is touched or any model loads."""
    from vlmkit.outputs import refuse_overlaps

    space = read_space(request.space, request.overrides)
    out = request.out
    spec = storage_spec(request.storage, out)
    storage_file = None if spec.own else spec.file
    if storage_file is not None and out.resolve() in storage_file.resolve().parents:
        raise UsageError(
            f"--storage {storage_file} is inside --out {out}, among the files the sweep writes",
            hint="leave --storage out (the study is then SWEEP_DIR/study.journal), or put it "
            "outside SWEEP_DIR",
        )
    refuse_overlaps(
        [("--out", out), ("--storage", storage_file)],
        [("SPACE", space.file), ("the train dataset", space.train),
         ("the eval dataset", space.eval), ("the model", space.model)],
    )  # fmt: skip
    check_journal(spec)
    _check_sweep_dir(out, request.overwrite)
    notices = list(space.notices) + _check_as_finetune(space, out)
    if request.workers is not None and request.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {request.workers}")
    devices = parse_devices(request.devices, request.workers)
    if request.study is not None and not request.study.strip():
        raise UsageError("--study is empty", hint="name the study, or leave --study out")
    study_name = request.study or out.resolve().name
    recorded = _read_sweep_file(out)
    if recorded and recorded.get("storage") != spec.key and not request.overwrite:
        raise UsageError(
            f"--out {out} holds a sweep whose study is in {recorded.get('storage')}, not "
            f"{spec.key}",
            hint="pass the same --storage (and --study) to continue it, --overwrite to start "
            "again, or choose another --out",
        )
    if space.settings.get("device") == "cuda" and devices == [None] * len(devices):
        _check_cuda()
    storage = open_storage(spec)
    _check_study(storage, study_name, space, out, request.overwrite, spec)
    return SweepPlan(request, space, spec, storage, study_name, devices, notices)


def _check_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise UsageError(
            '[settings] device = "cuda", and no CUDA GPU is visible',
            hint='use device = "cpu" (or "auto"), or run on a machine with a GPU',
        )


def _read_sweep_file(out: Path) -> dict[str, Any] | None:
    import json

    path = out / SWEEP_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{path} cannot be read ({error})", hint="--overwrite starts again"
        ) from None
    return data if isinstance(data, dict) else None


def _check_sweep_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", hint="give --out a folder for the sweep")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / SWEEP_FILE).is_file():
        raise UsageError(
            f"--out {out} holds files and is not a sweep's folder (no {SWEEP_FILE})",
            hint="choose a new folder for the sweep",
        )
    if overwrite:
        foreign = sorted(p.name for p in out.iterdir() if not _own(p.name))
        if foreign:
            raise UsageError(
                f"--overwrite would delete {out}, which holds files vlmkit sweep did not "
                f"write: {', '.join(foreign[:5])}",
                hint="move them out first, or choose another --out",
            )


def _own(name: str) -> bool:
    return name in OWN or name.startswith(("study.journal", ".best."))


# finetune's flags, as a SPACE file names them.
SPACE_KEYS = {"TRAIN_DATASET": "train", "--eval-split": "eval_split", "--eval": "eval",
              "--split": "split", "--model": "model"}  # fmt: skip


def _check_as_finetune(space: SweepSpace, out: Path) -> list[str]:
    """`finetune`'s own checks, on the first trial's settings; and the metric against the eval
    task. What they notice (eval samples also in training) is returned."""
    from vlmkit.finetune.session import FinetuneRequest, check

    first = {name: param.values[0] if isinstance(param, Choice) else param.low
             for name, param in space.search.items()}  # fmt: skip
    request = FinetuneRequest(
        train=space.train, model=space.model, out=out / TRIALS / "0000",
        settings=space.trial_settings(first, best_metric=space.metric),
        split=space.split, eval_dataset=space.eval, eval_split=space.eval_split,
        config_file=space.file,
    )  # fmt: skip
    try:
        found = check(request)
    except VlmkitError as error:  # named as SPACE names them, not as finetune's flags
        message = error.message
        for flag, key in SPACE_KEYS.items():
            message = message.replace(f"{flag} ", f"{key} ")
        hint = (error.hint or "") + " (SPACE's paths are relative to the current folder)"
        kind = UsageError if isinstance(error, UsageError) else InputError
        raise kind(f"{space.file}: {message}", hint=hint.strip()) from None
    assert found.eval_data is not None
    tasks = sorted({record.task for record in found.eval_data.records if record.task})
    for task, metrics in ONLY_FOR_TASK.items():
        if space.metric in metrics and task not in tasks:
            from vlmkit.metrics import default_metric_names

            produced = ", ".join(dict.fromkeys(n for t in tasks for n in default_metric_names(t)))
            raise UsageError(
                f"{space.file}: metric {space.metric} scores {task} answers, and the eval "
                f"dataset {space.eval} holds {', '.join(tasks) or 'no'} task samples",
                hint=f"its task is scored with: {produced}",
            )
    _check_target_modules(space, found.source)
    return found.notices


def _check_target_modules(space: SweepSpace, source: Any) -> None:
    """Layer names the sweep would try, against the model's layers (built on the meta device:
    no weights load), so a typo fails now rather than in every trial that draws it. Only
    where names are given and the model is a local folder."""
    param = space.search.get("target_modules")
    values = list(param.values) if isinstance(param, Choice) else []
    if space.settings.get("target_modules"):
        values.append(",".join(space.settings["target_modules"]))
    if not values or not source.local:
        return
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from vlmkit.finetune.modules import target_modules

    trust = bool(space.settings.get("trust_remote_code"))
    config = AutoConfig.from_pretrained(source.model, trust_remote_code=trust)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config, trust_remote_code=trust)
    searched = space.search.get("train_vision")
    vision = bool(space.settings.get("train_vision")) or (
        isinstance(searched, Choice) and True in searched.values
    )
    for value in values:
        names = tuple(part.strip() for part in str(value).split(",") if part.strip())
        try:
            target_modules(model, names, train_vision=vision)
        except UsageError as error:
            reason = error.message.replace("--target-modules ", "")
            raise UsageError(f"{space.file}: target_modules: {reason}", hint=error.hint) from None


def _check_study(
    storage: Any, name: str, space: SweepSpace, out: Path, overwrite: bool, spec: StorageSpec
) -> None:
    attributes = study_attributes(storage, name)
    if attributes is None:
        if not overwrite and (out / TRIALS).is_dir() and any((out / TRIALS).iterdir()):
            raise UsageError(
                f"--out {out} holds trials, but {spec.shown} has no study {name!r}",
                hint="pass the --storage and --study it ran with, --overwrite to start again, "
                "or choose another --out",
            )
        return
    owner = attributes.get(SWEEP_DIR_ATTR)
    if (
        not spec.own
        and owner
        and Path(owner) != out.resolve()
        and (Path(owner) / SWEEP_FILE).is_file()
    ):
        # Another folder's sweep (a shared storage): never replaced or mixed from here.
        raise UsageError(
            f"the study {name!r} in {spec.shown} is the sweep in {owner}, not in --out {out}",
            hint=f"run it with -o {owner}, or give this sweep its own --study name",
        )
    if overwrite:
        return
    if IDENTITY not in attributes:
        raise UsageError(
            f"{spec.shown} already has a study {name!r} that vlmkit sweep did not create",
            hint="pass --study with another name",
        )
    changed = differences(attributes[IDENTITY], space.identity())
    if changed:
        raise UsageError(
            f"the study {name!r} in {spec.shown} belongs to another sweep (it differs in "
            f"{', '.join(changed[:6])})",
            hint="--overwrite replaces it and this folder's trials; or choose another --out "
            "(or --study)",
        )


def prepare(plan: SweepPlan) -> tuple[Any, list[int], list[int]]:
    """Create or resume the study (replacing it with --overwrite); queue again the trials
    whose worker died, and those that failed last time. The study, and the numbers of each."""
    import optuna

    out, space = plan.out, plan.space
    if plan.request.overwrite:
        delete_study(plan.storage, plan.study_name)
        _clear_sweep_dir(out, keep=plan.storage_spec.journal)
    out.mkdir(parents=True, exist_ok=True)
    try:  # loaded when there (creating writes to the journal even then)
        study = optuna.load_study(study_name=plan.study_name, storage=plan.storage)
    except KeyError:
        try:
            study = optuna.create_study(
                storage=plan.storage, study_name=plan.study_name, direction=space.direction
            )
        except optuna.exceptions.DuplicatedStudyError:  # another machine was quicker
            study = optuna.load_study(study_name=plan.study_name, storage=plan.storage)
    if study.user_attrs.get(IDENTITY) != space.identity():  # new (or replaced)
        study.set_user_attr(IDENTITY, space.identity())
        study.set_user_attr(SWEEP_DIR_ATTR, str(out.resolve()))
    write_json_atomic(out / SWEEP_FILE, {
        "space": str(space.file.resolve()), "study": plan.study_name,
        "storage": plan.storage_spec.key, "identity": space.identity(),
        "sampler": space.sampler, "pruner": space.pruner, "budget": plan.budget,
        "timeout_s": space.timeout,
    })  # fmt: skip
    interrupted = reclaim_interrupted(study, retry_callback())
    return study, interrupted, queue_failed_again(study, retry_callback())


def _clear_sweep_dir(out: Path, keep: Path | None) -> None:
    if not out.is_dir():
        return
    for path in out.iterdir():
        if keep is not None and path.resolve() == keep.resolve():
            continue  # the journal itself: its study was deleted through Optuna
        if _own(path.name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def load(plan: SweepPlan, worker: int = 0) -> Any:
    """The study, with this worker's sampler and pruner (samplers are not stored)."""
    import optuna

    space = plan.space
    if space.sampler == "grid":
        # The seed shuffles the grid, and a trial names its point by its place in it: every
        # worker, and every later run of the sweep, must shuffle alike.
        sampler = optuna.samplers.GridSampler(space.grid_space(), seed=0)
    else:
        # Workers side by side must draw different values: each its own seed.
        seed = None if space.sampler_seed is None else space.sampler_seed + worker
        if space.sampler == "random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=space.pruner_startup_trials,
                                    n_warmup_steps=space.pruner_warmup_steps)
        if space.pruner == "median" else optuna.pruners.NopPruner()
    )  # fmt: skip
    return optuna.load_study(
        study_name=plan.study_name, storage=plan.storage, sampler=sampler, pruner=pruner
    )


def finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def waiting(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


@dataclass(frozen=True)
class WorkHooks:
    trial: TrialHooks = field(default_factory=TrialHooks)
    on_end: Any = lambda trial, notice: None
    """(the finished FrozenTrial, a notice about best/ or None)"""


def work(plan: SweepPlan, study: Any, device: str | None, hooks: WorkHooks | None = None) -> None:
    """Run trials in this process until the budget is spent (or the timeout passes)."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    hooks = hooks or WorkHooks()
    budget = plan.budget
    worker = WorkerLock(plan.out)
    failures: list[int] = []
    gave_up = False

    def after_trial(study: Any, trial: Any) -> None:
        nonlocal gave_up
        if trial.user_attrs.get(SURPLUS):
            return
        write_snapshot(study, plan.out)
        _, notice = update_best(study, plan.out)
        hooks.on_end(trial, notice)
        failed = trial.state == TrialState.FAIL and not trial.user_attrs.get(INTERRUPTED)
        failures[:] = [*failures, trial.number] if failed else []
        if len(failures) >= GIVE_UP_AFTER[1 if finished(study) else 0]:
            gave_up = True
            study.stop()

    runner = TrialRunner(plan.space, plan.out, budget, worker, device, hooks.trial)
    callbacks: list[Any] = [after_trial]
    if budget is not None:
        callbacks.insert(
            0, MaxTrialsCallback(budget, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
    deadline = None if plan.space.timeout is None else time.monotonic() + plan.space.timeout
    try:
        # Optuna's grid sampler stops a study once every point has been tried, counting
        # failed ones: trials queued again (interrupted, failed) still waiting would be left,
        # so the loop goes on while any wait and the budget and time allow.
        while not gave_up and _trials_to_run(study, budget):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            study.optimize(
                runner, timeout=left, callbacks=callbacks, gc_after_trial=True,
                catch=(VlmkitError, RuntimeError, ValueError, OSError, Surplus),
            )  # fmt: skip
            if not waiting(study):
                break
    finally:
        worker.release()


def _trials_to_run(study: Any, budget: int | None) -> bool:
    return budget is None or finished(study) < budget or waiting(study) > 0


def conclude(plan: SweepPlan, study: Any) -> tuple[list[dict[str, Any]], Any, str | None]:
    """The snapshot and best/ once every worker has stopped: (rows, best trial, notice)."""
    rows = write_snapshot(study, plan.out)
    trial, notice = update_best(study, plan.out)
    return rows, trial, notice


__all__ = ["SweepPlan", "SweepRequest", "conclude", "load", "plan", "prepare", "work"]

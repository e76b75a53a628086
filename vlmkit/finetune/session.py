"""One `vlmkit finetune` run from request to adapter folder: every check first, the model after.

`plan` does every check that needs no model (settings, the objective's record contract, the
datasets, outputs against inputs, OUT's state and a resume's compatibility) and takes OUT's
run lock, so a mistake is reported in milliseconds; `execute` runs the stages of `train.py`
(load, build, train, save, merge) and gives the finished folder OUT's name. Stdlib-light at
import: the heavy libraries load in `execute`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.finetune.data import TrainingData, read_training_data
from vlmkit.finetune.objectives import objective_named
from vlmkit.finetune.objectives.base import Objective
from vlmkit.finetune.output import (
    check_resume,
    finish_folder,
    prepare_output,
    training_folder,
    work_folders,
)
from vlmkit.finetune.processes import Processes, check_eval_fits, current, launched_alone
from vlmkit.finetune.settings import FinetuneSettings, check_report_to
from vlmkit.locks import RunLock
from vlmkit.models.sources import ModelSource, resolve_source
from vlmkit.outputs import image_folders, refuse_overlaps


@dataclass(frozen=True)
class FinetuneRequest:
    """Everything `vlmkit finetune` was asked (the settings already merged with --config)."""

    train: Path
    model: str
    out: Path
    settings: FinetuneSettings
    split: str | None = None
    eval_dataset: Path | None = None
    eval_split: str | None = None
    config_file: Path | None = None
    resume: bool = False
    overwrite: bool = False
    merge: bool = False
    eval_flags_given: tuple[str, ...] = ()
    """The --eval-* flags given on the command line (they need --eval)."""


@dataclass
class Plan:
    """What a run will do, known before any model loads."""

    request: FinetuneRequest
    objective: Objective
    settings: FinetuneSettings
    train: TrainingData
    eval_data: TrainingData | None
    source: ModelSource
    processes: Processes
    lock: RunLock
    notices: list[str] = field(default_factory=list)
    """What the user should know before training (the CLI prints them)."""

    @property
    def out(self) -> Path:
        return self.request.out

    @property
    def work(self) -> Path:
        """Where the run writes: OUT, or beside it while an --overwrite run replaces it."""
        return training_folder(self.out, overwrite=self.request.overwrite,
                               resume=self.request.resume)  # fmt: skip


@dataclass
class Checked:
    """What the checks of a request found: all a run needs that takes no model to know."""

    objective: Objective
    settings: FinetuneSettings
    train: TrainingData
    eval_data: TrainingData | None
    source: ModelSource
    notices: list[str]


def plan(request: FinetuneRequest, processes: Processes | None = None) -> Plan:
    """Check everything that needs no model; hold OUT's run lock (main process) until
    `execute` ends, or release it here if a check fails."""
    processes = processes or current()
    found = check(request, processes)
    out = request.out
    # One run at a time writes OUT: a second stops here, before touching it.
    lock = RunLock(out, "vlmkit finetune")
    if processes.main:
        lock.acquire()
    try:
        prepare_output(out, overwrite=request.overwrite, resume=request.resume)
        if request.resume:
            check_resume(out, found.settings, found.source, found.train)
    except BaseException:
        lock.release()
        raise
    return Plan(request, found.objective, found.settings, found.train, found.eval_data,
                found.source, processes, lock, found.notices)  # fmt: skip


def check(request: FinetuneRequest, processes: Processes | None = None) -> Checked:
    """Every check of `plan` that reads but writes nothing: settings, the objective's record
    contract, the datasets, the model's source, outputs against inputs (`vlmkit sweep` checks
    a whole study's worth of runs this way before the first one trains)."""
    processes = processes or current()
    out = request.out
    init = request.settings.init_adapter
    refuse_overlaps(
        [("--out", out), *work_folders(out)],
        [("TRAIN_DATASET", request.train), ("--eval", request.eval_dataset),
         ("--model", request.model), ("--config", request.config_file),
         ("--init-adapter", init)],
    )  # fmt: skip
    settings = _checked_settings(request)
    objective = objective_named(settings.objective)
    if request.eval_dataset is None and request.eval_flags_given:
        raise UsageError(
            f"{', '.join(request.eval_flags_given)} apply to --eval", hint="add --eval DATASET"
        )
    if request.eval_dataset is not None:
        check_eval_fits(processes)
    notices = []
    if launched_alone():
        notices.append(
            "accelerate launch was asked for several processes but started one: on a machine "
            "without GPUs it needs --multi_gpu for that (CPU processes then talk over gloo), "
            "or use torchrun --nproc_per_node N -m vlmkit finetune ..."
        )
    train = read_training_data(request.train, request.split, flag="TRAIN_DATASET")
    objective.check_data(train, "TRAIN_DATASET")
    objective.check_settings(settings, train)
    eval_data = None
    if request.eval_dataset is not None:
        eval_data = read_training_data(request.eval_dataset, request.eval_split, flag="--eval")
        eval_data.check_scorable()
        if settings.best_metric:  # as evaluation will ask, but before any training
            eval_data.check_metric(settings.best_metric)
    read = [data for data in (train, eval_data) if data is not None]
    refuse_overlaps(  # the images themselves, where links take them outside the datasets
        [("--out", out), *work_folders(out)],
        [folder for data in read for folder in image_folders(data.folder, data.image_paths())],
    )
    if eval_data is not None and (shared := eval_data.shared_with(train)):
        notices.append(
            f"{shared:,} of the --eval samples are also training samples (same id or image): "
            "their scores will flatter the model"
        )
    source = resolve_source(
        request.model, Path(init) if init else None, adapter_flag="--init-adapter"
    )
    family = _family(source)
    if family is not None:  # a local folder: known without loading anything
        objective.check_family(family, "--model")
    return Checked(objective, settings, train, eval_data, source, notices)


def execute(plan: Plan, hooks: Any = None) -> Any:
    """Load, build, train, save (and merge); OUT takes its name when all of it is done.
    Returns the `TrainingReport`."""
    try:
        return _execute(plan, hooks)
    finally:
        plan.lock.release()


def _execute(plan: Plan, hooks: Any) -> Any:
    from vlmkit.finetune import train as stages
    from vlmkit.finetune.training_log import Hooks
    from vlmkit.models.sources import ADAPTER_MANIFEST
    from vlmkit.provenance import require_model_libraries
    from vlmkit.records import write_json_atomic

    require_model_libraries("vlmkit finetune")
    request, settings, work = plan.request, plan.settings, plan.work
    loaded = stages.load_for_training(plan.source, settings, plan.processes)
    built = stages.build_trainer(
        plan.objective, loaded, plan.train, plan.eval_data, settings, work,
        out=plan.out, processes=plan.processes, resume=request.resume, hooks=hooks or Hooks(),
    )  # fmt: skip
    report = stages.run_training(built, work, resume=request.resume)
    if not plan.processes.main:
        return report
    manifest = stages.save_outputs(
        loaded, built, report, plan.train, plan.eval_data, settings, work,
        out=plan.out, processes=plan.processes,
    )  # fmt: skip
    if request.merge:
        del built, loaded  # the trainer's model and optimiser go before a second copy loads
        stages.free()
        stages.merge_adapter(plan.source, work, settings)
        report.merged = plan.out / "merged"
    # The manifest last: a folder with one holds a finished run (infer --adapter checks).
    write_json_atomic(work / ADAPTER_MANIFEST, manifest)
    finish_folder(work, plan.out)
    return report


def _family(source: ModelSource) -> Any:
    """The model's family from its folder's config.json, or None (a hub id, an unknown type)."""
    from vlmkit.models.families import family_of

    config = source.config or {}
    if "model_type" not in config:
        return None
    text = config.get("text_config") or {}
    return family_of(config["model_type"], text.get("model_type") if isinstance(text, dict)
                     else None)  # fmt: skip


def _checked_settings(request: FinetuneRequest) -> FinetuneSettings:
    """The settings, with what refers to other flags checked against them."""
    settings = request.settings
    if settings.best_metric and request.eval_dataset is None:
        raise UsageError("--best-metric needs --eval", hint="name the dataset to score on")
    if settings.best_metric:
        from vlmkit.metrics import resolve_metric_names

        # A typo gets its did-you-mean now, not after training.
        (name,) = resolve_metric_names(settings.best_metric, flag="--best-metric")
        settings = replace(settings, best_metric=name)
    check_report_to(settings.report_to)
    if settings.reward:
        from vlmkit.finetune.rewards import canonical_reward

        settings = replace(settings, reward=canonical_reward(settings.reward))
    if settings.init_adapter:  # recorded absolute: a resume from elsewhere finds the same one
        settings = replace(settings, init_adapter=str(Path(settings.init_adapter).resolve()))
    return settings

"""The stages of a fine-tuning run, each a function a test can call: load, build, train, save.

The pieces notebooks get wrong are each vlmkit's own and tested: prompts come from the code
inference uses (`vlmkit.prompts`), the objective's collator labels only what is learned, no
sample is cut into its image tokens (checked before training), LoRA adapts the language model
unless asked otherwise (`modules.py`), and evaluation generates answers and scores them
(`evaluation.py`). `session.py` runs the stages in order; the adapter folder carries a
manifest so that `vlmkit infer --adapter OUT` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback

from vlmkit import __version__
from vlmkit.errors import InputError, UsageError
from vlmkit.finetune.budget import within_budget
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.evaluation import GenerationEvalCallback
from vlmkit.finetune.modules import target_modules
from vlmkit.finetune.objectives import objective_named
from vlmkit.finetune.objectives.base import Objective
from vlmkit.finetune.output import (
    BEST,
    CHECKPOINTS,
    COMPLETIONS,
    LOG,
    MERGED,
    RUN_FILE,
    drop_unfinished_checkpoints,
    last_checkpoint,
    reopen_folder,
    run_record,
    start_folder,
)
from vlmkit.finetune.processes import Processes
from vlmkit.finetune.settings import FinetuneSettings
from vlmkit.finetune.training_log import Hooks, TrainingLog, whole_run_loss
from vlmkit.models.loading import LoadedModel, choose_device, choose_dtype, load_model
from vlmkit.models.options import LoadOptions
from vlmkit.models.sources import ADAPTER_MANIFEST, ModelSource
from vlmkit.provenance import library_versions, utc_now
from vlmkit.records import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class TrainingReport:
    """What a run did: for the CLI's summary and the manifest."""

    steps: int = 0
    train_samples: int = 0
    skipped_long: list[str] = field(default_factory=list)
    train_loss: float | None = None
    """Mean over the run's logged steps (`whole_run_loss`), up to `train_loss_steps`."""
    train_loss_steps: int | None = None
    seconds: float = 0.0
    final_metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    merged: Path | None = None


@dataclass
class Built:
    """A trainer ready to run, with what the later stages need of its making."""

    trainer: Any
    evaluator: GenerationEvalCallback | None
    examples: int
    skipped_long: list[str]


def load_for_training(
    source: ModelSource, settings: FinetuneSettings, processes: Processes
) -> LoadedModel:
    """The base model (4-bit for QLoRA) on this process's device, in the training dtype (the
    `--init-adapter` goes on it when the trainer is built, trainable)."""
    device = choose_device(settings.device)
    dtype = choose_dtype(settings.dtype, device)
    check_device(device, dtype)
    torch.manual_seed(settings.seed)
    loaded = load_model(
        dataclasses.replace(source, adapter=None),
        load_options(settings, device, dtype),
        device_map=_ddp_device_map(device, processes),
    )
    check_init_adapter(source, loaded.prompt_format)
    return dataclasses.replace(loaded, source=source)


def load_options(settings: FinetuneSettings, device: str, dtype: torch.dtype) -> LoadOptions:
    """How training loads its base model (a dry run reads the same processor settings)."""
    return LoadOptions(
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        load_in_4bit=settings.method == "qlora",
        trust_remote_code=settings.trust_remote_code,
        image=settings.image,
    )


def check_init_adapter(source: ModelSource, formats: Any) -> None:
    """An --init-adapter goes on with the prompt format it was trained with."""
    trained = (source.manifest or {}).get("prompt_format")
    if source.adapter is not None and trained and trained != formats.to_json():
        raise UsageError(
            f"--init-adapter {source.adapter} was trained with prompt format {trained}, but "
            f"{source.model} now formats prompts as {formats.to_json()}",
            hint="train on the base model (and chat template) the adapter was trained with",
        )


def lora_config(model: Any, settings: FinetuneSettings) -> Any:
    """A new adapter's shape: the LoRA flags, on the layers `modules.target_modules` resolves."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=target_modules(
            model, settings.target_modules, train_vision=settings.train_vision
        ),
        bias="none",
        task_type="CAUSAL_LM",
    )


def build_trainer(
    objective: Objective,
    loaded: LoadedModel,
    train: TrainingData,
    eval_data: TrainingData | None,
    settings: FinetuneSettings,
    work: Path,
    *,
    out: Path,
    processes: Processes,
    resume: bool,
    hooks: Hooks,
) -> Built:
    """The objective's collator and trainer over the examples that fit the token budget.

    Nothing is written before every check of this stage has passed (target modules, budget);
    then the run's folder is made (or reopened, for `--resume`).
    """
    objective.check_family(loaded.family, "--model")  # a hub id's family is known only now
    collator = objective.collator(
        loaded.processor, loaded.family, settings.max_length or loaded.context_length
    )
    examples, skipped = within_budget(objective, train, collator, settings)
    model, lora = loaded.model, None
    if loaded.source.adapter is not None:
        # Training goes on from the adapter's weights (its shape: the LoRA flags do not apply);
        # DPO's reference is then a frozen copy of it, which TRL adds.
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(loaded.source.adapter), is_trainable=True)
    else:
        lora = lora_config(loaded.model, settings)
    if processes.main:
        if resume:
            drop_unfinished_checkpoints(work)
            reopen_folder(work)
        else:
            start_folder(work)
            write_json_atomic(work / RUN_FILE, run_record(settings, loaded.source, train))
    callbacks: list[Any] = [
        TrainingLog(work / LOG, hooks, resumed=resume, also=(work / COMPLETIONS,))
    ]
    evaluator = None
    if eval_data is not None:
        evaluator = GenerationEvalCallback(
            loaded,
            eval_data,
            samples=settings.eval_samples,
            max_new_tokens=settings.eval_max_new_tokens,
            every=settings.eval_every,
            best_metric=settings.best_metric,
            best_dir=work / BEST,
            on_scores=hooks.on_scores,
            resumed=resume,
        )
        callbacks.append(evaluator)
    trainer = objective.trainer(
        model=model,
        processor=loaded.processor,
        args=_common_args(settings, work, loaded.device),
        dataset=objective.dataset(examples),
        collator=collator,
        peft_config=lora,
        callbacks=callbacks,
        settings=settings,
        work=work,
        world_size=processes.world_size,
    )
    # vlmkit reports losses itself (progress line, log.jsonl); the trainer's printer would
    # write raw dicts to stdout, where results go.
    trainer.remove_callback(PrinterCallback)
    if evaluator is not None:
        evaluator.trainer = trainer  # eval scores go through trainer.log, to every tracker
    if loaded.device == "cpu":
        _trainable_in_fp32(trainer.model)
    return Built(trainer, evaluator, len(examples), skipped)


def run_training(built: Built, work: Path, *, resume: bool) -> TrainingReport:
    """Train (from the last checkpoint saved whole, with `--resume`) and save the adapter."""
    checkpoint = last_checkpoint(work) if resume else None
    started = time.perf_counter()
    result = built.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    report = TrainingReport(
        steps=result.global_step,
        train_samples=built.examples,
        skipped_long=built.skipped_long,
        seconds=time.perf_counter() - started,
    )
    report.train_loss, report.train_loss_steps = whole_run_loss(built.trainer.state.log_history)
    built.trainer.save_model(str(work))  # every process: sharded (FSDP, ZeRO-3) saves gather
    return report


def save_outputs(
    loaded: LoadedModel,
    built: Built,
    report: TrainingReport,
    train: TrainingData,
    eval_data: TrainingData | None,
    settings: FinetuneSettings,
    work: Path,
    *,
    out: Path,
    processes: Processes,
) -> dict[str, Any]:
    """The best adapter's manifest, and the run's manifest (returned: written last, by the
    session, once everything else is in place)."""
    if not (work / "adapter_model.safetensors").is_file():
        raise InputError(
            f"training finished but no adapter was saved in {work}",
            hint="with FSDP, use fsdp_state_dict_type FULL_STATE_DICT (see the README)",
        )
    manifest = _manifest(loaded, train, eval_data, settings, report, processes)
    evaluator = built.evaluator
    if evaluator is not None:
        report.final_metrics = evaluator.last
        manifest["final_metrics"] = evaluator.last
        if evaluator.best_step is not None:
            report.best = {"metric": settings.best_metric, "value": evaluator.best_value,
                           "step": evaluator.best_step,
                           "adapter": str((out / BEST).resolve())}  # fmt: skip
            manifest["best"] = report.best
            write_json_atomic(work / BEST / ADAPTER_MANIFEST, {**manifest, "final_metrics": None})
    return manifest


def free() -> None:
    """Return the memory of what the caller let go (the trainer's model and optimiser)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def merge_adapter(source: ModelSource, work: Path, settings: FinetuneSettings) -> Path:
    """Write WORK/merged: the base model with the adapter folded into its weights.

    The base is loaded again unquantised (a QLoRA adapter is merged into full-precision
    weights: folding it into 4-bit weights would round the update away). It is written beside
    and renamed when whole, so a `merged/` folder is never half a model.
    """
    from peft import PeftModel

    device = choose_device(settings.device)
    dtype = choose_dtype(settings.dtype, device)
    options = LoadOptions(device=device, dtype=str(dtype).removeprefix("torch."),
                          trust_remote_code=settings.trust_remote_code)  # fmt: skip
    # The bare base: the adapter in WORK already holds what an --init-adapter started from.
    base = load_model(dataclasses.replace(source, adapter=None), options)
    merged = PeftModel.from_pretrained(base.model, str(work)).merge_and_unload()
    staging = work / f".{MERGED}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging)
    base.processor.save_pretrained(staging)
    shutil.rmtree(work / MERGED, ignore_errors=True)  # a resumed run's earlier merge
    staging.rename(work / MERGED)
    return work / MERGED


def _common_args(settings: FinetuneSettings, work: Path, device: str) -> dict[str, Any]:
    """The TrainingArguments every objective's TRL config shares."""
    dtype = choose_dtype(settings.dtype, device)
    return {
        "output_dir": str(work / CHECKPOINTS),
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps or -1,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "learning_rate": settings.lr,
        "warmup_steps": settings.warmup_ratio,  # transformers 5: a float below 1 is a ratio
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps" if settings.save_every else "epoch",
        "save_steps": settings.save_every or 500,
        "save_total_limit": 2,
        "seed": settings.seed,
        "data_seed": settings.seed,
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
        "use_cpu": device == "cpu",
        "activation_checkpointing": settings.gradient_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "report_to": list(settings.report_to) or "none",
        # vlmkit's collators read the raw columns and build the batch themselves.
        "remove_unused_columns": False,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        # LoRA layers all take part in every forward: DDP's search for unused ones is waste.
        "ddp_find_unused_parameters": False,
    }


def _trainable_in_fp32(model: Any) -> None:
    """TRL casts a quantised model's LoRA weights to bf16; on a CPU that is the slow path and
    the saved adapter would be bf16, so they go back to fp32 there."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def check_device(device: str, dtype: torch.dtype) -> None:
    """Refuse fp16 training on a CPU (mixed precision needs CUDA); warn of slow bf16."""
    if device == "cpu" and dtype == torch.float16:
        raise UsageError(
            "--dtype float16 training needs a CUDA GPU (mixed precision)",
            hint="use --dtype float32 on CPU (the default there)",
        )
    if device == "cpu" and dtype == torch.bfloat16:
        log.warning("bf16 on this CPU is 10-45x slower than fp32 unless it has AMX; as asked")


def _ddp_device_map(device: str, processes: Processes) -> Any:
    """Under `accelerate launch` / torchrun, each process holds the whole model on its GPU."""
    if device == "cuda" and processes.several:
        return {"": processes.local_rank}
    return None


def _manifest(
    loaded: LoadedModel,
    train: TrainingData,
    eval_data: TrainingData | None,
    settings: FinetuneSettings,
    report: TrainingReport,
    processes: Processes,
) -> dict[str, Any]:
    source = loaded.source
    return {
        "vlmkit_version": __version__,
        "created_at": utc_now(),
        "base_model": source.model,  # a local folder is already absolute
        "base_config": loaded.model.config.to_dict() if source.config is None else source.config,
        "family": loaded.family.name,
        "prompt_format": loaded.prompt_format.to_json(),
        "image_preprocessing": loaded.image_preprocessing,
        "objective": settings.objective,
        **objective_named(settings.objective).manifest_fields(settings),
        "method": settings.method,
        "settings": settings.to_json(),
        "train_data": train.fingerprint(),
        "eval_data": eval_data.fingerprint() if eval_data else None,
        "skipped_long": report.skipped_long,
        "training": {
            "steps": report.steps,
            "samples": report.train_samples,
            "train_loss": report.train_loss,
            "train_loss_covers": (
                f"mean training loss over steps 1-{report.train_loss_steps}, from the logged "
                "losses (one every --logging-steps), each weighted by the steps it averages"
                if report.train_loss_steps
                else None
            ),
            "seconds": round(report.seconds, 2),
            "device": loaded.device,
            "dtype": loaded.dtype,
            "processes": processes.world_size,
            "effective_batch_size": settings.batch_size
            * settings.grad_accum
            * processes.world_size,
        },
        "final_metrics": None,
        "versions": library_versions(
            ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate")
        ),
    }

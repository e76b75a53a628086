"""`vlmkit finetune TRAIN_DATASET --model M --out ADAPTER_DIR`: LoRA / QLoRA fine-tuning."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vlmkit.cli import console
from vlmkit.cli.options import (
    ImageLongestEdge,
    ImageMaxPixels,
    ImageMinPixels,
    ImageSplitting,
    MaxImageTiles,
    MaxImageTokens,
    given,
)
from vlmkit.finetune.objectives import OBJECTIVES
from vlmkit.finetune.settings import SETTING_DEFAULTS

LORA = "LoRA"
TRAINING = "Training"
DATA = "Data and evaluation"
OUTPUT = "Output"


def shown(name: str, when_unset: str) -> str:
    """What a setting whose default is "unset" means, for `--help`."""
    assert SETTING_DEFAULTS[name] is None, name  # a set default is shown as the flag's own
    return when_unset


def kept_after_interruption(out: Path) -> str:
    """What an interrupted training run leaves, and how to go on."""
    from vlmkit.finetune.output import last_checkpoint, training_folder

    checkpoint = last_checkpoint(training_folder(out, overwrite=False, resume=True))
    if checkpoint is None:
        return "no checkpoint was saved yet; start over with the same command and --overwrite."
    return f"training stopped; {checkpoint} is kept: add --resume to continue from it."


# A closed choice listed by --help; the registry is a literal, so reading it here is free.
ObjectiveChoice = Enum("ObjectiveChoice", {name: name for name in OBJECTIVES}, type=str)  # type: ignore[misc]


class Method(str, Enum):
    lora = "lora"
    qlora = "qlora"


DEFAULT_METHOD = Method(SETTING_DEFAULTS["method"])
DEFAULT_OBJECTIVE = ObjectiveChoice(SETTING_DEFAULTS["objective"])


def finetune_command(
    ctx: typer.Context,
    train: Annotated[
        Path,
        typer.Argument(
            metavar="TRAIN_DATASET", help="Training dataset folder (or one with splits)."
        ),
    ],
    model: Annotated[str, typer.Option(help="Base model: a folder or a hub id.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Adapter folder to create.", rich_help_panel=OUTPUT)
    ],
    config: Annotated[
        Path | None,
        typer.Option(help="TOML or YAML file of these settings (flags win over it)."),
    ] = None,
    objective: Annotated[
        ObjectiveChoice,  # type: ignore[valid-type]
        typer.Option(
            help="The training objective: sft learns each record's target; dpo learns from "
            "preference pairs (records with chosen and rejected, from `vlmkit pairs`); grpo "
            "samples answers and learns from their --reward.",
            rich_help_panel=TRAINING,
        ),
    ] = DEFAULT_OBJECTIVE,
    init_adapter: Annotated[
        Path | None,
        typer.Option(
            help="Start from this adapter (its weights and LoRA shape), e.g. an SFT adapter "
            "before --objective dpo.",
            show_default=shown("init_adapter", "a new adapter"),
            rich_help_panel=LORA,
        ),
    ] = None,
    beta: Annotated[
        float | None,
        typer.Option(
            help="dpo, grpo: how far the model may move from the reference (larger: less).",
            show_default="dpo 0.1, grpo 0 (no reference model)",
            rich_help_panel=TRAINING,
        ),
    ] = SETTING_DEFAULTS["beta"],
    max_image_tokens: MaxImageTokens = None,
    image_max_pixels: ImageMaxPixels = None,
    image_min_pixels: ImageMinPixels = None,
    image_longest_edge: ImageLongestEdge = None,
    image_splitting: ImageSplitting = None,
    max_image_tiles: MaxImageTiles = None,
    reward: Annotated[
        str | None,
        typer.Option(
            help="grpo: the metrics that reward each sampled answer, as `vlmkit score "
            "--per-sample` computes them: field_f1, or field_f1=1,format=0.2 (weighted sum; "
            "format: the task's answer format). vlmkit metrics lists them.",
            rich_help_panel=TRAINING,
        ),
    ] = SETTING_DEFAULTS["reward"],
    num_generations: Annotated[
        int | None,
        typer.Option(help="grpo: answers sampled per prompt.", rich_help_panel=TRAINING),
    ] = SETTING_DEFAULTS["num_generations"],
    temperature: Annotated[
        float | None,
        typer.Option(help="grpo: sampling temperature.", rich_help_panel=TRAINING),
    ] = SETTING_DEFAULTS["temperature"],
    max_completion_length: Annotated[
        int | None,
        typer.Option(help="grpo: most tokens per sampled answer.", rich_help_panel=TRAINING),
    ] = SETTING_DEFAULTS["max_completion_length"],
    dpo_loss: Annotated[
        str | None,
        typer.Option(
            help="dpo: TRL's loss type (sigmoid, ipo, hinge, ...).", rich_help_panel=TRAINING
        ),
    ] = SETTING_DEFAULTS["dpo_loss"],
    method: Annotated[
        Method | None,
        typer.Option(
            help="lora, or qlora: 4-bit NF4 base, double quantisation.",
            rich_help_panel=LORA,
        ),
    ] = DEFAULT_METHOD,
    lora_r: Annotated[
        int | None,
        typer.Option(help="LoRA rank.", rich_help_panel=LORA),
    ] = SETTING_DEFAULTS["lora_r"],
    lora_alpha: Annotated[
        int | None,
        typer.Option(help="LoRA alpha.", rich_help_panel=LORA),
    ] = SETTING_DEFAULTS["lora_alpha"],
    lora_dropout: Annotated[
        float | None,
        typer.Option(help="LoRA dropout.", rich_help_panel=LORA),
    ] = SETTING_DEFAULTS["lora_dropout"],
    target_modules: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated layer names.",
            show_default=shown("target_modules", "every linear layer of the language model"),
            rich_help_panel=LORA,
        ),
    ] = None,
    train_vision: Annotated[
        bool | None,
        typer.Option("--train-vision", help="Also adapt the vision tower.", rich_help_panel=LORA),
    ] = None,
    epochs: Annotated[
        float | None,
        typer.Option(help="Passes over the data.", rich_help_panel=TRAINING),
    ] = SETTING_DEFAULTS["epochs"],
    max_steps: Annotated[
        int | None,
        typer.Option(help="Steps to run (overrides --epochs).", rich_help_panel=TRAINING),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate.", rich_help_panel=TRAINING),
    ] = SETTING_DEFAULTS["lr"],
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Samples per step per device.",
            rich_help_panel=TRAINING,
        ),
    ] = SETTING_DEFAULTS["batch_size"],
    grad_accum: Annotated[
        int | None,
        typer.Option(
            help="Gradient accumulation steps.",
            rich_help_panel=TRAINING,
        ),
    ] = SETTING_DEFAULTS["grad_accum"],
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient-checkpointing", help="Less memory, ~30% slower.", rich_help_panel=TRAINING
        ),
    ] = None,
    warmup_ratio: Annotated[
        float | None,
        typer.Option(
            help="Warm-up share of steps.",
            rich_help_panel=TRAINING,
        ),
    ] = SETTING_DEFAULTS["warmup_ratio"],
    seed: Annotated[
        int | None, typer.Option(help="Seed.", rich_help_panel=TRAINING)
    ] = SETTING_DEFAULTS["seed"],
    device: Annotated[
        str | None,
        typer.Option(help="auto, cpu or cuda.", rich_help_panel=TRAINING),
    ] = SETTING_DEFAULTS["device"],
    dtype: Annotated[
        str | None,
        typer.Option(
            help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16.",
            rich_help_panel=TRAINING,
        ),
    ] = SETTING_DEFAULTS["dtype"],
    trust_remote_code: Annotated[
        bool | None,
        typer.Option(
            "--trust-remote-code", help="Run code shipped with the model.", rich_help_panel=TRAINING
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Split of TRAIN_DATASET to train on.", rich_help_panel=DATA)
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Most tokens per sample, image tokens included.",
            show_default=shown("max_length", "the model's context"),
            rich_help_panel=DATA,
        ),
    ] = None,
    skip_long: Annotated[
        bool | None,
        typer.Option(
            "--skip-long",
            help="Skip (and count) longer samples instead of stopping.",
            rich_help_panel=DATA,
        ),
    ] = None,
    eval_dataset: Annotated[
        Path | None,
        typer.Option("--eval", help="Dataset to evaluate on by generation.", rich_help_panel=DATA),
    ] = None,
    eval_split: Annotated[
        str | None, typer.Option(help="Split of --eval.", rich_help_panel=DATA)
    ] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Steps between evaluations.",
            show_default=shown("eval_every", "end only"),
            rich_help_panel=DATA,
        ),
    ] = None,
    eval_samples: Annotated[
        int | None,
        typer.Option(
            help="Eval samples generated each time.",
            rich_help_panel=DATA,
        ),
    ] = SETTING_DEFAULTS["eval_samples"],
    eval_max_new_tokens: Annotated[
        int | None,
        typer.Option(
            help="Tokens per eval answer.",
            rich_help_panel=DATA,
        ),
    ] = SETTING_DEFAULTS["eval_max_new_tokens"],
    best_metric: Annotated[
        str | None,
        typer.Option(
            help="Keep the best adapter by this metric in OUT/best (e.g. cer).",
            rich_help_panel=DATA,
        ),
    ] = None,
    save_every: Annotated[
        int | None,
        typer.Option(
            help="Steps between checkpoints.",
            show_default=shown("save_every", "each epoch"),
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    logging_steps: Annotated[
        int | None,
        typer.Option(
            help="Steps between loss lines.",
            rich_help_panel=OUTPUT,
        ),
    ] = SETTING_DEFAULTS["logging_steps"],
    report_to: Annotated[
        str | None,
        typer.Option(
            help="Trackers: tensorboard, wandb, ... (comma-separated).", rich_help_panel=OUTPUT
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue from OUT's last checkpoint.", rich_help_panel=OUTPUT
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace OUT if vlmkit wrote it.", rich_help_panel=OUTPUT),
    ] = False,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Also write OUT/merged: the full model with the adapter folded in.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the run, encode every sample and estimate its peak memory from the "
            "processor and config alone: no weight loads, nothing is written.",
        ),
    ] = False,
) -> None:
    """Fine-tune a LoRA or QLoRA adapter with TRL (SFT, DPO or GRPO), for `vlmkit infer --adapter`.

    `--objective sft` learns each record's target; `--objective dpo` learns from preference
    pairs (`vlmkit pairs`), usually from an SFT adapter (`--init-adapter`); `--objective grpo`
    samples `--num-generations` answers per prompt and learns from their `--reward`, vlmkit's
    own metrics against the target, usually from an SFT adapter too. The prompts are
    the ones `vlmkit infer` sends, the loss covers only the answers and their end token, no
    sample is cut into its image tokens, and the vision tower stays frozen unless
    `--train-vision`. With `--eval`, answers are generated and scored with vlmkit's
    metrics (not teacher-forced logits) every `--eval-every` steps. OUT holds the adapter, a
    manifest (base model, family, prompt format, data fingerprint, settings, final metrics),
    `log.jsonl` and checkpoints for `--resume`.

    Examples:

        vlmkit finetune data/letters/train --model google/paligemma2-3b-pt-224 -o runs/lora
        vlmkit finetune data/cord --split train --model M -o runs/q --method qlora \\
            --eval data/cord --eval-split test --eval-every 100 --best-metric field_f1
        vlmkit finetune data/pairs --objective dpo --model M --init-adapter runs/lora -o runs/dpo
        vlmkit finetune data/cord --split train --objective grpo --reward field_f1=1,format=0.2 \\
            --model M --init-adapter runs/lora -o runs/grpo
        torchrun --nproc_per_node 4 -m vlmkit finetune data/cord --split train --model M -o r/ddp
        vlmkit finetune data/cord --split train --model M -o runs/q --method qlora --dry-run
    """
    from vlmkit.finetune.processes import current
    from vlmkit.finetune.session import FinetuneRequest, plan
    from vlmkit.finetune.settings import settings_from
    from vlmkit.lifetime import end_with_parent

    flags: dict[str, Any] = {
        "objective": objective.value,
        "init_adapter": str(init_adapter) if init_adapter else None,
        "beta": beta, "dpo_loss": dpo_loss, "method": method.value if method else None,
        "max_image_tokens": max_image_tokens, "image_max_pixels": image_max_pixels,
        "image_min_pixels": image_min_pixels, "image_longest_edge": image_longest_edge,
        "image_splitting": image_splitting, "max_image_tiles": max_image_tiles,
        "reward": reward, "num_generations": num_generations, "temperature": temperature,
        "max_completion_length": max_completion_length,
        "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
        "target_modules": target_modules, "train_vision": train_vision,
        "epochs": epochs, "max_steps": max_steps, "lr": lr, "batch_size": batch_size,
        "grad_accum": grad_accum, "gradient_checkpointing": gradient_checkpointing,
        "warmup_ratio": warmup_ratio, "max_length": max_length, "skip_long": skip_long,
        "seed": seed,
        "dtype": dtype, "device": device, "eval_every": eval_every, "eval_samples": eval_samples,
        "eval_max_new_tokens": eval_max_new_tokens, "best_metric": best_metric,
        "save_every": save_every, "logging_steps": logging_steps, "report_to": report_to,
        "trust_remote_code": trust_remote_code,
    }  # fmt: skip
    # The flags' defaults are FinetuneSettings' own (so `--help` shows them); only a flag the
    # user gave may override a --config file's value.
    flags = {name: value if given(ctx, name) else None for name, value in flags.items()}
    processes = current()
    # Every process runs this command; one speaks (the others' errors still show, by rank).
    console.stdout.quiet = console.stderr.quiet = not processes.main
    if processes.several:
        # A launcher killed by SIGKILL (torchrun, accelerate) would leave its processes
        # training into OUT's folders; they end with it.
        end_with_parent(os.getppid())
    eval_flags = ("eval_every", "eval_samples", "eval_max_new_tokens")
    request = FinetuneRequest(
        train=train,
        model=model,
        # A link names the folder it points to: that is what is trained into (and replaced).
        out=out.resolve() if out.is_symlink() else out,
        settings=settings_from(config, flags),
        split=split,
        eval_dataset=eval_dataset,
        eval_split=eval_split,
        config_file=config,
        resume=resume,
        overwrite=overwrite,
        merge=merge,
        eval_flags_given=tuple(
            f"--{name.replace('_', '-')}" for name in eval_flags if flags[name] is not None
        ),
    )
    if dry_run:
        from vlmkit.cli.dry_run import print_training_estimate
        from vlmkit.cli.progress import progress_bar
        from vlmkit.finetune.dry_run import dry_run as estimate

        with progress_bar("Encoding", None, "samples") as advance:
            report = estimate(request, advance)
        print_training_estimate(report, str(train))
        return
    work = plan(request, processes)
    for notice in work.notices:
        console.warn(notice)
    report = _train(work)
    if processes.main:  # one summary per run, from the main process
        _summary(request.out, report)


def _train(work: Any) -> Any:
    """Execute the plan under a progress bar; what the library returns."""
    from vlmkit.cli.progress import progress_bar
    from vlmkit.finetune.session import execute
    from vlmkit.finetune.training_log import Hooks

    settings, processes = work.settings, work.processes
    on = f" in {processes.world_size} processes" if processes.several else ""
    console.note(
        f"Training a {settings.method} adapter ({settings.objective}) on "
        f"{len(work.train.records):,} samples of {work.train.folder}{on}"
    )
    with (
        console.interrupted_means(lambda: kept_after_interruption(work.out)),
        progress_bar("Training", None, "steps") as advance,
    ):
        state: dict[str, Any] = {"step": 0}

        def on_step(step: int, loss: float | None) -> None:
            advance(step - state["step"], note=f"loss {loss:.4f}" if loss is not None else "")
            state["step"] = step

        def on_scores(step: int, scores: dict[str, float]) -> None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
            console.stderr.print(f"step {step}: {shown}")

        hooks = Hooks(on_start=lambda steps: advance(0, total=steps), on_step=on_step,
                      on_scores=on_scores)  # fmt: skip
        return execute(work, hooks)


def _summary(out: Path, report: Any) -> None:
    loss = f", final training loss {report.train_loss:.4f}" if report.train_loss is not None else ""
    console.stdout.print(
        f"Wrote the adapter to {out}: {report.steps:,} steps on {report.train_samples:,} samples "
        f"in {report.seconds:.1f} s{loss}."
    )
    if report.skipped_long:
        console.warn(
            f"{len(report.skipped_long):,} samples were longer than the token budget and skipped."
        )
    if report.final_metrics:
        console.stdout.print(
            "Final eval (generated): "
            + ", ".join(f"{k} {v:.4f}" for k, v in report.final_metrics.items())
        )
    if report.best:
        console.stdout.print(
            f"Best {report.best['metric']} {report.best['value']:.4f} at step "
            f"{report.best['step']}: {report.best['adapter']}"
        )
    if report.merged:
        console.stdout.print(f"Merged model: {report.merged}")
    console.note(f"Next: vlmkit infer DATASET --adapter {out} -o preds.jsonl")

"""What `--dry-run` prints: token statistics, parameters and the memory estimate, as tables."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from vlmkit.cli import console
from vlmkit.models.footprint import human_bytes

PARTS = {"prompt": "prompt text", "image": "image", "answer": "answer", "total": "whole sequence"}
ESTIMATED = "What the estimate counts and leaves out: README 'Dry run'."
NOTHING_DONE = "Dry run: no weight was loaded and nothing was written."


def token_table(stats: dict[str, Any], unit: str) -> Table:
    """Min / median / max tokens per sample, by part (a part the run has not: left out)."""
    table = Table(box=box.SIMPLE_HEAD, title=f"Tokens per {unit}", title_justify="left")
    table.add_column("part")
    for name in ("min", "median", "max"):
        table.add_column(name, justify="right")
    for key, label in PARTS.items():
        value = stats.get(key)
        if value is not None:
            table.add_row(label, f"{value.minimum:,}", f"{value.median:,g}", f"{value.maximum:,}")
    return table


def memory_table(parts: dict[str, int], title: str) -> Table:
    """Bytes by what holds them, and their sum."""
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    table.add_column("held by")
    table.add_column("estimate", justify="right")
    total = parts.pop("total")
    for name, count in parts.items():
        table.add_row(name, human_bytes(count))
    table.add_section()
    table.add_row("peak", human_bytes(total), style="bold")
    return table


def print_training_estimate(report: Any, dataset: str) -> None:
    """`vlmkit finetune --dry-run`'s report, on stdout."""
    out = console.stdout
    samples = len(report.samples)
    out.print(f"{samples:,} training samples in {dataset}, encoded as the collator encodes them.")
    out.print(token_table(report.stats(), "sample"))
    limit = f"--max-length {report.max_length:,}" if report.max_length else "no --max-length"
    if report.over_budget:
        shown = ", ".join(f"{i} ({n:,})" for i, n in report.over_budget[:3])
        more = "..." if len(report.over_budget) > 3 else ""
        out.print(f"{len(report.over_budget):,} samples over {limit}: {shown}{more}")
    else:
        out.print(f"No sample over {limit}.")
    parameters = report.parameters
    share = 100 * parameters.trainable / max(parameters.total, 1)
    out.print(
        f"Parameters: {parameters.total:,} in the base model, {parameters.trainable:,} trained "
        f"({share:.2f} %){_quantised(report)}."
    )
    checkpointing = "on" if report.gradient_checkpointing else "off"
    title = (
        f"Peak memory of a training step ({report.method}, {report.device}, {report.dtype}, "
        f"{report.rows} x {report.length:,} tokens, gradient checkpointing {checkpointing})"
    )
    names = {"weights": "weights", "adapter": "adapter (LoRA)", "gradients": "gradients",
             "optimizer": "optimiser (AdamW)", "activations": "activations",
             "working": "working memory"}  # fmt: skip
    memory = report.memory.to_json()
    out.print(memory_table({names.get(k, k): v for k, v in memory.items()}, title))
    out.print(ESTIMATED)
    for note in report.notes:
        console.note(note)
    for notice in report.notices:
        console.warn(notice)
    console.note(NOTHING_DONE)


def print_inference_estimate(report: Any, dataset: str) -> None:
    """`vlmkit infer --dry-run`'s report, on stdout."""
    out = console.stdout
    for note in report.notes:
        console.note(note)
    for warning in report.warnings:
        console.warn(warning)
    out.print(f"{len(report.samples):,} prompts in {dataset}, encoded as the backend encodes them.")
    out.print(token_table(report.stats(), "prompt"))
    for sample_id, why in report.unreadable[:3]:
        console.warn(f"{sample_id}: {why} (the run records it as an error and goes on)")
    if len(report.unreadable) > 3:
        console.warn(f"... {len(report.unreadable):,} samples cannot be encoded in all")
    over = report.over_context()
    if over:
        shown = ", ".join(f"{i} ({n:,})" for i, n in over[:3])
        console.warn(
            f"{len(over):,} prompts leave less than --max-new-tokens {report.max_new_tokens:,} "
            f"of the model's context of {report.context_length:,}: {shown}"
            f"{'...' if len(over) > 3 else ''} (the run records them as errors)"
        )
    adapter = (
        f" and {report.adapter_parameters:,} in the adapter" if report.adapter_parameters else ""
    )
    out.print(f"Parameters: {report.parameters:,} in the base model{adapter}.")
    weights = "4-bit" if report.four_bit else report.dtype
    title = (
        f"Peak memory of one batch ({report.device}, {weights}, {report.rows} x "
        f"{report.length:,} prompt tokens + {report.max_new_tokens:,} new)"
    )
    names = {"weights": "weights", "adapter": "adapter (LoRA)", "kv_cache": "KV cache",
             "working": "working memory"}  # fmt: skip
    memory = report.memory.to_json()
    out.print(memory_table({names.get(k, k): v for k, v in memory.items()}, title))
    out.print(ESTIMATED)
    console.note(NOTHING_DONE)


def _quantised(report: Any) -> str:
    if report.method != "qlora":
        return ""
    return f"; {report.parameters.quantised:,} of them quantised to 4 bits"

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


def token_table(stats: dict[str, Any], unit: str, *, answer: str = "answer") -> Table:
    """Min / median / max tokens per sample, by part (a part the run has not: left out)."""
    table = Table(box=box.SIMPLE_HEAD, title=f"Tokens per {unit}", title_justify="left")
    table.add_column("part")
    for name in ("min", "median", "max"):
        table.add_column(name, justify="right")
    for key, label in {**PARTS, "answer": answer}.items():
        value = stats.get(key)
        if value is not None:
            table.add_row(label, f"{value.minimum:,}", f"{value.median:,g}", f"{value.maximum:,}")
    return table


def memory_table(parts: dict[str, int], names: dict[str, str], title: str) -> Table:
    """Bytes by what holds them (the parts `names` names, in its order), and the peak."""
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    table.add_column("held by")
    table.add_column("estimate", justify="right")
    for key, name in names.items():
        table.add_row(name, human_bytes(parts[key]))
    table.add_section()
    table.add_row("peak", human_bytes(parts["total"]), style="bold")
    return table


def counted(count: int, unit: str) -> str:
    """1 -> '1 sample', 2 -> '2 samples'."""
    return f"{count:,} {unit}" + ("" if count == 1 else "s")


def print_training_estimate(report: Any, dataset: str) -> None:
    """`vlmkit finetune --dry-run`'s report, on stdout."""
    out = console.stdout
    out.print(f"{counted(len(report.samples), 'training ' + report.unit)} in {dataset}, encoded as "
              "the collator encodes them.")  # fmt: skip
    out.print(token_table(report.stats(), report.unit, answer=report.answer_part))
    if report.image_preprocessing:
        from vlmkit.models.resolution import ImageSettings

        asked = ImageSettings.from_json(report.image_preprocessing.get("settings"))
        out.print(f"Image preprocessing: {asked.as_flags()}.")
    limit = f"--max-length {report.max_length:,}" if report.max_length else "no --max-length"
    over = report.over_budget
    if not over:
        out.print(f"No {report.unit} over {limit}.")
    else:
        out.print(f"{counted(len(over), report.unit)} over {limit}: {_first(over)}")
        if len(over) == len(report.samples):
            console.warn(f"every {report.unit} is over {limit}: the run would stop; raise "
                         "--max-length or shrink the images (--max-image-tokens)")  # fmt: skip
        elif report.skip_long:
            console.note("the run leaves them out (--skip-long); the estimate is for the rest")
        else:
            console.warn("the run would stop on them: add --skip-long to leave them out, or raise "
                         "--max-length")  # fmt: skip
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
    out.print(memory_table(report.memory.to_json(), names, title))
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
    counts = report.counts
    if counts.already_done:
        console.note(f"{counts.already_done:,} of the {counts.selected:,} selected samples are "
                     "already answered in --out: the run answers the rest")  # fmt: skip
    if not counts.todo:
        why = "the selection holds no sample" if not counts.selected else "all are answered"
        out.print(f"Nothing to answer: {why}.")
        console.note(NOTHING_DONE)
        return
    out.print(f"{counted(len(report.samples), 'prompt')} in {dataset}, encoded as the backend "
              "encodes them.")  # fmt: skip
    out.print(token_table(report.stats(), "prompt"))
    if report.stats()["image"] is None and report.samples:
        console.note("the image is cross-attention states, outside the prompt (Llama 3.2 Vision)")
    for sample_id, why in report.unreadable[:3]:
        console.warn(f"{sample_id}: {why} (the run records it as an error and goes on)")
    if len(report.unreadable) > 3:
        console.warn(f"... {counted(len(report.unreadable), 'sample')} cannot be encoded in all")
    over = report.over_context()
    if over:
        console.warn(
            f"{counted(len(over), 'prompt')} leave less than --max-new-tokens "
            f"{report.max_new_tokens:,} of the model's context of {report.context_length:,}: "
            f"{_first(over)} (the run records them as errors)"
        )
    adapter = report.adapter_parameters
    adapter = f" and {adapter:,} in the adapter" if adapter else ""
    out.print(f"Parameters: {report.parameters:,} in the base model{adapter}.")
    if report.memory is None:
        out.print("No prompt fits the context with --max-new-tokens: nothing to estimate.")
        console.note(NOTHING_DONE)
        return
    weights = "4-bit" if report.four_bit else report.dtype
    title = (
        f"Peak memory of one batch ({report.device}, {weights}, {report.rows} x "
        f"{report.length:,} prompt tokens + {report.max_new_tokens:,} new)"
    )
    names = {"weights": "weights", "adapter": "adapter (LoRA)", "kv_cache": "KV cache",
             "working": "working memory"}  # fmt: skip
    memory = report.memory.to_json()
    if not memory["adapter"]:
        del names["adapter"]
    out.print(memory_table(memory, names, title))
    out.print(ESTIMATED)
    console.note(NOTHING_DONE)


def _first(samples: list[tuple[str, int]]) -> str:
    """The first three (id, tokens) pairs, and '...' when there are more."""
    shown = ", ".join(f"{i} ({n:,} tokens)" for i, n in samples[:3])
    return shown + ("..." if len(samples) > 3 else "")


def _quantised(report: Any) -> str:
    if report.method != "qlora":
        return ""
    return f"; {report.parameters.quantised:,} of them quantised to 4 bits"

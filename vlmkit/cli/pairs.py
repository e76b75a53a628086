"""`vlmkit pairs DATASET PREDS... -o OUT`: preference pairs from a model's own answers."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vlmkit.cli import console


class Chosen(str, Enum):
    reference = "reference"
    best = "best"


def pairs_command(
    dataset: Annotated[
        Path, typer.Argument(metavar="DATASET", help="The dataset (with targets) PREDS answer.")
    ],
    predictions: Annotated[
        list[Path],
        typer.Argument(
            metavar="PREDS...",
            help="Predictions files of DATASET (`vlmkit infer` output): a baseline, sampled "
            "runs with other --seed, an adapter's run.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Preference dataset folder to create.")],
    split: Annotated[str | None, typer.Option(help="Split of DATASET the PREDS answer.")] = None,
    chosen: Annotated[
        Chosen,
        typer.Option(
            help="reference: the target against each worse answer; best: the best answer "
            "against a worse one (both the model's own)."
        ),
    ] = Chosen.reference,
    metric: Annotated[
        str | None,
        typer.Option(
            help="The per-sample metric that ranks answers.",
            show_default="the task's main one: cer, field_f1, letter_accuracy",
        ),
    ] = None,
    margin: Annotated[
        float,
        typer.Option(help="best: the least score difference a pair needs (the metric's scale)."),
    ] = 0.0,
    max_pairs_per_sample: Annotated[
        int, typer.Option(help="The most pairs one sample gives (worst answers first).")
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if `vlmkit pairs` wrote it.")
    ] = False,
) -> None:
    """Make preference pairs from a model's own answers, for `finetune --objective dpo`.

    Every answer is scored per sample with vlmkit's metric, as `vlmkit score --per-sample`
    scores it. Errored, missing and empty answers and identical strings never make a pair.
    OUT is a dataset folder whose records carry `chosen` and `rejected`; each pair's `meta`
    says where both sides came from and their scores, and `pairs.json` why the other samples
    gave none.

    Examples:

        vlmkit pairs data/letters/train base.jsonl -o data/pairs
        vlmkit pairs data/cord --split train s1.jsonl s2.jsonl s3.jsonl -o data/p --chosen best
        vlmkit finetune data/pairs --objective dpo --model M --init-adapter runs/sft -o runs/dpo
    """
    from vlmkit.outputs import refuse_overlaps
    from vlmkit.pairs import SIDECAR, PairSettings, make_pairs
    from vlmkit.staging import check_output_folder

    settings = PairSettings(
        chosen=chosen.value, metric=metric, margin=margin,
        max_pairs_per_sample=max_pairs_per_sample,
    )  # fmt: skip
    inputs = [("DATASET", dataset), *(("PREDS", path) for path in predictions)]
    refuse_overlaps([("--out", out)], inputs)
    check_output_folder(out, owner=SIDECAR, overwrite=overwrite, inputs=inputs)
    with console.interrupted_means(console.nothing_written(out)):
        summary = make_pairs(dataset, predictions, out, settings, split=split, overwrite=overwrite)
    console.stdout.print(
        f"Wrote {summary.pairs:,} pairs from {summary.samples_with_pairs:,} of "
        f"{summary.samples:,} samples to {out} (ranked by {summary.metric})."
    )
    for why, count in summary.no_pair.most_common():
        console.note(f"{count:,} {'sample' if count == 1 else 'samples'} {why}.")
    console.note(f"Next: vlmkit finetune {out} --objective dpo --model MODEL -o ADAPTER")

"""`vlmkit tiny-model OUT --family F`: a tiny random model of a family, built offline."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vlmkit.cli import console
from vlmkit.models.families import FAMILIES

# A closed choice listed by --help; families.py is stdlib only, so reading it here is free.
FamilyChoice = Enum("FamilyChoice", {name: name for name in FAMILIES}, type=str)  # type: ignore[misc]

SIDECAR = "tiny-model.json"


def tiny_model_command(
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder to create (a save_pretrained folder).")
    ],
    family: Annotated[
        FamilyChoice,  # type: ignore[valid-type]
        typer.Option(help="Which family's architecture, processor and prompt format."),
    ],
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if vlmkit wrote it.")
    ] = False,
) -> None:
    """Build a tiny randomly-initialised model with a working processor, entirely offline.

    For tests, demos and CI pipelines: it loads through the same code as a hub checkpoint
    (`--model OUT`), generates on a CPU in milliseconds and learns a small task in seconds.
    Its answers are noise until it is fine-tuned. The tokenizer is trained locally and holds
    the special tokens the family's processor needs.

    Two choices make it a model LoRA can teach and 4-bit can load on every CPU: every layer is
    a multiple of 64 wide (bitsandbytes' AVX512-BF16 kernel needs whole 64-element blocks), and
    weights start at 1/sqrt(width) instead of 0.02, so that the prompt and image reach the
    answer position and the logits can move (vlmkit/models/tiny.py says what was measured).

    Examples:

        vlmkit tiny-model models/tiny-paligemma --family paligemma
        vlmkit tiny-model models/tiny-smolvlm --family idefics3 --seed 1
        vlmkit infer data/letters --model models/tiny-paligemma -o preds.jsonl
    """
    from vlmkit import __version__
    from vlmkit.provenance import require_model_libraries
    from vlmkit.staging import check_output_folder, staged_folder

    # Before torch loads: seconds saved on a typo.
    check_output_folder(out, owner=SIDECAR, overwrite=overwrite)
    require_model_libraries("vlmkit tiny-model")
    from vlmkit.models.tiny import build_tiny_model

    with staged_folder(out, owner=SIDECAR, overwrite=overwrite) as staging:
        build_tiny_model(family.value, staging, seed=seed)
        record = {"family": family.value, "seed": seed, "vlmkit_version": __version__}
        (staging / SIDECAR).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    console.stdout.print(f"Wrote a tiny {FAMILIES[family.value].title} model to {out}")

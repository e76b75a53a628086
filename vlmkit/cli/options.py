"""Options shared by several commands, defined once so their names and help never drift."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class AggregationChoice(str, Enum):
    corpus = "corpus"
    mean = "mean"


class TaskChoice(str, Enum):
    # Mirrors vlmkit.metrics.TASK_DEFAULTS (a test keeps them equal); spelled out here so
    # `--help` lists the choices without importing the metrics.
    ocr = "ocr"
    json = "json"
    letter = "letter"
    vqa = "vqa"


IdField = Annotated[
    str,
    typer.Option(
        "--id-field",
        help="Field holding the sample id (both files); a path such as "
        "doc.id reaches into nested fields.",
    ),
]
PredField = Annotated[
    str,
    typer.Option(
        "--pred-field",
        help="Field holding the prediction in PREDS; a path reaches "
        "inside: filtered_resps.0 (lmms-eval), answer.text.",
    ),
]
RefField = Annotated[
    str,
    typer.Option(
        "--ref-field",
        help="Field holding the reference in REFS (a path too). "
        "Without target, the one of reference, answer, answers, label, ground_truth "
        "there is used, and said.",
    ),
]
JsonOut = Annotated[
    Path | None,
    typer.Option("--json", help="Write the results as JSON to this file ('-' for stdout)."),
]
Norm = Annotated[
    str,
    typer.Option(
        "--norm",
        help="Normalisation preset applied before scoring: none, basic, or steps joined with "
        "'+' (nfkc, lowercase, punctuation, whitespace). See `vlmkit metrics`.",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Processes for metrics that can use several (TER).",
        show_default="every CPU for 400 pairs or more, else 1",
    ),
]


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (rather than leaving it at its default): what lets
    an option show its real default in `--help` and still give way to a preset or a file."""
    source = ctx.get_parameter_source(name)  # an enum of the click copy typer ships
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


IMAGE_PANEL = "Image resolution"
MaxImageTokens = Annotated[
    int | None,
    typer.Option(
        "--max-image-tokens",
        help="Most tokens one image may take, set on the family's own knob: Qwen's max pixels, "
        "Idefics3's longest edge in tiles, Mllama's tiles. PaliGemma, LLaVA, Gemma 3: fixed.",
        rich_help_panel=IMAGE_PANEL,
    ),
]
ImageMaxPixels = Annotated[
    int | None,
    typer.Option(help="Qwen2-VL, Qwen2.5-VL: the largest image, in pixels.",
                 rich_help_panel=IMAGE_PANEL),
]  # fmt: skip
ImageMinPixels = Annotated[
    int | None,
    typer.Option(help="Qwen2-VL, Qwen2.5-VL: the smallest image, in pixels.",
                 rich_help_panel=IMAGE_PANEL),
]  # fmt: skip
ImageLongestEdge = Annotated[
    int | None,
    typer.Option(help="Idefics3 / SmolVLM: the longest edge images are resized to, in pixels.",
                 rich_help_panel=IMAGE_PANEL),
]  # fmt: skip
ImageSplitting = Annotated[
    bool | None,
    typer.Option("--image-splitting/--no-image-splitting",
                 help="Idefics3 / SmolVLM: split large images into tiles.",
                 rich_help_panel=IMAGE_PANEL, show_default="the processor's"),
]  # fmt: skip
MaxImageTiles = Annotated[
    int | None,
    typer.Option(help="Llama 3.2 Vision: the most tiles an image is cut into.",
                 rich_help_panel=IMAGE_PANEL),
]  # fmt: skip

"""`vlmkit convert SOURCE_KIND SRC --out DIR`: real datasets into vlmkit's dataset format."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vlmkit.cli import console
from vlmkit.cli.options import TaskChoice
from vlmkit.errors import UsageError

# The kinds are an open registry (vlmkit.convert.CONVERTERS: a typo gets a did-you-mean); the
# target formats a closed choice, mirrored here (a test keeps them equal) so `--help` lists
# them without importing the converters.
KINDS = "cord-v2, donut, sroie, jsonl, vqa"


class TargetFormat(str, Enum):
    json = "json"
    donut = "donut"
    kv = "kv"


def convert_command(
    kind: Annotated[str, typer.Argument(metavar="SOURCE_KIND", help=f"What SRC holds: {KINDS}.")],
    src: Annotated[
        str,
        typer.Argument(
            metavar="SRC",
            help="The source folder (parquet shards, a save_to_disk folder, an imagefolder, "
            "SROIE's img/box/entities, JSONL files), or for cord-v2 a hub id when the network "
            "allows.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create.")],
    target_format: Annotated[
        TargetFormat,
        typer.Option(
            help="json: canonical JSON. donut: <s_key>...</s_key> tokens. kv: `key: value` "
            "lines. Every target is read back before it is kept."
        ),
    ] = TargetFormat.json,
    task: Annotated[
        TaskChoice | None,
        typer.Option(
            help="The target. cord-v2, donut: json. sroie: json (the key fields) or "
            "ocr (the text in reading order). jsonl: ocr, json or letter. vqa: vqa.",
            show_default="the kind's first: json; jsonl: ocr",
        ),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            help="The prompt of every record (instead of the kind's or the row's own). vqa: "
            "a template around each row's question, e.g. '{question} Answer briefly.'"
        ),
    ] = None,
    max_side: Annotated[
        int | None,
        typer.Option(help="Downsize images whose longer side exceeds this many pixels."),
    ] = None,
    image_field: Annotated[
        str | None, typer.Option(help="jsonl: the field holding the image path.")
    ] = None,
    prompt_field: Annotated[
        str | None, typer.Option(help="jsonl: the field holding the prompt (optional).")
    ] = None,
    target_field: Annotated[
        str | None, typer.Option(help="jsonl: the field holding the answer.")
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="Skip bad rows (listed in OUT/skipped.jsonl) instead of stopping."
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out if vlmkit wrote it.")
    ] = False,
) -> None:
    """Convert a real dataset into vlmkit's format: OUT/SPLIT/metadata.jsonl + images.

    Ids are `SOURCE_KIND/split/KEY`, stable across runs: the row number, or the number in the
    image's file name (receipt_07.png: 000007). Images are copied byte for byte (or written in
    their own encoding when they come as bytes). OUT/convert.json records the source, its
    layout, the options and what each split got.

    Examples:

        vlmkit convert cord-v2 ../shared/data/cord_v2 -o data/cord
        vlmkit convert cord-v2 cord-parquet/ --target-format donut -o data/cord-donut
        vlmkit convert sroie SROIE2019/ --task ocr --max-side 1280 -o data/sroie-ocr
        vlmkit convert jsonl dataset/ --task json --skip-bad -o data/roboflow
        vlmkit convert vqa DocVQA/DocVQA --skip-bad -o data/docvqa
    """
    from vlmkit.cli.progress import progress_bar
    from vlmkit.convert import converter_class
    from vlmkit.convert.writer import REPORT, SIDECAR, ConvertOptions, convert, source_inputs
    from vlmkit.staging import check_output_folder

    check_output_folder(out, owner=SIDECAR, overwrite=overwrite, inputs=source_inputs(src))
    options = ConvertOptions(
        target_format=target_format.value, prompt=prompt, max_side=max_side, skip_bad=skip_bad
    )
    task_name = task.value if task else None
    fields = (image_field, prompt_field, target_field)
    if kind == "jsonl":
        from vlmkit.convert.jsonl import FieldMap, JsonlConverter

        converter = JsonlConverter(src, task_name, FieldMap(*fields))
    else:
        if any(fields):
            raise UsageError(
                "--image-field, --prompt-field and --target-field apply to jsonl sources",
                hint=f"{kind} knows its own fields: drop them.",
            )
        converter = converter_class(kind)(src, task_name)
    with (
        console.interrupted_means(console.nothing_written(out)),
        progress_bar("Converting", None, "rows") as advance,
    ):
        summaries = convert(
            converter, out, options, overwrite=overwrite, on_row=lambda split: advance()
        )
    console.note(f"{src}: {converter.layout} layout")
    for split, summary in summaries.items():
        where = out / split if summary.written else "no folder"
        line = f"{split}: {summary.written:,} rows written ({where})"
        if summary.skipped:
            reasons = ", ".join(f"{n:,} {why}" for why, n in summary.skipped.most_common())
            line += f"; {sum(summary.skipped.values()):,} skipped ({reasons}), see {out / REPORT}"
        else:
            line += ", 0 skipped"
        console.stdout.print(line)
        if summary.empty_prompts:
            console.warn(
                f"{split}: {summary.empty_prompts:,} records have an empty prompt (their rows "
                "had none); pass --prompt to give them one."
            )

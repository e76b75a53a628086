"""`vlmkit synth ...`: synthetic datasets, one subcommand per generator."""

from __future__ import annotations

import math
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vlmkit.cli import console
from vlmkit.cli.options import given
from vlmkit.errors import UsageError

PARALLEL_FROM = 256

synth_app = typer.Typer(
    help="Generate synthetic datasets (images + metadata.jsonl), every parameter recorded.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


# Choices mirror vlmkit.synth.circled_letter.config (a test keeps them equal); spelled out here
# so `--help` lists them without importing Pillow or FreeType.
class Preset(str, Enum):
    paper = "paper"
    random = "random"


class Case(str, Enum):
    keep = "keep"
    lower = "lower"
    upper = "upper"
    title = "title"
    mixed = "mixed"


class Style(str, Enum):
    regular = "regular"
    bold = "bold"
    italic = "italic"
    bold_italic = "bold-italic"


class PromptStyle(str, Enum):
    circled = "circled"
    highlighted = "highlighted"
    both = "both"


class AnswerFormat(str, Enum):
    braces = "braces"
    plain = "plain"


DEFAULT_STYLES = [Style.regular]


def available_cpus() -> int:
    """CPUs this process may run on (affinity and container limits), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def parse_numbers(flag: str, text: str | None) -> tuple[float, ...] | None:
    """ "4,5,6" -> (4.0, 5.0, 6.0), with errors naming the flag."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise UsageError(
                f"{flag} {text!r}: {part.strip()!r} is not a number",
                hint=f"Give comma-separated numbers, e.g. {flag} 4,5,6",
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"{flag} {text!r}: {part.strip()!r} is not a finite number")
        values.append(value)
    return tuple(dict.fromkeys(values))


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """ "512" -> (512, 512); "640x480" -> (640, 480)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
        if len(sizes) not in (1, 2):
            raise ValueError
    except ValueError:
        raise UsageError(
            f"--image-size {text!r}: expected N or WIDTHxHEIGHT in pixels",
            hint="e.g. --image-size 512 or --image-size 640x480",
        ) from None
    return (sizes[0], sizes[-1])


def circled_letter(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", rich_help_panel="Output", metavar="DIR", help="Dataset folder to create."
        ),
    ],
    preset: Annotated[
        Preset,
        typer.Option(
            rich_help_panel="What to draw",
            help="paper: the paper's 1,248-image grid. random: --n images of random "
            "dictionary words in every bundled font. Flags below override the preset.",
        ),
    ] = Preset.random,
    words: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Words",
            metavar="SOURCE",
            help="Word source: 'bundled' (SCOWL English list), 'nltk' (its words corpus, if "
            "installed locally) or a UTF-8 file with one word per line (paper preset: its "
            "three words).",
        ),
    ] = "bundled",
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            rich_help_panel="What to draw",
            help="Images to draw (random preset) (paper preset: its 1,248-image grid).",
        ),
    ] = 1000,
    min_length: Annotated[
        int | None,
        typer.Option(rich_help_panel="Words", help="Shortest word to use (paper preset: 1)."),
    ] = 4,
    max_length: Annotated[
        int | None,
        typer.Option(rich_help_panel="Words", help="Longest word to use (paper preset: 64)."),
    ] = 12,
    case: Annotated[
        Case | None,
        typer.Option(
            rich_help_panel="Words",
            help="Letter case of each word (mixed: random per letter).",
        ),
    ] = Case.keep,
    fonts: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Fonts",
            metavar="DIR",
            help="Folder of .ttf/.otf fonts.",
            show_default="the bundled fonts/",
        ),
    ] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(
            rich_help_panel="Fonts",
            metavar="NAME",
            help="Font family to use (repeat for several).",
            show_default="every family in --fonts; paper: Liberation Sans, Open Sans",
        ),
    ] = None,
    style: Annotated[
        list[Style] | None,
        typer.Option(
            rich_help_panel="Fonts",
            help="Font style (repeat for several).",
        ),
    ] = DEFAULT_STYLES,
    thickness: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Drawing",
            metavar="LIST",
            help="Oval line widths in the paper's points, comma-separated.",
        ),
    ] = "4,5,6",
    padding: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Drawing",
            metavar="LIST",
            help="Side margins in the paper's units (text = 96), comma-separated.",
        ),
    ] = "25,50,100,200",
    spacing: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Drawing",
            metavar="LIST",
            help="Extra space between letters, in space widths: e.g. 0,1,2,3.",
        ),
    ] = "0",
    oval_scale: Annotated[
        float | None,
        typer.Option(
            rich_help_panel="Drawing",
            help="Oval size relative to the glyph (the paper's).",
        ),
    ] = 1.4,
    narrow_ovals: Annotated[
        bool | None,
        typer.Option(
            "--narrow-ovals/--paper-ovals",
            rich_help_panel="Drawing",
            help="Narrow an oval that would reach a neighbour letter's centre, or keep the "
            "paper's size even then.",
        ),
    ] = True,
    image_size: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Drawing",
            metavar="SIZE",
            help="Image size: 512 or WIDTHxHEIGHT.",
        ),
    ] = "512",
    color: Annotated[
        str | None,
        typer.Option(
            "--color",
            rich_help_panel="Drawing",
            metavar="COLOUR",
            help="Oval colour: a name or #rrggbb.",
        ),
    ] = "red",
    prompt: Annotated[
        PromptStyle | None,
        typer.Option(
            rich_help_panel="Prompt",
            help="Question asked; 'both' writes one record per question per image.",
        ),
    ] = PromptStyle.circled,
    answer_format: Annotated[
        AnswerFormat | None,
        typer.Option(
            rich_help_panel="Prompt",
            help="braces: the prompt asks for the answer as {a}. plain: no instruction.",
        ),
    ] = AnswerFormat.braces,
    seed: Annotated[
        int | None,
        typer.Option(rich_help_panel="What to draw", help="Seed of every random choice."),
    ] = 0,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            rich_help_panel="What to draw",
            help="Share of words held out in out/test, the rest in out/train (0: one unsplit "
            "dataset).",
        ),
    ] = 0.0,
    workers: Annotated[
        int | None,
        typer.Option(
            rich_help_panel="Output",
            min=1,
            help="Drawing processes.",
            show_default="every CPU for 256 images or more, else 1",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            rich_help_panel="Output",
            help="Replace --out if it holds an earlier synth dataset.",
        ),
    ] = False,
) -> None:
    """Draw the circled-letter task of *Vision Language Models Are Blind*.

    Each image shows a word with one letter circled; the target is that letter. Every
    rendering parameter, the glyph's box and the oval's box go into each record's `meta`, and
    the whole configuration, font hashes and library versions into `synth.json`. The same flags
    and seed give byte-identical files with any number of --workers.

    Examples:

        vlmkit synth circled-letter --preset paper -o data/paper
        vlmkit synth circled-letter --n 5000 --test-fraction 0.2 -o data/cl
        vlmkit synth circled-letter --spacing 0,1,2,3 --case mixed -o data/sp
        vlmkit synth circled-letter --words my.txt --style bold -o data/b
    """
    from vlmkit.staging import check_output_folder
    from vlmkit.synth.circled_letter import from_preset, make_plan, write_dataset
    from vlmkit.synth.circled_letter.generate import SIDECAR

    def flag(name: str, value: Any) -> Any:
        # The flags show the random preset's values as defaults; only a flag the user gave
        # overrides the chosen preset (whose own values may differ: the paper's).
        return value if given(ctx, name) else None

    config = from_preset(
        preset.value,
        words=flag("words", words),
        n=flag("n", n),
        min_length=flag("min_length", min_length),
        max_length=flag("max_length", max_length),
        case=case.value if flag("case", case) else None,
        fonts_dir=fonts,
        families=tuple(family) if family else None,
        styles=tuple(s.value for s in style) if flag("style", style) else None,
        thickness=parse_numbers("--thickness", flag("thickness", thickness)),
        padding=parse_numbers("--padding", flag("padding", padding)),
        spacing=parse_numbers("--spacing", flag("spacing", spacing)),
        oval_scale=flag("oval_scale", oval_scale),
        narrow_ovals=flag("narrow_ovals", narrow_ovals),
        image_size=parse_image_size(flag("image_size", image_size)),
        colour=flag("color", color),
        prompt=prompt.value if flag("prompt", prompt) else None,
        answer_format=answer_format.value if flag("answer_format", answer_format) else None,
        seed=flag("seed", seed),
        test_fraction=flag("test_fraction", test_fraction),
    )
    check_output_folder(out, owner=SIDECAR, overwrite=overwrite, inputs=config.input_paths())
    plan = make_plan(config)
    from vlmkit.cli.progress import progress_bar

    if workers is None:  # starting a worker costs ~0.4 s: not worth it for a few images
        workers = available_cpus() if plan.total >= PARALLEL_FROM else 1
    with (
        console.interrupted_means(console.nothing_written(out)),
        progress_bar("Drawing", plan.total, "images") as advance,
    ):
        summary = write_dataset(plan, out, workers=workers, overwrite=overwrite, on_image=advance)
    splits = ", ".join(
        f"{count:,} in {out / split if split else out}" for split, count in summary.images.items()
    )
    console.stdout.print(f"Wrote {sum(summary.images.values()):,} images ({splits}).")
    if summary.records != sum(summary.images.values()):
        console.stdout.print(f"{summary.records:,} records: one per prompt per image.")
    if plan.test_words:
        held_out = len(plan.test_words)
        share = held_out / len({w.casefold() for w in plan.words})
        console.note(
            f"Held out {held_out:,} word{'s' * (held_out != 1)} ({share:.1%} of them) for the "
            "test split "
            f"(--test-fraction {config.test_fraction:g}); synth.json lists them."
        )
    console.note(
        f"{summary.crowded:,} paper-size ovals reached a neighbour letter's centre"
        + (" and were narrowed." if config.narrow_ovals else " (kept: --paper-ovals).")
    )

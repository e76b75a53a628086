"""What a circled-letter dataset is made of: the configuration, its presets and the prompts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from PIL import ImageColor

from vlmkit.errors import UsageError

PAPER_WORDS = ("Acknowledgement", "Subdermatoglyphic", "tHyUiKaRbNqWeOpXcZvM")
PAPER_FAMILIES = ("Liberation Sans", "Open Sans")
"""The paper used Helvetica and Open Sans; Liberation Sans is Helvetica's free metric twin."""

SAMPLINGS = ("grid", "random")
CASES = ("keep", "lower", "upper", "title", "mixed")
PROMPT_STYLES = ("circled", "highlighted", "both")
ANSWER_FORMATS = ("braces", "plain")

PROMPTS = {
    "circled": "Which letter is being circled?",
    "highlighted": "Which character is being highlighted with a {colour} oval?",
}
BRACES_SUFFIX = "Please provide your answer in curly brackets, e.g. {a}"
"""The answer instruction of the paper's latest version (letter_accuracy reads the braces)."""

MAX_IMAGE_SIDE = 4096
MAX_THICKNESS = 20.0


@dataclass(frozen=True)
class CircledLetterConfig:
    """Everything that decides a circled-letter dataset; equal configs give identical bytes."""

    sampling: str = "random"
    """"grid": every word x letter x font x thickness x padding x spacing; "random": --n draws."""
    words: str | tuple[str, ...] = "bundled"
    """A word source ("bundled", "nltk", a file path) or the words themselves."""
    n: int | None = 1000
    """Images to draw (random sampling only; a grid's size follows from its axes)."""
    min_length: int = 4
    """Shortest word used, in characters (--min-length)."""
    max_length: int = 12
    """Longest word used, in characters (--max-length)."""
    case: str = "keep"
    """Letter case applied to each word: keep, lower, upper, title, or mixed (random per letter)."""
    fonts_dir: Path | None = None
    """Folder of font files; None means the bundled fonts/."""
    families: tuple[str, ...] = ()
    """Font families to use; empty means every family in fonts_dir."""
    styles: tuple[str, ...] = ("regular",)
    """Font styles to use: regular, bold, italic, bold-italic (every family needs each)."""
    thickness: tuple[float, ...] = (4.0, 5.0, 6.0)
    """Oval line widths in points of the paper's 10 x 2 inch, 1200 dpi figure."""
    padding: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0)
    """Horizontal margin each side, in layout units (the text is 96 units high)."""
    spacing: tuple[float, ...] = (0.0,)
    """Extra space between letters, in widths of the font's space character."""
    oval_scale: float = 1.4
    """The oval's size relative to the glyph (advance wide, ink tall)."""
    narrow_ovals: bool = True
    """Narrow an oval that would reach a neighbour's centre (the paper does not)."""
    image_size: tuple[int, int] = (512, 512)
    """(width, height) in pixels; the canvas is fitted inside, aspect kept, on white."""
    colour: str = "red"
    """The oval's colour: a name Pillow knows or #rrggbb."""
    prompt: str = "circled"
    """Question style: circled, highlighted, or both (one record per question per image)."""
    answer_format: str = "braces"
    """braces: the prompt asks for the answer as {a} (the paper's); plain: it does not."""
    seed: int = 0
    """Seeds every random choice (word split, words, letters, fonts, sizes, mixed case)."""
    test_fraction: float = 0.0
    """Share of words (not images) held out in a test split; 0 writes one unsplit dataset."""
    preset: str = field(default="custom", compare=False)
    """The preset these values started from; recorded, but not part of the identity."""

    def __post_init__(self) -> None:
        _check_choice("--sampling", self.sampling, SAMPLINGS)
        _check_choice("--case", self.case, CASES)
        _check_choice("--prompt", self.prompt, PROMPT_STYLES)
        _check_choice("--answer-format", self.answer_format, ANSWER_FORMATS)
        if self.sampling == "random" and (self.n is None or self.n < 1):
            raise UsageError("--n must be at least 1", hint="e.g. --n 1000")
        if self.sampling == "grid" and self.n is not None:
            raise UsageError(
                "--n: a grid's size follows from its words, fonts, thickness, padding and spacing",
                hint="Drop --n, or use --preset random to draw --n images at random.",
            )
        if not 1 <= self.min_length <= self.max_length:
            raise UsageError(
                f"--min-length {self.min_length} / --max-length {self.max_length}: "
                "need 1 <= min <= max",
                hint="e.g. --min-length 4 --max-length 12",
            )
        _check_numbers("--thickness", self.thickness, above_zero=True)
        if max(self.thickness) > MAX_THICKNESS:
            raise UsageError(
                f"--thickness {max(self.thickness):g}: at most {MAX_THICKNESS:g} points",
                hint="The paper uses 4, 5 and 6; thicker rings hide the letters.",
            )
        _check_numbers("--padding", self.padding)
        _check_numbers("--spacing", self.spacing)
        if not 1.0 <= self.oval_scale <= 3.0 or not math.isfinite(self.oval_scale):
            raise UsageError(
                f"--oval-scale {self.oval_scale:g}: must be between 1 and 3",
                hint="Below 1 the oval cuts through its letter; the paper uses 1.4.",
            )
        width, height = self.image_size
        if not (32 <= width <= MAX_IMAGE_SIDE and 32 <= height <= MAX_IMAGE_SIDE):
            raise UsageError(
                f"--image-size {width}x{height}: each side must be 32 to {MAX_IMAGE_SIDE} pixels"
            )
        if not 0.0 <= self.test_fraction < 1.0:
            raise UsageError(
                f"--test-fraction {self.test_fraction:g}: must be at least 0 and below 1",
                hint="e.g. --test-fraction 0.2 holds out a fifth of the words",
            )
        try:
            red, green, blue = ImageColor.getrgb(self.colour)[:3]
        except ValueError:
            raise UsageError(
                f"--color {self.colour!r}: not a colour name or #rrggbb value",
                hint="e.g. --color red, --color '#d00000'",
            ) from None
        if min(red, green, blue) > 200:  # every channel near white: a near-invisible ring
            raise UsageError(
                f"--color {self.colour!r}: too pale to see on the white background",
                hint="Choose a darker or more saturated colour, e.g. --color red",
            )
        if self.seed < 0:
            raise UsageError(f"--seed {self.seed}: must be 0 or more")

    def input_paths(self) -> list[tuple[str, Path | None]]:
        """What a run reads from the user's disk, by flag: no output may overlap them."""
        words = Path(self.words) if isinstance(self.words, str) else None
        return [
            ("--words", words if words is not None and words.is_file() else None),
            ("--fonts", self.fonts_dir),
        ]

    def as_json(self) -> dict[str, Any]:
        """The configuration as recorded in the dataset's synth.json."""
        out: dict[str, Any] = {"preset": self.preset}
        for f in fields(self):
            if f.name == "preset":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def prompt_text(self, style: str) -> str:
        question = PROMPTS[style].format(
            colour=self.colour if self.colour.isalpha() else "coloured"
        )
        return f"{question} {BRACES_SUFFIX}" if self.answer_format == "braces" else question

    def rgb(self) -> tuple[int, int, int]:
        red, green, blue = ImageColor.getrgb(self.colour)[:3]
        return red, green, blue

    def prompt_styles(self) -> tuple[str, ...]:
        return ("circled", "highlighted") if self.prompt == "both" else (self.prompt,)


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{flag} {value!r}: choose one of {', '.join(choices)}")


def _check_numbers(flag: str, values: tuple[float, ...], *, above_zero: bool = False) -> None:
    if not values:
        raise UsageError(f"{flag} needs at least one value")
    for value in values:
        if not math.isfinite(value) or value < 0 or (above_zero and value == 0):
            bound = "above 0" if above_zero else "0 or more"
            raise UsageError(f"{flag} {value:g}: must be a finite number, {bound}")


PRESETS: dict[str, CircledLetterConfig] = {
    # The paper's grid: 52 letter positions x 2 fonts x 3 thicknesses x 4 paddings = 1,248.
    "paper": CircledLetterConfig(
        sampling="grid",
        words=PAPER_WORDS,
        n=None,
        min_length=1,
        max_length=64,
        families=PAPER_FAMILIES,
        preset="paper",
    ),
    # Fine-tuning data: random dictionary words, every bundled family, the paper's ranges.
    "random": CircledLetterConfig(preset="random"),
}


def from_preset(name: str, **overrides: Any) -> CircledLetterConfig:
    """A preset with the given fields replaced; None values mean "keep the preset's"."""
    if name not in PRESETS:
        raise UsageError(
            f"--preset {name!r} is not a preset", hint=f"Choose one of: {', '.join(PRESETS)}."
        )
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})

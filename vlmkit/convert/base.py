"""What every converter yields: source rows (image, target, prompt) or bad rows, split by split."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.errors import InputError, UsageError


@dataclass(frozen=True)
class ImageFile:
    """An image that exists as a file in the source: copied byte for byte."""

    path: Path


@dataclass(frozen=True)
class ImageBytes:
    """An image that arrives as encoded bytes (parquet, Arrow): written as it came."""

    data: bytes
    name: str | None = None
    """The file name the source recorded, if any (its suffix is only a hint)."""


ImageRef = ImageFile | ImageBytes


@dataclass(frozen=True)
class SourceRow:
    """One sample as read from the source, before anything is written."""

    key: str
    """Unique within its split and stable across runs: the sample id is `kind/split/key`."""
    where: str
    """Where it came from, for messages: `test/metadata.jsonl:8`, `test-00000.parquet row 7`."""
    image: ImageRef
    target: Any
    """The parsed answer: a dict/list for `json` tasks, a string for `ocr`."""
    meta: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    """The row's own question, when the source has one (--prompt still wins)."""
    answers: tuple[str, ...] | None = None
    """Every acceptable answer, where the source has several (VQA); `target` is the one
    trained on."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be converted; an error, or with --skip-bad a line of the report."""

    where: str
    reason: str
    category: str = "bad row"
    """A short label for the per-split summary: "bad image", "bad ground truth", ..."""


class Converter:
    """Base of the source kinds: subclasses find the layout and read rows lazily."""

    name: ClassVar[str]
    """The SOURCE_KIND on the command line, and the first part of every id."""
    tasks: ClassVar[tuple[str, ...]] = ("json",)
    """The targets this kind can produce; the first is the default."""
    prompts: ClassVar[dict[str, str]]
    """The default prompt of each task."""
    layouts: ClassVar[tuple[str, ...]]
    """The layouts this kind accepts, as shown when none matches."""
    duplicate_hint: ClassVar[str] = (
        "Ids come from the file names' numbers; give the files distinct numbers."
    )
    """What to do when two rows of a split get one id."""

    def __init__(self, src: str, task: str | None = None) -> None:
        self.src = src
        self.task = task or self.tasks[0]
        if self.task not in self.tasks:
            raise UsageError(
                f"--task {self.task}: {self.name} gives {' or '.join(self.tasks)} targets",
                hint="Drop --task." if len(self.tasks) == 1 else f"Choose {self.tasks}.",
            )
        self.layout = "?"
        """The layout found, set by subclasses (recorded in convert.json)."""

    @property
    def default_prompt(self) -> str:
        return self.prompts[self.task]

    def check_prompt(self, prompt: str | None) -> None:
        """Refuse a --prompt this kind cannot use, before anything is written."""

    def prompt_for(self, row: SourceRow, prompt: str | None) -> str:
        """The record's prompt: --prompt, else the row's own, else the kind's default."""
        return prompt or row.prompt or self.default_prompt

    def splits(self) -> list[str]:
        raise NotImplementedError

    def rows(self, split: str) -> Iterator[SourceRow | BadRow]:
        raise NotImplementedError

    def unknown_layout(self, found: str) -> InputError:
        accepted = "; ".join(self.layouts)
        return InputError(
            f"{self.src}: not a {self.name} layout vlmkit knows ({found})",
            hint=f"Accepted layouts: {accepted}.",
        )


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
"""What counts as an image file in a source folder (for images no label names)."""


def unlabelled_images(
    folder: Path, labelled: set[Path], root: Path, why: str, *, recursive: bool = False
) -> Iterator[BadRow]:
    """A bad row for each image file in `folder` that no label named: every file a converter
    sees ends as a row or as a counted, listed skip, never silently dropped."""
    labelled = {path.resolve() for path in labelled}
    files = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(files):
        image = path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        if image and path.resolve() not in labelled:
            yield BadRow(path.relative_to(root).as_posix(), why, "no ground truth")


def inside(root: Path, relative: str) -> Path | None:
    """`root / relative` if it stays inside `root` (no absolute path, no `..` escape), else None."""
    if not relative or Path(relative).is_absolute():
        return None
    candidate = (root / relative).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate

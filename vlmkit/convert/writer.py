"""Write a converter's rows as dataset folders, one per split, streaming, with a skip report."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from vlmkit import __version__
from vlmkit.convert.base import BadRow, Converter, SourceRow
from vlmkit.convert.images import ImageError, SplitImages
from vlmkit.convert.targets import TARGET_FORMATS, TargetError, serialise
from vlmkit.errors import InputError, UsageError
from vlmkit.records import METADATA_FILE, DatasetRecord
from vlmkit.staging import staged_folder

SIDECAR = "convert.json"
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
REPORT = "skipped.jsonl"
MIN_SIDE = 16


@dataclass(frozen=True)
class ConvertOptions:
    """How rows become records."""

    target_format: str = "json"
    """json, donut or kv (see vlmkit.convert.targets)."""
    prompt: str | None = None
    """Replaces the source kind's default prompt."""
    max_side: int | None = None
    """Downsize images whose longer side exceeds this (pixels); None keeps them as they are."""
    skip_bad: bool = False
    """Skip bad rows (listed in skipped.jsonl) instead of stopping at the first."""

    def __post_init__(self) -> None:
        if self.target_format not in TARGET_FORMATS:
            raise UsageError(
                f"--target-format {self.target_format!r}: choose {', '.join(TARGET_FORMATS)}"
            )
        if self.max_side is not None and self.max_side < MIN_SIDE:
            raise UsageError(f"--max-side {self.max_side}: must be at least {MIN_SIDE} pixels")
        if self.prompt is not None and not self.prompt.strip():
            raise UsageError("--prompt is empty", hint="Give the question, or drop --prompt.")


@dataclass
class SplitSummary:
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    empty_prompts: int = 0
    """Records written with no prompt (a JSONL row without one, and no --prompt)."""


def convert(
    converter: Converter,
    out: Path,
    options: ConvertOptions,
    *,
    overwrite: bool = False,
    on_row: Callable[[str], None] | None = None,
) -> dict[str, SplitSummary]:
    """Convert every split of `converter` into `out/<split>/`; return what each split got."""
    converter.check_prompt(options.prompt)
    if converter.task != "json" and options.target_format != "json":
        raise UsageError(
            f"--target-format {options.target_format}: it writes structured (json) targets, and "
            f"{converter.name} writes {converter.task} targets here",
            hint="Drop --target-format.",
        )
    summaries: dict[str, SplitSummary] = {}
    with (
        staged_folder(
            out, owner=SIDECAR, overwrite=overwrite, inputs=source_inputs(converter.src)
        ) as root,
        _Report(root) as report,
    ):
        for split in converter.splits():
            if not SPLIT_NAME.fullmatch(split):  # it becomes a folder name and part of every id
                raise InputError(
                    f"{converter.src}: split name {split!r} is not a plain name",
                    hint="Rename the source's split (letters, digits, - and _).",
                )
            summary = summaries[split] = SplitSummary()
            folder = root / split
            (folder / "images").mkdir(parents=True)
            seen: dict[str, str] = {}  # key -> where: two rows must never share an id
            images = SplitImages(folder, options.max_side)
            with (folder / METADATA_FILE).open("w", encoding="utf-8", newline="\n") as records:
                for row in converter.rows(split):
                    if isinstance(row, SourceRow):
                        _check_unique(row, seen, converter, split)
                    result = _record(converter, split, row, images, options)
                    if isinstance(result, BadRow):
                        if not options.skip_bad:
                            raise InputError(
                                f"{result.where}: {result.reason}",
                                hint="Fix that row, or pass --skip-bad to skip such rows "
                                f"(they are listed in {REPORT}).",
                            )
                        report.add(split, result)
                        summary.skipped[result.category] += 1
                    else:
                        records.write(json.dumps(result, ensure_ascii=False) + "\n")
                        summary.written += 1
                        summary.empty_prompts += not result["prompt"].strip()
                    if on_row is not None:
                        on_row(split)
            if summary.written == 0:
                shutil.rmtree(folder)  # `datasets` refuses a split folder with no rows
        _check_something_written(converter, summaries)
        sidecar = _sidecar(converter, options, summaries)
        (root / SIDECAR).write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")
    return summaries


def source_inputs(src: str) -> list[tuple[str, Path]]:
    """What a conversion reads: SRC, and for a file (a JSONL export) the folder its images are
    read from, which an output must not overwrite or land in either."""
    path = Path(src)
    if path.is_file():
        return [("SRC", path), ("SRC's folder", path.parent)]
    return [("SRC", path)]


def _check_unique(row: SourceRow, seen: dict[str, str], converter: Converter, split: str) -> None:
    if row.key in seen:
        raise InputError(
            f"{row.where}: its id {converter.name}/{split}/{row.key} is also {seen[row.key]}'s",
            hint=converter.duplicate_hint,
        )
    seen[row.key] = row.where


def _check_something_written(converter: Converter, summaries: dict[str, SplitSummary]) -> None:
    if not summaries:
        raise InputError(f"{converter.src}: no split found ({converter.layout} layout)")
    if not any(s.written for s in summaries.values()):
        skipped = sum(sum(s.skipped.values()) for s in summaries.values())
        raise InputError(
            f"{converter.src}: no row could be converted ({skipped:,} bad, 0 good)",
            hint="Run without --skip-bad to see the first bad row and why.",
        )


def _record(
    converter: Converter,
    split: str,
    row: SourceRow | BadRow,
    images: SplitImages,
    options: ConvertOptions,
) -> dict[str, Any] | BadRow:
    if isinstance(row, BadRow):
        return row
    if converter.task == "json":
        try:
            target = serialise(row.target, options.target_format)
        except TargetError as error:
            return BadRow(row.where, f"the target {error}", "bad target")
    else:
        target = str(row.target)
    try:
        file_name, image_meta = images.write(row.image, row.key)
    except ImageError as error:
        return BadRow(row.where, str(error), "bad image")
    meta = {"source": converter.name, "split": split, **row.meta, **image_meta}
    if converter.task == "json":
        meta["target_format"] = options.target_format
    return DatasetRecord(
        id=f"{converter.name}/{split}/{row.key}",
        file_name=file_name,
        task=converter.task,
        prompt=converter.prompt_for(row, options.prompt),
        target=target,
        meta=meta,
        answers=row.answers,
    ).to_json()


class _Report:
    """skipped.jsonl, created on the first skipped row only."""

    def __init__(self, root: Path) -> None:
        self.path = root / REPORT
        self.file: TextIO | None = None

    def __enter__(self) -> _Report:
        return self

    def add(self, split: str, bad: BadRow) -> None:
        if self.file is None:
            self.file = self.path.open("w", encoding="utf-8", newline="\n")
        line = {"split": split, "where": bad.where, "category": bad.category, "reason": bad.reason}
        self.file.write(json.dumps(line, ensure_ascii=False) + "\n")

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _sidecar(
    converter: Converter, options: ConvertOptions, summaries: dict[str, SplitSummary]
) -> dict[str, Any]:
    libraries = {"pillow": metadata.version("pillow")}
    with contextlib.suppress(metadata.PackageNotFoundError):
        libraries["pyarrow"] = metadata.version("pyarrow")
    return {
        "converter": converter.name,
        "vlmkit": __version__,
        "source": converter.src,
        "layout": converter.layout,
        "task": converter.task,
        "options": asdict(options),
        "splits": {
            split: {"written": s.written, "skipped": dict(s.skipped)}
            for split, s in summaries.items()
        },
        "libraries": libraries,
    }

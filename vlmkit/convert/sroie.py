"""`sroie`: ICDAR 2019 SROIE receipts, `{split}/{img,box,entities}/<ID>.*`.

`--task json` (the default): the four key fields (company, date, address, total) from
`entities/<ID>.txt`. `--task ocr`: the transcripts of `box/<ID>.txt` in reading order, one text
line per line of the receipt, so WER/CER can be measured on real receipts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.convert.base import (
    BadRow,
    Converter,
    ImageFile,
    SourceRow,
    inside,
    unlabelled_images,
)
from vlmkit.convert.tables import describe_folder

FIELDS = ("company", "date", "address", "total")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Box:
    """One OCR line: its transcript and the vertical and horizontal extent of its quad."""

    text: str
    top: float
    bottom: float
    left: float


class Sroie(Converter):
    name: ClassVar[str] = "sroie"
    tasks: ClassVar[tuple[str, ...]] = ("json", "ocr")
    prompts: ClassVar[dict[str, str]] = {
        "json": "Extract the company, date, address and total of this receipt as JSON.",
        "ocr": "Read all the text of this receipt, line by line.",
    }
    layouts: ClassVar[tuple[str, ...]] = (
        "{train,test}/{img,box,entities}/<ID>.* (the SROIE2019 layout)",
        "{img,box,entities}/<ID>.* (one split, named train)",
    )

    def __init__(self, src: str, task: str | None = None) -> None:
        super().__init__(src, task)
        root = Path(src)
        self.root = root
        self.label_part = "entities" if self.task == "json" else "box"
        parts = ("img", self.label_part)
        if _has(root, parts):
            self.folders = {"train": root}
        elif root.is_dir():
            self.folders = {p.name: p for p in sorted(root.iterdir()) if _has(p, parts)}
        else:
            self.folders = {}
        if not self.folders:
            raise self.unknown_layout(describe_folder(root))
        self.layout = "sroie"

    def splits(self) -> list[str]:
        return list(self.folders)

    def rows(self, split: str) -> Iterator[SourceRow | BadRow]:
        folder = self.folders[split]
        images = {p.stem: p for p in sorted((folder / "img").iterdir())
                  if p.suffix.lower() in IMAGE_SUFFIXES}  # fmt: skip
        labelled = set()
        for label in sorted((folder / self.label_part).glob("*.txt")):
            where = f"{split}/{self.label_part}/{label.name}"
            # Files must be inside SRC: a symbolic link elsewhere is not the dataset's.
            if inside(self.root, str(label.relative_to(self.root))) is None:
                yield BadRow(where, "the label file links outside SRC", "bad ground truth")
                continue
            image = images.get(label.stem)
            if image is None:
                yield BadRow(where, f"no image img/{label.stem}.jpg for it", "bad image")
                continue
            labelled.add(image)
            if inside(self.root, str(image.relative_to(self.root))) is None:
                yield BadRow(where, f"img/{image.name} links outside SRC", "bad image path")
                continue
            target = _entities(label, where) if self.task == "json" else _transcript(label, where)
            if isinstance(target, BadRow):
                yield target
                continue
            meta = {"source_file": f"img/{image.name}"}
            yield SourceRow(label.stem, where, ImageFile(image), target, meta)
        why = f"no {self.label_part}/<ID>.txt names it"
        yield from unlabelled_images(folder / "img", labelled, self.root, why)


def _has(folder: Path, parts: tuple[str, ...]) -> bool:
    return all((folder / part).is_dir() for part in parts)


def _read_text(path: Path, where: str) -> str | BadRow:
    # UTF-8 with the odd BOM and CRLF line ends, as the released files have.
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return BadRow(where, f"not UTF-8 (byte {error.start})", "bad ground truth")
    except OSError as error:
        return BadRow(where, f"cannot read it ({error.strerror})", "bad ground truth")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _entities(path: Path, where: str) -> dict[str, Any] | BadRow:
    text = _read_text(path, where)
    if isinstance(text, BadRow):
        return text
    try:
        data = json.loads(text)
    except ValueError as error:
        return BadRow(where, f"entities are not JSON ({error})", "bad ground truth")
    if not isinstance(data, dict):
        return BadRow(where, "entities are not a JSON object", "bad ground truth")
    # The four fields in the task's order; a receipt without one keeps the others.
    found = {key: data[key] for key in FIELDS if key in data}
    if not found or not all(isinstance(v, str) for v in found.values()):
        return BadRow(where, f"entities need string values for {', '.join(FIELDS)}",
                      "bad ground truth")  # fmt: skip
    return found


def _transcript(path: Path, where: str) -> str | BadRow:
    text = _read_text(path, where)
    if isinstance(text, BadRow):
        return text
    boxes = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        parts = line.split(",", 8)  # the transcript itself may hold commas
        try:
            coords = [float(v) for v in parts[:8]]
            text = parts[8]
        except (ValueError, IndexError):
            return BadRow(f"{where}:{number}", "not x1,y1,...,x4,y4,transcript", "bad ground truth")
        xs, ys = coords[0::2], coords[1::2]
        boxes.append(Box(text.strip(), min(ys), max(ys), min(xs)))
    return "\n".join(" ".join(b.text for b in row) for row in reading_order(boxes))


def reading_order(boxes: list[Box]) -> list[list[Box]]:
    """Boxes grouped into text lines, top to bottom, each line left to right.

    A box joins the current line when it overlaps the line's vertical extent by at least half
    the smaller of the two heights (receipts are scanned straight, but not perfectly).
    """
    lines: list[list[Box]] = []
    top = bottom = 0.0
    for box in sorted(boxes, key=lambda b: ((b.top + b.bottom) / 2, b.left)):
        if lines:
            overlap = min(bottom, box.bottom) - max(top, box.top)
            if overlap >= 0.5 * min(bottom - top, box.bottom - box.top):
                lines[-1].append(box)
                top, bottom = min(top, box.top), max(bottom, box.bottom)
                continue
        lines.append([box])
        top, bottom = box.top, box.bottom
    return [sorted(line, key=lambda b: b.left) for line in lines]

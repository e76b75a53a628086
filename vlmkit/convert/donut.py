"""`donut`: any Donut-format dataset, an image and a `ground_truth` JSON string with `gt_parse`.

Such as the katanaml invoices, or CORD v2 itself (see `cord.py`). The layouts are those of
`tables.py`; the target is `gt_parse` (or the first of Donut's `gt_parses`), keys in their
original order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.convert.base import BadRow, Converter, SourceRow
from vlmkit.convert.tables import LAYOUTS, Table, describe_folder, open_table


class DonutConverter(Converter):
    name: ClassVar[str] = "donut"
    prompts: ClassVar[dict[str, str]] = {"json": "Extract the document as JSON."}
    layouts: ClassVar[tuple[str, ...]] = LAYOUTS

    def __init__(self, src: str, task: str | None = None) -> None:
        super().__init__(src, task)
        root = self.local_root(src)
        table = self.find_table(root)
        if table is None:
            raise self.unknown_layout(describe_folder(root))
        self.table = table
        self.layout = table.layout

    def local_root(self, src: str) -> Path:
        """The folder to read; subclasses may fetch it first."""
        return Path(src)

    def find_table(self, root: Path) -> Table | None:
        """The layout of `root`; subclasses may know more layouts."""
        return open_table(root)

    def splits(self) -> list[str]:
        return self.table.splits()

    def rows(self, split: str) -> Iterator[SourceRow | BadRow]:
        for raw in self.table.rows(split):
            if isinstance(raw, BadRow):
                yield raw
                continue
            target = read_ground_truth(raw.values["ground_truth"])
            if isinstance(target, str):  # the reason it could not be read
                yield BadRow(raw.where, target, "bad ground truth")
                continue
            parse, alternatives = target
            meta: dict[str, Any] = {"row": raw.index}
            if raw.source_file:
                meta["source_file"] = raw.source_file
            if alternatives > 1:
                meta["gt_parses"] = alternatives
            yield SourceRow(raw.key or f"{raw.index:06d}", raw.where, raw.image, parse, meta)


def read_ground_truth(value: Any) -> tuple[Any, int] | str:
    """(gt_parse, number of alternatives) from a Donut ground truth, or why it cannot be read."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            return f"ground_truth is not JSON ({error})"
    if not isinstance(value, dict):
        return f"ground_truth is a JSON {type(value).__name__}, not an object with gt_parse"
    if "gt_parse" in value:
        return value["gt_parse"], 1
    parses = value.get("gt_parses")
    if isinstance(parses, list) and parses:
        return parses[0], len(parses)
    missing = f"ground_truth has no gt_parse or gt_parses (keys: {', '.join(map(str, value))})"
    if "valid_line" in value:  # CORD v1 json: word annotations only; v2 files carry gt_parse too
        missing += "; a CORD v1 file? vlmkit reads CORD v2, whose files carry gt_parse"
    return missing

"""Helpers for the synth tests: draw small datasets, read them back, compare folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlmkit.synth.circled_letter import Summary, from_preset, make_plan, write_dataset


def draw(out: Path, preset: str = "random", *, workers: int = 1, **overrides: Any) -> Summary:
    """Plan and write a circled-letter dataset (small images unless asked otherwise)."""
    overrides.setdefault("image_size", (160, 160))
    return write_dataset(make_plan(from_preset(preset, **overrides)), out, workers=workers)


def records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path: equal dicts mean byte-identical folders."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }

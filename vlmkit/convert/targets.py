"""Target text for structured answers: canonical JSON, Donut tokens or `key: value` lines.

Each format is written with the serialiser `vlmkit score` reads back (`vlmkit.structured`), and
every target is read back before it is kept: a target that would not come back as the same
object is a bad row, not a silent change of the labels.
"""

from __future__ import annotations

import json
from typing import Any

from vlmkit.structured import parse_structured
from vlmkit.structured.donut import from_donut_tokens, to_donut_tokens
from vlmkit.structured.kv import from_kv_lines, to_kv_lines

TARGET_FORMATS = ("json", "donut", "kv")


class TargetError(ValueError):
    """The object cannot be written in the asked format and read back unchanged."""


def serialise(obj: Any, target_format: str) -> str:
    """`obj` as text in `target_format`, checked to read back equal to `obj`."""
    if not isinstance(obj, (dict, list)) or not obj:
        raise TargetError(f"is {json.dumps(obj)[:40]}, not a non-empty object or list")
    if target_format == "json":
        # Canonical: keys in their original order, UTF-8 characters as they are, no NaN.
        try:
            text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise TargetError("holds NaN or Infinity, which JSON cannot write") from None
        back = json.loads(text)
    elif target_format == "donut":
        text = to_donut_tokens(obj)
        back = from_donut_tokens(text)
    elif target_format == "kv":
        try:
            text = to_kv_lines(obj)
        except ValueError as error:
            raise TargetError(f"cannot be written as kv lines: {error}") from None
        back = from_kv_lines(text)
    else:
        raise ValueError(f"unknown target format {target_format!r}")
    if back != obj:
        raise TargetError(
            f"does not survive the {target_format} format (it reads back as something else; "
            "Donut tokens lose one-item lists, non-string leaves and empty containers)"
        )
    # What `vlmkit score` will do with it: its lenient reader must find the same object.
    if parse_structured(text).value != obj:
        raise TargetError(f"vlmkit score would not read this {target_format} target back")
    return text

"""Real datasets into vlmkit's dataset format: one module per source kind, one registry.

Kinds: `cord` (cord-v2), `donut`, `sroie`, `jsonl`. Shared: `base` (rows and bad rows), `tables`
(Donut-format tables: parquet, save_to_disk, imagefolder), `targets` (json / donut / kv target
text, read back before it is kept), `images` (copy or write images, optional downsizing),
`writer` (split folders, skip report, convert.json).
"""

from __future__ import annotations

import difflib
import importlib

from vlmkit.convert.base import Converter
from vlmkit.errors import UsageError

# Literal, so `vlmkit convert --help` can list the kinds without importing any converter.
CONVERTERS: dict[str, str] = {
    "cord-v2": "vlmkit.convert.cord:CordV2",
    "donut": "vlmkit.convert.donut:DonutConverter",
    "sroie": "vlmkit.convert.sroie:Sroie",
    "jsonl": "vlmkit.convert.jsonl:JsonlConverter",
}


def converter_class(kind: str) -> type[Converter]:
    """The converter of a SOURCE_KIND, with a did-you-mean on a typo."""
    if kind not in CONVERTERS:
        close = difflib.get_close_matches(kind, CONVERTERS, n=1)
        raise UsageError(
            f"SOURCE_KIND {kind!r} is not a source kind vlmkit converts",
            hint=(f"Did you mean {close[0]!r}? " if close else "")
            + f"Kinds: {', '.join(CONVERTERS)}.",
        )
    module, _, name = CONVERTERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)

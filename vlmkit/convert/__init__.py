"""Real datasets into vlmkit's dataset format: one module per source kind, one registry.

Kinds: `cord` (cord-v2), `donut`, `sroie`, `jsonl`, `vqa`. Shared: `base` (rows and bad rows),
`tables` (tables of images: parquet, save_to_disk, imagefolder), `targets` (json / donut / kv target
text, read back before it is kept), `images` (copy or write images, optional downsizing),
`writer` (split folders, skip report, convert.json).
"""

from __future__ import annotations

from vlmkit.convert.base import Converter
from vlmkit.registry import load

# Literal, so `vlmkit convert --help` can list the kinds without importing any converter.
CONVERTERS: dict[str, str] = {
    "cord-v2": "vlmkit.convert.cord:CordV2",
    "donut": "vlmkit.convert.donut:DonutConverter",
    "sroie": "vlmkit.convert.sroie:Sroie",
    "jsonl": "vlmkit.convert.jsonl:JsonlConverter",
    "vqa": "vlmkit.convert.vqa:VqaConverter",
}


def converter_class(kind: str) -> type[Converter]:
    """The converter of a SOURCE_KIND, with a did-you-mean on a typo."""
    return load(CONVERTERS, kind, flag="SOURCE_KIND", what="a source kind vlmkit converts")

"""The literal registries (converters, objectives, ...): `"module:Class"` names, resolved on use.

A registry is a plain dict, so `--help` can list its keys without importing any entry; `load`
imports the one asked for, or fails with a did-you-mean naming the flag.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from vlmkit.errors import UsageError


def load(registry: dict[str, str], name: str, *, flag: str, what: str) -> Any:
    """The class registered as `name`; `what` says what the entries are, for the error."""
    if name not in registry:
        close = difflib.get_close_matches(name, registry, n=1)
        raise UsageError(
            f"{flag} {name!r} is not {what}",
            hint=(f"Did you mean {close[0]!r}? " if close else "")
            + f"Choose from: {', '.join(registry)}.",
        )
    module, _, cls = registry[name].partition(":")
    return getattr(importlib.import_module(module), cls)

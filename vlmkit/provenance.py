"""What a run records about where it ran: library versions and UTC timestamps (stdlib only)."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata

from vlmkit import __version__


def library_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None where it is not installed), plus Python's
    and vlmkit's."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["vlmkit"] = __version__
    return versions


def utc_now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

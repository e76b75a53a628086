"""What a run records about its inputs and where it ran: file digests, library versions, UTC
timestamps; and the check that the model libraries are there (stdlib only)."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from vlmkit import __version__
from vlmkit.errors import MissingExtraError

MODEL_LIBRARIES = ("torch", "transformers", "peft")
TRAIN_EXTRA_HINT = "install the model extra: pip install 'vlmkit[train]'"


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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (adapter weights and predictions files grow large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_model_libraries(command: str) -> None:
    """Fail with the install command when the model extra is missing."""
    versions = library_versions(MODEL_LIBRARIES)
    missing = [name for name in MODEL_LIBRARIES if versions[name] is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{command} needs {', '.join(missing)}, which {verb} not installed",
            hint=TRAIN_EXTRA_HINT,
        )

"""A dataset folder (`--out`), built under a temporary name and moved into place when complete.

Used by the commands that write whole folders (`synth`, `convert`). A run that fails or is
interrupted leaves nothing under the final name, and `--overwrite` replaces an old dataset only
once the new one is whole. Only folders that vlmkit wrote (they hold one of its sidecar files)
are ever replaced, so a mistyped `--out ~` deletes nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vlmkit.errors import InputError, UsageError
from vlmkit.records import nearest_existing_parent

SIDECARS = ("synth.json", "convert.json", "tiny-model.json")
"""The file each folder-writing command leaves in its output: proof that vlmkit wrote it."""


def check_output_folder(out: Path, *, overwrite: bool, source: Path | None = None) -> None:
    """Fail before any work when `out` cannot (or may not) become the dataset folder.

    `source`, the folder a command reads, must not overlap `out`: replacing one would
    delete the other.
    """
    if source is not None and source.exists():
        src, target = source.resolve(), out.resolve()
        if src == target or target in src.parents or src in target.parents:
            raise UsageError(
                f"--out {out} and SRC {source} overlap",
                hint="Write the output to a folder outside the source, and vice versa.",
            )
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise UsageError(
            f"--out {out} is the current folder or holds it",
            hint="Give --out the name of a new folder, e.g. --out data/letters",
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", hint="Give --out a folder name.")
    # Only the nearest existing ancestor can be a file: nothing exists below a file.
    ancestor = nearest_existing_parent(out)
    if not ancestor.is_dir():
        raise UsageError(f"--out {out}: {ancestor} is a file", hint="Choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(
                f"--out {out} already exists and is not empty",
                hint="Pass --overwrite to replace it, or choose another --out.",
            )
        if not any((out / name).is_file() for name in SIDECARS):
            raise UsageError(
                f"--out {out}: --overwrite only replaces folders that vlmkit wrote "
                f"(this one has no {' or '.join(SIDECARS)})",
                hint="Choose another --out, or empty that folder yourself.",
            )
    if not os.access(ancestor, os.W_OK):
        raise UsageError(f"--out {out}: cannot write in {ancestor}", hint="Choose another --out.")


@contextmanager
def staged_folder(out: Path, *, overwrite: bool, source: Path | None = None) -> Iterator[Path]:
    """Yield an empty sibling folder of `out`; it becomes `out` when the block succeeds."""
    check_output_folder(out, overwrite=overwrite, source=source)
    try:
        out.absolute().parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(out)
        staging = out.absolute().parent / f".{out.name}.partial-{_run_tag()}"
        staging.mkdir()
    except OSError as error:
        raise InputError(f"--out {out}: {error.strerror}", hint="Choose another --out.") from None
    try:
        yield staging
        _move_into_place(staging, out, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_tag() -> str:
    """host-pid: names this run's temporary folders (a shared disk may hold other hosts' runs)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _remove_abandoned(out: Path) -> None:
    """Delete temporary folders of earlier runs on this host for `out` that were killed.

    A run stopped by SIGKILL or a power cut cannot clean up after itself; without this its
    hidden half-dataset would sit beside `out` for ever. Only this host's runs are judged, by
    whether their process still exists.
    """
    host = socket.gethostname()
    for leftover in out.absolute().parent.glob(f".{glob.escape(out.name)}.*"):
        kind, _, tag = leftover.name.removeprefix(f".{out.name}.").partition("-")
        leftover_host, _, pid = tag.rpartition("-")
        ours = kind in ("partial", "old") and leftover_host == host and pid.isdigit()
        if ours and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _move_into_place(staging: Path, out: Path, *, overwrite: bool) -> None:
    retired = None
    if out.exists():
        if any(out.iterdir()):  # checked again: the folder may have changed during the run
            check_output_folder(out, overwrite=overwrite)
            retired = out.absolute().parent / f".{out.name}.old-{_run_tag()}"
            out.rename(retired)
        else:
            out.rmdir()
    staging.rename(out)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)

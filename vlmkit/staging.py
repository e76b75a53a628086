"""A folder output (`--out`), built under a temporary name and moved into place when complete.

Used by the commands that write whole folders (`synth`, `convert`, `tiny-model`). A run that
fails or is interrupted leaves nothing under the final name, and `--overwrite` replaces an old
folder only once the new one is whole. A command replaces only a folder that it wrote itself
(it holds that command's sidecar: `synth --overwrite` never replaces a model) and that holds
nothing else: each finished folder lists the files it was written with (`INVENTORY`), and a
file a user added since is named and refused, so a mistyped `--out ~` deletes nothing.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vlmkit.errors import InputError, UsageError
from vlmkit.outputs import Named, refuse_overlaps
from vlmkit.records import nearest_existing_parent, usual_permissions, write_text_atomic

OWNERS = {
    "synth.json": "vlmkit synth",
    "convert.json": "vlmkit convert",
    "tiny-model.json": "vlmkit tiny-model",
    "pairs.json": "vlmkit pairs",
    "vlmkit-adapter.json": "vlmkit finetune",
    "finetune-run.json": "vlmkit finetune",
}
"""The sidecar each folder-writing command leaves in its output: proof of who wrote it."""
INVENTORY = ".vlmkit-files"
"""In a finished folder: every file the command wrote, one relative path a line (hidden, so
`datasets.load_dataset("imagefolder")` and `ls` pass it by)."""


def check_output_folder(
    out: Path, *, owner: str, overwrite: bool, inputs: Iterable[Named] = ()
) -> None:
    """Fail before any work when `out` cannot (or may not) become the folder `owner` writes.

    `inputs`, what the command reads, must not overlap `out`: replacing one would delete the
    other.
    """
    if out.is_symlink() and not out.exists():
        raise UsageError(
            f"--out {out} is a link to {os.readlink(out)}, which does not exist",
            hint="point the link at an existing folder, or choose another --out",
        )
    out = out.resolve() if out.is_symlink() else out
    refuse_overlaps([("--out", out)], inputs)
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
        check_replaceable(out, owner)
    if not os.access(ancestor, os.W_OK):
        raise UsageError(f"--out {out}: cannot write in {ancestor}", hint="Choose another --out.")


def check_replaceable(out: Path, owner: str, *, unlisted_ok: re.Pattern[str] | None = None) -> None:
    """Refuse to replace `out` unless the command owning sidecar `owner` wrote it, and it holds
    only what that command wrote (its inventory lists it, or its relative path matches
    `unlisted_ok`: what a run writes before it lists its files)."""
    command = OWNERS[owner]
    if not (out / owner).is_file():
        others = [OWNERS[name] for name in OWNERS if (out / name).is_file()]
        what = f"was written by {others[0]}" if others else f"has no {owner}"
        raise UsageError(
            f"--out {out}: --overwrite only replaces a folder that {command} wrote (this one "
            f"{what})",
            hint="Choose another --out, or empty that folder yourself.",
        )
    extra = unlisted_files(out, unlisted_ok)
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        listed = ", ".join(extra[:3]) + more
        if not (out / INVENTORY).is_file() and unlisted_ok is None:
            raise UsageError(
                f"--out {out} has no {INVENTORY} listing what {command} wrote (an older "
                f"vlmkit wrote it, or it was removed), so its files cannot be told from yours: "
                f"{listed}",
                hint="Empty that folder yourself if nothing in it is yours, or choose another "
                "--out.",
            )
        raise UsageError(
            f"--out {out} holds files {command} did not write: {listed}",
            hint="Move them out of the folder (or delete them), or choose another --out.",
        )


def unlisted_files(folder: Path, unlisted_ok: re.Pattern[str] | None = None) -> list[str]:
    """Files under `folder` that its inventory does not list. A folder without an inventory is
    one whose command has not finished: then what matches `unlisted_ok` (what that command
    writes as it goes) is its own, and nothing else is."""
    try:
        listed = set((folder / INVENTORY).read_text(encoding="utf-8").splitlines())
        unlisted_ok = None  # finished: only what it listed is its own
    except OSError:
        listed = set()
    listed.add(INVENTORY)
    present = (path.relative_to(folder).as_posix() for path in _files(folder))
    return sorted(
        name for name in present
        if name not in listed and not (unlisted_ok and unlisted_ok.fullmatch(name))
    )  # fmt: skip


def write_inventory(folder: Path) -> None:
    """List every file now under `folder` in its `INVENTORY` (atomically)."""
    names = sorted(path.relative_to(folder).as_posix() for path in _files(folder))
    write_text_atomic(folder / INVENTORY, "".join(f"{n}\n" for n in names if n != INVENTORY))


def _files(folder: Path) -> Iterator[Path]:
    for root, _, files in os.walk(folder):
        for name in files:
            yield Path(root) / name


@contextmanager
def staged_folder(
    out: Path, *, owner: str, overwrite: bool, inputs: Iterable[Named] = ()
) -> Iterator[Path]:
    """Yield an empty sibling folder of `out`; it becomes `out` when the block succeeds.

    An `out` that is a symbolic link names the folder it points to: that folder is replaced,
    and the link keeps pointing at it.
    """
    out = out.resolve() if out.is_symlink() else out
    inputs = list(inputs)
    check_output_folder(out, owner=owner, overwrite=overwrite, inputs=inputs)
    try:
        out.absolute().parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(out)
        staging = out.absolute().parent / f".{out.name}.partial-{_run_tag()}"
        staging.mkdir()
    except OSError as error:
        raise InputError(f"--out {out}: {error.strerror}", hint="Choose another --out.") from None
    try:
        yield staging
        usual_permissions(staging)
        write_inventory(staging)
        _move_into_place(staging, out, owner=owner, overwrite=overwrite)
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


def _move_into_place(staging: Path, out: Path, *, owner: str, overwrite: bool) -> None:
    retired = None
    if out.exists():
        if any(out.iterdir()):  # checked again: the folder may have changed during the run
            check_output_folder(out, owner=owner, overwrite=overwrite)
            retired = out.absolute().parent / f".{out.name}.old-{_run_tag()}"
            out.rename(retired)
        else:
            out.rmdir()
    staging.rename(out)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
